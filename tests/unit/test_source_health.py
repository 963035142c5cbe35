"""Source health on /metrics (stream_jobs/worker/source_health.py): per source, events stored,
rejects by kind of reason, the newest event's time; labels bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from ingest.boundary import claimed_source
from schemas.events import CallEnded, CallEndedData
from stream_jobs.worker import source_health
from stream_jobs.worker.source_health import OTHER, SourceHealth, reason_kind


def ended(source: str, at: str, n: int) -> CallEnded:
    return CallEnded(
        specversion="1.0", id=f"e{n}", source=source, time=datetime.fromisoformat(at), data=CallEndedData(call_id="c")
    )


def samples(health: SourceHealth) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(health)
    out = {}
    for family in registry.collect():
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def test_a_reason_kind_hides_values_and_numbers():
    # Two unknown queues and two indexes are one kind: a queue's name (or anything quoted) is no label.
    a = reason_kind("data.queues[2]: unknown queue 'it' (not in the agreements)")
    b = reason_kind("data.queues[11]: unknown queue 'sales' (not in the agreements)")
    assert a == b == "data.queues[N]: unknown queue '…' (not in the agreements)"
    assert len(reason_kind("x" * 1000)) == 120


def test_the_claimed_source_of_a_rejected_input():
    assert claimed_source(b'{"source": "asterisk", "type": "call.gone"}') == "asterisk"
    assert claimed_source(b'{"source": 5}') == ""  # not a string
    assert claimed_source(b'{"source": "a b"}') == ""  # not a source name
    assert claimed_source(b"\xff not json") == ""
    assert claimed_source(None) == ""  # a tombstone


def test_counts_per_source_and_the_newest_event():
    health = SourceHealth()
    health._now = lambda: 1_000.0
    health.observe(
        [ended("asterisk", "2018-12-04T16:00:00Z", 1), ended("asterisk", "2018-11-30T13:00:00Z", 2)],
        [("asterisk", "data.queue: unknown queue 'it' (not in the agreements)"), ("", "not valid JSON (x)")],
    )
    health._now = lambda: 2_000.0
    health.observe([ended("mail/kundreskontra", "2009-11-17T15:28:37+00:00", 3)], [])
    s = samples(health)
    # asterisk: 2 stored, 1 rejected; its newest event is 4 Dec 2018 16:00 UTC, whatever the order.
    assert s["availability_source_events_total", (("outcome", "stored"), ("source", "asterisk"))] == 2
    assert s["availability_source_events_total", (("outcome", "rejected"), ("source", "asterisk"))] == 1
    newest = datetime(2018, 12, 4, 16, tzinfo=UTC).timestamp()
    assert s["availability_source_newest_event_timestamp_seconds", (("source", "asterisk"),)] == newest
    assert s["availability_source_last_received_timestamp_seconds", (("source", "asterisk"),)] == 1_000.0
    assert s["availability_source_last_received_timestamp_seconds", (("source", "mail/kundreskontra"),)] == 2_000.0
    kind = "data.queue: unknown queue '…' (not in the agreements)"
    assert s["availability_source_rejects_total", (("reason", kind), ("source", "asterisk"))] == 1
    # An input that names no source counts under '' (seen, never dropped).
    assert s["availability_source_rejects_total", (("reason", "not valid JSON (x)"), ("source", ""))] == 1
    assert b"availability_source_events_total" in generate_latest_of(health)


def generate_latest_of(health: SourceHealth) -> bytes:
    registry = CollectorRegistry()
    registry.register(health)
    return generate_latest(registry)


def test_labels_stay_bounded(monkeypatch):
    monkeypatch.setattr(source_health, "MAX_SOURCES", 3)
    monkeypatch.setattr(source_health, "MAX_REASONS", 2)
    health = SourceHealth()
    health.observe([ended(f"s{i}", "2026-01-01T00:00:00Z", i) for i in range(5)], [])
    # The first three sources keep their names; the fourth and fifth are (other).
    assert set(health.received) == {"s0", "s1", "s2", OTHER}
    assert health.stored[OTHER] == 2
    health.observe([], [("s0", "first kind"), ("s0", "second kind"), ("s0", "third kind"), ("s0", "first kind")])
    # Two kinds a source; the third goes to (other); a known kind keeps counting.
    assert health.rejected == {("s0", "first kind"): 2, ("s0", "second kind"): 1, ("s0", OTHER): 1}
