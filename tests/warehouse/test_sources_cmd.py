"""`availability sources`: each source's health read from the warehouse (events stored, newest
event, rejected inputs by kind of reason), the same however often a file is processed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from availability.cli import main
from tests.conftest import EXAMPLES

AGREEMENTS = str(EXAMPLES / "agreements.yaml")


@pytest.fixture(autouse=True)
def real_key(monkeypatch):
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "a-test-key-of-at-least-32-bytes-long!!")


def event(source: str, n: int, queue: str, time: str) -> str:
    data = {"call_id": f"c{n}", "queue": queue}
    body = {"specversion": "1.0", "id": f"{source}-{n}", "source": source, "type": "call.queued", "time": time}
    return json.dumps(body | {"data": data})


def sources(warehouse: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["sources", "--warehouse", str(warehouse), "--format", "json"]) == 0
    return {row["source"]: row for row in json.loads(capsys.readouterr().out)["sources"]}


def test_sources_counts_stored_events_and_rejects_by_kind_once(tmp_path, capsys):
    lines = [
        event("asterisk", 1, "kundreskontra", "2026-04-14T10:00:00+02:00"),
        event("asterisk", 2, "kundreskontra", "2026-04-15T09:30:00+02:00"),
        event("asterisk", 2, "kundreskontra", "2026-04-15T09:30:00+02:00"),  # a duplicate: one event
        event("asterisk", 3, "it", "2026-04-15T09:31:00+02:00"),  # unknown queue
        event("asterisk", 4, "sales", "2026-04-15T09:32:00+02:00"),  # unknown queue, another name: same kind
        event("calls-csv", 1, "avgifter", "2026-04-16T08:00:00+02:00"),
        "{not json",  # names no source: counted under ''
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    warehouse = tmp_path / "w"
    for _ in range(2):  # processed twice: nothing counted twice
        assert main(["process", str(events), "--agreements", AGREEMENTS, "--warehouse", str(warehouse)]) == 2
    rows = sources(warehouse, capsys)
    assert set(rows) == {"asterisk", "calls-csv", ""}
    asterisk = rows["asterisk"]
    # Two distinct events (ids asterisk-1, asterisk-2); the newest is 15 Apr 09:30 +02:00 = 07:30Z.
    assert (asterisk["events"], asterisk["newest_event"]) == (2, "2026-04-15T07:30:00Z")
    assert asterisk["rejected"] == 2
    assert asterisk["rejected_by_reason"] == {"data.queue: unknown queue '…' (not in the agreements)": 2}
    assert (rows["calls-csv"]["events"], rows["calls-csv"]["rejected"]) == (1, 0)
    assert (rows[""]["events"], rows[""]["rejected"], rows[""]["newest_event"]) == (0, 1, None)
    # When the rejects were last seen: during this test (the second process), to the minute.
    assert asterisk["last_rejected"][:10] == datetime.now(UTC).date().isoformat()
    assert rows["calls-csv"]["last_rejected"] is None

    capsys.readouterr()
    assert main(["sources", "--warehouse", str(warehouse)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["source", "events", "newest", "event", "last", "stored", "rejected", "last", "rejected"]
    assert table[1].split()[:4] == ["(unnamed)", "0", "–", "–"]
    assert table[2].split()[:4] == ["1", "×", "not", "valid"]
    assert "2 × data.queue: unknown queue '…' (not in the agreements)" in "\n".join(table)


def test_sources_on_a_missing_warehouse_is_one_line(tmp_path, capsys):
    assert main(["sources", "--warehouse", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
