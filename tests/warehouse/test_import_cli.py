"""`availability import`: user mistakes are one line before any work; the file it writes is what
`process` stores unchanged, and only with the key it was made with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from availability.cli import main

NATIVE = "\n".join(
    [
        "1776153600|1776153600.1|support|NONE|ENTERQUEUE||0701234567|1",  # Tue 14 Apr 2026 08:00:00Z
        "1776153612|1776153600.1|support|PJSIP/7001|CONNECT|12|1776153600.2|3",
        "1776153700|1776153600.1|support|PJSIP/7001|COMPLETECALLER|12|88|1",
        "1776153800|NONE|NONE|NONE|QUEUESTART||||",
        "1776153900|1776153900.5|elsewhere|NONE|ENTERQUEUE||0709999999|1",  # a queue the agreements lack
    ]
)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "queue_log"
    path.write_text(NATIVE + "\n")
    return path


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "a-test-key-of-at-least-32-bytes-long!!")


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("availability: warning")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queue-log", "missing.log", "--out", "x.jsonl"], "missing.log: no such file or directory"),
        (["calls-csv", "{log}", "--mapping", "nope.yaml", "--out", "x.jsonl"], "nope.yaml"),
        (["mail", "{log}", "--mailbox", "nowhere", "--out", "x.jsonl"], "unknown mailbox 'nowhere'"),
        (["queue-log", "{log}", "--out", "{log}"], "is an input; name another file"),
        (["queue-log", "{log}", "--out", "/no/such/dir/x.jsonl"], "no such directory"),
        (["queue-log", ".", "--out", "x.jsonl"], ".: not a file"),  # a directory is blamed on itself, not --out
    ],
)
def test_a_mistake_is_one_line(tmp_path, log, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code = main(["import", *(a.format(log=log) for a in args)])
    assert code == 1
    assert message in one_line(capsys)
    assert log.read_text() == NATIVE + "\n"  # the input untouched


@pytest.mark.parametrize(("option", "value"), [("--queue-map", "no-equals"), ("--timezone", "Mars/Olympus")])
def test_a_bad_option_value_is_argparses_one_line(log, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["import", "queue-log", str(log), option, value, "--out", "x.jsonl"])
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_written_file_replays_unchanged_and_only_with_its_key(tmp_path, log, capsys, monkeypatch):
    out, rejects = tmp_path / "events.jsonl", tmp_path / "rejects.jsonl"
    code = main(["import", "queue-log", str(log), "--queue-map", "support=kundreskontra", "--out", str(out),
                 "--rejects", str(rejects)])  # fmt: skip
    # The unknown queue's call.queued is rejected by the boundary (its call.offered names no queue
    # and is kept: a call that reached the switch and no known queue): exit 2. Events: offered,
    # queued, answered + agent busy, ended + agent ready (6), and the other call's offered (7).
    assert code == 2
    summary = capsys.readouterr().err
    assert "5 records: 4 with events, 1 ignored, 0 rejected; 7 events accepted, 1 refused by the boundary" in summary
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["origin"] for r in kept] == [f"{log.name}:5"]
    assert "unknown queue 'elsewhere'" in kept[0]["reason"] and "ENTERQUEUE" in kept[0]["record"]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    # No raw number or member name in the file; each event names the key it was made with.
    assert "0701234567" not in out.read_text() and "PJSIP/7001" not in out.read_text()
    assert {e["pseudonymised"] for e in events} == {events[0]["pseudonymised"]}
    warehouse = tmp_path / "wh"
    assert main(["process", str(out), "--warehouse", str(warehouse)]) == 0
    # Another key: every line rejected, nothing hashed with the wrong key stored.
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "another-test-key-of-at-least-32-bytes!!")
    capsys.readouterr()
    assert main(["process", str(out), "--warehouse", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.count("made with another pseudonym key") == len(events)


def test_a_file_the_mapping_cannot_read_leaves_no_half_output(tmp_path, capsys, monkeypatch):
    # The ACE mapping names columns this file lacks: one line naming them, no events file, no
    # temporary file left beside it.
    monkeypatch.chdir(tmp_path)
    export = tmp_path / "export.csv"
    export.write_text("a;b\n1;2\n")
    mapping = Path(__file__).resolve().parents[2] / "ingest/sources/mappings/telia-ace-contact-list.yaml"
    assert main(["import", "calls-csv", str(export), "--mapping", str(mapping), "--out", "ace.jsonl"]) == 1
    assert "Contact ID" in one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]
