"""`availability rederive` end to end on the embedded engine: after the agreements change, the
stored events folded again give the report a fresh replay with the new agreements gives.

Agreements A are the spec's example; B changes kundreskontra's service level threshold (60 s ->
20 s), C the calendar's Wednesdays (08:00 -> 09:00, which also moves mail business time). The
traffic is a simulated Wednesday in April and one in May (2026-04-15, 2026-05-13).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from availability.cli import main
from schemas.agreements import load_agreements
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.provenance import derivation_inputs, fingerprint
from stream_jobs.rederive import rederive, rederive_steps
from stream_jobs.warehouse import Warehouse
from tests.conftest import shared_examples

CHANGES = {  # the setting agreements_changed names -> (in A, in B or C)
    "service_level_seconds": ("service_level_seconds: 60", "service_level_seconds: 20"),
    "calendar": ('wed: ["08:00-16:30"]', 'wed: ["09:00-16:30"]'),
}
SUMMARY = re.compile(r"rederived (\d+) calls and (\d+) threads of (\S+( to \S+)?) with agreements ([0-9a-f]{16}) in ")


@pytest.fixture(scope="module")
def agreements_a() -> Path:
    return shared_examples() / "agreements.yaml"


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory, agreements_a: Path) -> list[Path]:
    out = tmp_path_factory.mktemp("days")
    files = []
    for start, seed in (("2026-04-15", 7), ("2026-05-13", 8)):
        path = out / f"{start}.jsonl"
        args = ["--start", start, "--days", "1", "--seed", str(seed), "--out", str(path)]
        assert main(["simulate", *args, "--agreements", str(agreements_a)]) == 0
        files.append(path)
    return files


def changed(tmp_path: Path, agreements_a: Path, change: str) -> Path:
    old, new = CHANGES[change]
    text = agreements_a.read_text()
    assert old in text
    path = tmp_path / f"{change}.yaml"
    path.write_text(text.replace(old, new))
    return path


def process(warehouse: Path, agreements: Path, *files: Path) -> None:
    assert main(["process", *map(str, files), "--agreements", str(agreements), "--warehouse", str(warehouse)]) == 0


def run(warehouse: Path, agreements: Path, *extra: str) -> int:
    return main(["rederive", *extra, "--agreements", str(agreements), "--warehouse", str(warehouse)])


def report(warehouse: Path, agreements: Path, month: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    args = ["--month", month, "--agreements", str(agreements), "--warehouse", str(warehouse), "--format", "json"]
    assert main(["report", *args]) == 0
    got: dict[str, Any] = json.loads(capsys.readouterr().out)
    del got["evaluated_at"]
    return got


def fingerprint_of(agreements: Path) -> str:
    return fingerprint(derivation_inputs(load_agreements(str(agreements))))


def derived_with(warehouse: Path) -> set[tuple[str, str, str]]:
    """(table, local month, fingerprint) of every contact and case."""
    with Warehouse.open(str(warehouse), create=False) as wh:
        rows = wh.query(
            "SELECT 'contacts', formatDateTime(first_queued_at, '%Y-%m', 'Europe/Stockholm'), derived_with "
            "FROM call_contacts FINAL UNION ALL "
            "SELECT 'cases', formatDateTime(opened_at, '%Y-%m', 'Europe/Stockholm'), derived_with FROM mail_cases FINAL"
        )
    return {(str(t), str(m), str(f)) for t, m, f in rows}


def tables(warehouse: Path) -> tuple[Any, ...]:
    """What a rederive may write, without the instants of writing; and the events' raw rows."""
    with Warehouse.open(str(warehouse), create=False) as wh:
        return (
            wh.query("SELECT * EXCEPT derived_at FROM call_contacts FINAL ORDER BY call_id, seq"),
            wh.query("SELECT * EXCEPT derived_at FROM mail_cases FINAL ORDER BY mailbox, thread_id, seq"),
            wh.query("SELECT source, id, other_digest FROM event_conflicts FINAL ORDER BY ALL"),
            wh.query("SELECT count() FROM events"),  # without FINAL: an event stored again is a row more
        )


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_month_rederived_reports_as_a_fresh_replay_and_other_months_keep_their_facts(
    tmp_path, capsys, agreements_a, days, change
):
    b = changed(tmp_path, agreements_a, change)
    fresh, w = tmp_path / "fresh", tmp_path / "w"
    process(fresh, b, *days)
    process(w, agreements_a, *days)
    expected = report(fresh, b, "2026-04", capsys)
    assert expected["agreements_changed"] == []
    before = report(w, b, "2026-04", capsys)
    assert before["queues"] != expected["queues"]  # the change matters to the month
    assert {c["setting"] for c in before["agreements_changed"]} == {change}

    assert run(w, b, "--month", "2026-04") == 0
    calls, threads, scope, _, shown = SUMMARY.search(capsys.readouterr().err).groups()
    assert (scope, shown, int(calls) > 100, int(threads) > 10) == ("2026-04", fingerprint_of(b), True, True)
    assert report(w, b, "2026-04", capsys) == expected

    # May (outside the month and its margin) keeps the facts derived with A, and says so.
    a_, b_ = fingerprint_of(agreements_a), fingerprint_of(b)
    assert derived_with(w) == {(t, "2026-04", b_) for t in ("contacts", "cases")} | {
        (t, "2026-05", a_) for t in ("contacts", "cases")
    }
    may = report(w, b, "2026-05", capsys)
    assert may["agreements_changed"] and {m for c in may["agreements_changed"] for m in c["months"]} == {"2026-05"}


