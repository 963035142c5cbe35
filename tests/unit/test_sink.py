"""The stream sink on the in-memory store, its dead letters a plain callable: no Kafka, no ClickHouse
(tests/integration/test_poison.py runs the same on chDB and on the real topics)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.boundary import TOMBSTONE, Boundary
from ingest.pseudonymise import Pseudonymiser
from schemas.events import EVENT_TYPES, Event, encode
from stream_jobs.core.deriver import BatchResult, Deriver
from stream_jobs.core.store import MemoryStore, RefusedData
from stream_jobs.worker.sink import DeadLetters, Message, SinkUnavailable, WarehouseSink
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}
CALLS = "t.availability.calls"
NOW = datetime(2026, 4, 14, 12, 0, tzinfo=UTC)  # the worker's clock: after every valid event


class DeadLetterTopic:
    """The dead-letter publisher: keeps what it is given, as the topic would."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []

    def __call__(self, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((value, key, dict(headers)))

    def reasons(self) -> dict[int, str]:
        """Offset -> reason of each dead letter."""
        return {int(h["offset"]): h["reason"].decode() for _, _, h in self.sent}


def published(agreements) -> list[bytes]:
    """Two calls and a mail thread as they are on the topics: through the source boundary, so
    agent ids are pseudonyms (the worker's boundary rejects raw ones)."""
    source = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    events = [
        *call(
            "c1",
            ("queued", "2026-04-14T10:00:00+02:00", K),
            ("answered", "2026-04-14T10:00:45+02:00", K | {"agent": "a1"}),
        ),
        *call("c2", ("queued", "2026-04-14T10:01:00+02:00", K)),
        ev(
            "mail.received",
            "2026-04-14T09:00:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="m1",
            thread_id="t1",
        ),
    ]
    accepted = [source.accept(encode(e)) for e in events]
    assert all(isinstance(a, EVENT_TYPES) for a in accepted), accepted  # none rejected
    return [encode(a) for a in accepted if isinstance(a, EVENT_TYPES)]


def sink_for(agreements, store: MemoryStore, topic: DeadLetterTopic, tmp_path: Path, deriver=None) -> WarehouseSink:
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements), live=True, clock=lambda: NOW)
    dead = DeadLetters(topic, tmp_path / "dead.jsonl", None)
    return WarehouseSink(boundary, deriver or Deriver(store, agreements, track_changes=True), dead)


def messages(values: Sequence[bytes | None], partition: int = 0) -> list[Message]:
    return [Message(v, b"k", 0.0, CALLS, partition, offset) for offset, v in enumerate(values)]


def stored_ids(store: MemoryStore) -> set[str]:
    return {e.id for held in store.events.values() for e in held.values()}


def ids(values: Sequence[bytes]) -> set[str]:
    return {json.loads(v)["id"] for v in values}


def test_poison_goes_to_dead_letters_with_its_reason_and_the_rest_is_stored(agreements, tmp_path):
    store, topic = MemoryStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    good = published(agreements)
    from_2150 = encode(call("p", ("queued", "2150-01-01T00:00:00Z", K))[0])
    # Offsets 0-1 good, 2 a tombstone, 3 not JSON, 4 dated 2150, 5-6 good.
    sink.write(messages([good[0], good[1], None, b"\x00 not an event", from_2150, good[2], good[3]]))

    # Every valid event is stored, and derived: c1 answered, c2 waiting, the thread's one case open.
    assert stored_ids(store) == ids(good)
    assert (store.calls["c1"].contact.outcome, store.calls["c2"].contact.outcome) == ("answered", "waiting")
    assert [(c.mailbox, c.seq, c.end) for c in store.cases.values()] == [("kundreskontra", 1, "")]
    # The three poison messages, each with where it was read and the boundary's reason.
    reasons = topic.reasons()
    assert sorted(reasons) == [2, 3, 4]
    assert reasons[2] == TOMBSTONE
    assert "2150" in reasons[4] and "outside the accepted range" in reasons[4]
    assert reasons[3]  # whatever the decoder says, there is a reason
    assert (sink.stats.processed, sink.stats.rejected, sink.stats.batches) == (4, 3, 1)
    # The positions: partition 0 holds everything up to offset 6, so the next is 7 (poison included:
    # it is kept as a dead letter, and the batch's offsets are committed past it).
    assert store.positions == {(CALLS, 0): 7}


