"""A batch the warehouse refuses part of is stored whole or not at all: the ClickHouse writer
runs on a background thread, so an insert's error shows only at flush(), and before this rule
the facts queued behind a refused event were written anyway: the call of an event that went to
the dead letters kept a fact derived from it (found in review of the house plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import Warehouse
from stream_jobs.worker.sink import DeadLetters, WarehouseSink
from tests.unit.test_sink import NOW, DeadLetterTopic, messages, published


@pytest.fixture
def refusing_warehouse(tmp_path: Path):
    """The real embedded warehouse, whose driver refuses (asynchronously, on the writer thread,
    as ClickHouse does) an events block holding the id 'culprit', with a data error's code."""
    with Warehouse.open(str(tmp_path / "wh")) as wh:
        real = wh.client.raw_insert

        def raw_insert(table: str, names: Any, *, insert_block: bytes, **kw: Any) -> Any:
            if table == "events" and b'"culprit"' in insert_block:
                raise RuntimeError("Code: 27. DB::Exception: Cannot parse input: culprit")
            return real(table, names, insert_block=insert_block, **kw)

        wh.client.raw_insert = raw_insert
        yield wh


def test_the_call_of_a_refused_event_gets_no_fact(agreements, refusing_warehouse: Warehouse, tmp_path: Path) -> None:
    wh, topic = refusing_warehouse, DeadLetterTopic()
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements), live=True, clock=lambda: NOW)
    sink = WarehouseSink(
        boundary, Deriver(wh, agreements, track_changes=True), DeadLetters(topic, tmp_path / "d", None)
    )
    values = published(agreements)  # c1 queued + answered, c2 queued, one mail received
    culprit = json.loads(values[2]) | {"id": "culprit"}  # c2's only event
    values[2] = json.dumps(culprit).encode()
    sink.write(messages(values))
    # The refused event is the one dead letter; the others are stored and derived.
    assert [h["offset"] for _, _, h in topic.sent] == [b"2"]
    assert sink.isolated == 1
    stored = {row[0] for row in wh.query("SELECT id FROM events FINAL")}
    assert "culprit" not in stored and len(stored) == 3
    # c1 has its fact; c2, whose only event the warehouse refused, has none (it had one, a
    # waiting contact, when the facts behind the refused insert were still written).
    facts = {row[0]: row[1] for row in wh.query("SELECT call_id, outcome FROM call_contacts FINAL")}
    assert facts == {"c1": "answered"}
    assert wh.query("SELECT count() FROM mail_cases FINAL")[0][0] == 1  # the thread, its id a pseudonym