def test_a_second_rederive_changes_nothing_and_stores_no_event(tmp_path, capsys, agreements_a, days):
    b = changed(tmp_path, agreements_a, "calendar")
    w = tmp_path / "w"
    process(w, agreements_a, *days)
    events = tables(w)[3]
    assert run(w, b, "--month", "2026-04") == 0
    once = tables(w)
    assert once[3] == events
    assert run(w, b, "--month", "2026-04") == 0
    assert tables(w) == once


def test_without_a_month_every_month_is_rederived(tmp_path, capsys, agreements_a, days):
    b = changed(tmp_path, agreements_a, "calendar")
    fresh, w = tmp_path / "fresh", tmp_path / "w"
    process(fresh, b, *days)
    process(w, agreements_a, *days)
    assert run(w, b) == 0
    assert SUMMARY.search(capsys.readouterr().err).group(3) == "2026-04 to 2026-05"
    for month in ("2026-04", "2026-05"):
        got = report(w, b, month, capsys)
        assert got == report(fresh, b, month, capsys) and got["agreements_changed"] == []


def call_line(n: int, type_: str, time: str, **data: str) -> str:
    return json.dumps(
        {"specversion": "1.0", "id": f"m{n}", "source": "callguide", "type": type_, "time": time, "data": data}
    )