def test_positions_are_recorded_per_partition_even_for_a_batch_of_poison_only(agreements, tmp_path):
    store, topic = MemoryStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    batch = [
        Message(b"not json", None, 0.0, CALLS, 1, 40),
        Message(None, None, 0.0, CALLS, 1, 41),
        Message(b"[1, 2]", None, 0.0, CALLS, 3, 7),
    ]
    sink.write(batch)
    # Next offsets: partition 1 read up to 41 -> 42; partition 3 up to 7 -> 8. Nothing stored.
    assert store.positions == {(CALLS, 1): 42, (CALLS, 3): 8}
    assert stored_ids(store) == set() and len(topic.sent) == 3
    assert store.flushes >= 1  # the positions alone were flushed before the batch returned


def test_a_redelivered_batch_stores_nothing_twice_and_tells_the_live_state_no_change(agreements, tmp_path):
    store, topic = MemoryStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    seen: list[BatchResult] = []
    sink.on_stored.append(lambda events, result: seen.append(result))
    batch = messages(published(agreements))
    sink.write(batch)
    sink.write(batch)  # a crash before the commit: Kafka delivers it again
    assert sum(len(held) for held in store.events.values()) == 4  # one row per event, not two
    # The second time every touched call's fact before the batch equals the one after.
    assert all(before == after for before, after in seen[1].call_changes)
    assert topic.sent == []


class RefusingStore(MemoryStore):
    """Refuses a write holding the event `culprit` for its data (as ClickHouse's Code 27 would),
    or every write for its own state while `busy` (as "too many parts"), or does not answer."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.away = False

    def insert_events(self, events: Sequence[Event]) -> None:
        if self.away:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        if self.busy:
            raise RuntimeError("Too many parts (300). Merges are processing slower than inserts")
        if any(e.id == "culprit" for e in events):
            raise RefusedData("Cannot parse input: culprit")
        super().insert_events(events)

    def answers(self) -> bool:
        return not self.away


def test_an_event_the_store_refuses_is_isolated_and_dead_lettered(agreements, tmp_path):
    store, topic = RefusingStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    values = published(agreements)
    culprit = json.loads(values[2]) | {"id": "culprit"}  # c2's queued, renamed
    values[2] = json.dumps(culprit).encode()
    sink.write(messages(values))
    # Stored in halves until the one refused event is alone: it is the only dead letter, with
    # the store's reason; the three others are stored.
    assert stored_ids(store) == ids(values) - {"culprit"}
    [(value, _, headers)] = topic.sent
    assert value == values[2] and headers["offset"] == b"2"
    assert headers["reason"] == b"the warehouse refused it (RefusedData: Cannot parse input: culprit)"
    assert sink.isolated == 1 and (sink.stats.processed, sink.stats.rejected) == (3, 1)
    assert "c2" not in store.calls  # its only event was refused, so it has no fact (as in the warehouse)


def test_a_store_refusing_for_its_own_state_keeps_the_batch_for_a_retry(agreements, tmp_path):
    store, topic = RefusingStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    values = published(agreements)
    store.busy = True
    with pytest.raises(SinkUnavailable, match="does not take the batch now"):
        sink.write(messages(values))
    assert topic.sent == [] and sink.isolated == 0  # no valid event became a dead letter
    store.busy = False
    sink.write(messages(values))  # the retry, once the store takes writes again
    assert stored_ids(store) == ids(values)


def test_a_store_that_does_not_answer_stops_the_batch_without_dead_letters(agreements, tmp_path):
    store, topic = RefusingStore(), DeadLetterTopic()
    sink = sink_for(agreements, store, topic, tmp_path)
    values = [*published(agreements), b"not json"]
    store.away = True
    with pytest.raises(SinkUnavailable, match="does not answer"):
        sink.write(messages(values))
    assert topic.sent == []  # not even the bad message: the whole batch comes again
    store.away = False
    sink.write(messages(values))
    assert stored_ids(store) == ids(values[:-1]) and list(topic.reasons()) == [4]


def test_a_failed_derivation_goes_to_dead_letters(agreements, tmp_path):
    store, topic = MemoryStore(), DeadLetterTopic()
    values = published(agreements)
    failing_id = json.loads(values[1])["id"]  # c1's answer

    class Failing(Deriver):
        def apply(self, batch: Any) -> BatchResult:  # as the Deriver reports an entity it could not derive
            result = super().apply([e for e in batch if e.id != failing_id])
            result.failed = [(e, "could not be derived (ValueError: boom)") for e in batch if e.id == failing_id]
            return result

    sink = sink_for(agreements, store, topic, tmp_path, deriver=Failing(store, agreements))
    sink.write(messages(values))
    assert topic.reasons() == {1: "could not be derived (ValueError: boom)"}
    assert stored_ids(store) == ids(values) - {failing_id}
    assert (sink.stats.processed, sink.stats.rejected) == (3, 1)
