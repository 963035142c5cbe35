"""Source health on /metrics (stream_jobs/worker/source_health.py): per source, inputs stored and
rejected, rejects by kind of reason; labels bounded and free of personal data."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest

from ingest.boundary import claimed_source
from schemas.agreements import load_agreements
from schemas.events import CallEnded, CallEndedData
from stream_jobs.core.live import LiveState
from stream_jobs.worker import source_health
from stream_jobs.worker.source_health import OTHER_REASON, SourceHealth, reason_kind


def ended(source: str, n: int) -> CallEnded:
    at = datetime.fromisoformat("2018-12-04T16:00:00Z")
    return CallEnded(specversion="1.0", id=f"e{n}", source=source, time=at, data=CallEndedData(call_id="c"))


def samples(health: SourceHealth) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(health)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def health() -> SourceHealth:
    # The live metrics' label rule, with the shipped agreements' mailboxes (kundreskontra among them).
    return SourceHealth(LiveState(load_agreements(None)).source_label)


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


def test_counts_per_source_and_kind():
    h = health()
    h.observe(
        [ended("asterisk", 1), ended("asterisk", 2), ended("mail/kundreskontra", 3)],
        [("asterisk", "data.queue: unknown queue 'it' (not in the agreements)"), ("", "not valid JSON (x)")],
    )
    s = samples(h)
    # asterisk: 2 stored and 1 rejected; the mail archive's import of a mailbox: 1 stored.
    assert s["availability_source_events_total", (("outcome", "stored"), ("source", "asterisk"))] == 2
    assert s["availability_source_events_total", (("outcome", "rejected"), ("source", "asterisk"))] == 1
    assert s["availability_source_events_total", (("outcome", "stored"), ("source", "mail/kundreskontra"))] == 1
    kind = "data.queue: unknown queue '…' (not in the agreements)"
    assert s["availability_source_rejects_total", (("reason", kind), ("source", "asterisk"))] == 1
    # An input that names no source is counted too, under `other` (seen, never dropped).
    assert s["availability_source_rejects_total", (("reason", "not valid JSON (x)"), ("source", "other"))] == 1
    assert b'availability_source_events_total{outcome="stored",source="asterisk"} 2.0' in generate_latest_of(h)


def generate_latest_of(h: SourceHealth) -> bytes:
    registry = CollectorRegistry()
    registry.register(h)
    return generate_latest(registry)


def test_labels_stay_bounded_and_hold_no_personal_data(monkeypatch):
    monkeypatch.setattr(source_health, "MAX_REASONS", 2)
    h = health()
    # A phone number or a person's name as a source, and 500 made-up sources: all `other`.
    h.observe([ended(s, i) for i, s in enumerate(["0701234567", "anna.svensson", *(f"s{i}" for i in range(500))])], [])
    assert h.stored == {"other": 502}
    h.observe([], [("asterisk", "first kind"), ("asterisk", "second kind"), ("asterisk", "third kind")])
    h.observe([], [("asterisk", "first kind")])
    # Two kinds a source; the third goes to (other); a known kind keeps counting.
    assert h.rejected == {("asterisk", "first kind"): 2, ("asterisk", "second kind"): 1, ("asterisk", OTHER_REASON): 1}
