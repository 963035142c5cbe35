"""The `availability` command end to end on the embedded engine: the spec's worked example,
idempotent replays, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from availability.cli import main
from dashboards.report import MAILBOX_KEYS, QUEUE_KEYS
from stream_jobs.warehouse import Warehouse
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.usefixtures("examples")  # without them: a skip locally, a failure in CI

AGREEMENTS = str(EXAMPLES / "agreements.yaml")


def process(warehouse: Path, *files: Path, extra: tuple[str, ...] = ()) -> int:
    return main(["process", *map(str, files), "--agreements", AGREEMENTS, "--warehouse", str(warehouse), *extra])


def report(warehouse: Path, capsys: pytest.CaptureFixture[str], month: str = "2026-04") -> dict:
    capsys.readouterr()
    code = main(
        ["report", "--month", month, "--agreements", AGREEMENTS, "--warehouse", str(warehouse), "--format", "json"]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def assert_matches_expected(got: dict) -> None:
    """Every key of expected-report.json has its value; added keys are the documented ones."""
    expected = json.loads((EXAMPLES / "expected-report.json").read_text())
    assert got["month"] == expected["month"]
    for section, keys in (("queues", QUEUE_KEYS), ("mailboxes", MAILBOX_KEYS)):
        assert set(got[section]) == set(expected[section])
        for name, metrics in expected[section].items():
            assert {k: got[section][name][k] for k in metrics} == metrics, f"{section}.{name}"
            assert set(keys) <= set(got[section][name])


def test_the_worked_example_gives_the_expected_report(tmp_path, capsys):
    assert process(tmp_path / "w", EXAMPLES / "events.jsonl") == 0
    assert_matches_expected(report(tmp_path / "w", capsys))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_duplicated_and_processed_twice_gives_the_same_report(tmp_path, capsys, seed):
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    rng = random.Random(seed)
    mixed = lines + rng.sample(lines, k=len(lines) // 2)  # half the events twice
    rng.shuffle(mixed)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(mixed[: len(mixed) // 2]) + "\n")
    b.write_text("\n".join(mixed[len(mixed) // 2 :]) + "\n")
    assert process(tmp_path / "w", b, a) == 0
    assert_matches_expected(report(tmp_path / "w", capsys))
    assert process(tmp_path / "w", a, b) == 0  # again, into the same warehouse
    assert process(tmp_path / "w", EXAMPLES / "events.jsonl") == 0
    assert_matches_expected(report(tmp_path / "w", capsys))


def test_bad_lines_are_named_and_rejected_and_the_valid_ones_stored(tmp_path, capsys):
    good = (EXAMPLES / "events.jsonl").read_text().splitlines()
    first = json.loads(good[0])
    bad = {
        "not json": "{this is not json",
        "missing field": json.dumps(first | {"data": {"entrance": "x"}}),
        "unknown type": json.dumps(first | {"type": "call.teleported"}),
        "no offset": json.dumps(first | {"time": "2026-04-01T08:30:00"}),
        "unknown queue": json.dumps(
            {**json.loads(good[1]), "id": "zz1", "data": {"call_id": "p1", "queue": "ekonomi"}}
        ),
    }
    # Bad lines at 2, 4, 6, 8, 10 between the good ones.
    lines: list[str] = []
    for (_, line), ok in zip(bad.items(), good, strict=False):
        lines += [ok, line]
    lines += good[len(bad) :]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    capsys.readouterr()

    assert process(tmp_path / "w", path) == 2
    err = capsys.readouterr().err
    for number, needle in [(2, "not valid JSON"), (4, "call_id"), (6, "unknown type"), (8, "offset"), (10, "ekonomi")]:
        assert f"mixed.jsonl:{number}: rejected:" in err and needle in err, number
    assert err.count("rejected:") == 5
    assert "32 accepted, 5 rejected" in err
    assert_matches_expected(report(tmp_path / "w", capsys))  # every valid event was stored

    rejects = tmp_path / "rejects.jsonl"
    assert process(tmp_path / "w2", path, extra=("--rejects", str(rejects))) == 2
    records = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [r["line"] for r in records] == [2, 4, 6, 8, 10]
    assert records[0]["event"] == "{this is not json"  # kept as it was, nothing dropped silently


def test_user_mistakes_are_one_line_not_a_traceback(tmp_path, capsys):
    assert process(tmp_path / "w", tmp_path / "missing.jsonl") == 1
    assert capsys.readouterr().err.strip() == f"availability: {tmp_path / 'missing.jsonl'}: no such file"

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "timezone: Europe/Stockholm\ncalendars: {}\nqueues:\n  k: {name: K, calendar: x, "
        "service_level_seconds: 60, service_level_target: 0.8, answer_rate_target: 0.9}\n"
    )
    events = tmp_path / "e.jsonl"
    events.write_text("")
    code = main(["process", str(events), "--agreements", str(bad), "--warehouse", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "queues.k.calendar: unknown calendar 'x'" in err

    with pytest.raises(SystemExit) as exit_:  # argparse: usage line plus one error line
        main(["report", "--month", "2026-13", "--warehouse", str(tmp_path / "w")])
    assert exit_.value.code == 2
    assert "invalid month '2026-13'" in capsys.readouterr().err


def test_personal_data_never_reaches_the_warehouse(tmp_path, capsys):
    assert process(tmp_path / "w", EXAMPLES / "events.jsonl") == 0
    with Warehouse.open(str(tmp_path / "w")) as wh:
        stored = repr(
            [wh.query(f"SELECT * FROM {t}") for t in ("events", "call_contacts", "mail_cases", "event_conflicts")]
        )
    assert "kundreskontra" in stored and "caller_ref" in stored  # the data is there, pseudonymised
    for raw in ("+46701234567", "x@example.se", "Avbetalningsplan", "Faktura", "Fråga"):
        assert raw not in stored
    assert "+46701234567" not in capsys.readouterr().err