def test_the_answer_that_recovers_an_abandon_after_the_month_is_rederived_with_it(tmp_path, capsys, agreements_a):
    # A caller abandons on Tue 31 March 16:00-16:01 and is answered on Wed 1 April at 08:10,
    # within 24 h: March's kundreskontra has one abandoned_recovered while Wednesdays open at
    # 08:00 (A), none once they open at 09:00 (the answer is then out of hours). `rederive
    # --month 2026-03` must fold the April call too.
    k, who = {"queue": "kundreskontra"}, {"entrance": "08-50833000", "caller": "+46701234567"}
    lines = [
        call_line(1, "call.offered", "2026-03-31T16:00:00+02:00", call_id="r1", **who),
        call_line(2, "call.queued", "2026-03-31T16:00:00+02:00", call_id="r1", **k),
        call_line(3, "call.abandoned", "2026-03-31T16:01:00+02:00", call_id="r1", **k),
        call_line(4, "call.offered", "2026-04-01T08:10:00+02:00", call_id="r2", **who),
        call_line(5, "call.queued", "2026-04-01T08:10:00+02:00", call_id="r2", **k),
        call_line(6, "call.answered", "2026-04-01T08:10:30+02:00", call_id="r2", agent="a1", **k),
        call_line(7, "call.ended", "2026-04-01T08:15:00+02:00", call_id="r2"),
    ]
    events = tmp_path / "boundary.jsonl"
    events.write_text("\n".join(lines) + "\n")
    c = changed(tmp_path, agreements_a, "calendar")
    fresh, w = tmp_path / "fresh", tmp_path / "w"
    process(fresh, c, events)
    process(w, agreements_a, events)
    assert report(w, agreements_a, "2026-03", capsys)["queues"]["kundreskontra"]["abandoned_recovered"] == 1

    assert run(w, c, "--month", "2026-03") == 0
    got = report(w, c, "2026-03", capsys)
    assert got["queues"]["kundreskontra"]["abandoned_recovered"] == 0
    assert got == report(fresh, c, "2026-03", capsys)


def test_an_interrupted_rederive_is_an_incomplete_load_until_one_of_the_month_finishes(
    tmp_path, capsys, agreements_a, days
):
    b = changed(tmp_path, agreements_a, "service_level_seconds")
    w = tmp_path / "w"
    process(w, agreements_a, *days)
    agreements = load_agreements(str(b))
    with Warehouse.open(str(w), create=False) as wh:
        steps = rederive_steps(wh, Deriver(wh, agreements), month="2026-04", timezone="Europe/Stockholm", chunk=10)
        assert next(steps)["done"] == 0
        assert next(steps)["done"] == 10  # then stopped: the worker or the command went away
        steps.close()
    [load] = report(w, b, "2026-04", capsys)["incomplete_loads"]
    assert load["files"] == ["rederive --month 2026-04"]

    assert run(w, b, "--month", "2026-04") == 0
    assert report(w, b, "2026-04", capsys)["incomplete_loads"] == []


def test_chunks_of_any_size_derive_every_entity_of_the_month_once(tmp_path, capsys, agreements_a, days):
    w = tmp_path / "w"
    process(w, agreements_a, *days)
    april = [json.loads(line) for line in days[0].read_text().splitlines()]
    calls = {e["data"]["call_id"] for e in april if e["type"].startswith("call.")}
    threads = {e["data"]["thread_id"] for e in april if e["type"].startswith("mail.")}
    agreements = load_agreements(str(agreements_a))
    seen: list[tuple[int, int]] = []
    with Warehouse.open(str(w), create=False) as wh:
        wide = rederive(wh, Deriver(wh, agreements), month="2026-04", timezone="Europe/Stockholm")
        result = rederive(
            wh, Deriver(wh, agreements), month="2026-04", timezone="Europe/Stockholm", chunk=7,
            on_progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        contacts = wh.query("SELECT count() FROM call_contacts FINAL WHERE first_queued_at < '2026-05-01'")[0][0]
    assert result == wide
    assert (result.calls, result.threads, result.contacts, result.months) == (
        len(calls), len(threads), contacts, ["2026-04"]
    )  # fmt: skip
    assert (result.failed, result.first_failure) == (0, "")
    dones = [done for done, _ in seen]
    assert dones == sorted(dones) and dones[0] == 0 and dones[-1] == len(calls) + len(threads)
    assert all(b - a <= 7 for a, b in itertools.pairwise(dones))


def test_a_directory_without_a_warehouse_is_one_line(tmp_path, capsys, agreements_a):
    assert run(tmp_path / "none", agreements_a) == 1
    err = capsys.readouterr().err.strip()
    none = "holds no warehouse (`availability process`, `stream` or `demo` makes one)"
    assert err == f"availability: --warehouse {tmp_path / 'none'}: {none}"
    assert not (tmp_path / "none").exists()
