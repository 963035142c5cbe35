"""The live metrics (docs/live-metrics.md) against hand-computed values and the monthly report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dashboards.report import monthly_report
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import encode
from stream_jobs.deriver import Deriver
from stream_jobs.live import LiveState
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}


def samples(live: LiveState) -> dict[tuple[str, tuple[str, ...]], float]:
    out = {}
    for family in live.collect():
        for sample in family.samples:
            out[(sample.name, tuple(sample.labels.values()))] = sample.value
    return out


def feed(warehouse, agreements, events, live=None, deriver=None):
    live = live or LiveState(agreements)
    deriver = deriver or Deriver(warehouse, agreements, track_changes=True)
    live.observe(events, deriver.apply(events))
    return live


def kpi_events():
    # As tests/warehouse/test_report.py: ten answers after 10..100 s, a 3 s abandon, a 200 s
    # hang-up, a callback after 90 s and a Saturday call (out of hours), in kundreskontra.
    events = []
    for i in range(1, 11):
        answered = f"2026-04-14T10:0{i * 10 // 60}:{i * 10 % 60:02d}+02:00"
        events += call(f"a{i}", ("queued", "2026-04-14T10:00:00+02:00", K), ("answered", answered, K | {"agent": "x"}))
    events += call("s", ("queued", "2026-04-14T11:00:00+02:00", K), ("abandoned", "2026-04-14T11:00:03+02:00", K))
    events += call("l", ("queued", "2026-04-14T11:00:00+02:00", K), ("ended", "2026-04-14T11:03:20+02:00", {}))
    events += call(
        "cb", ("queued", "2026-04-14T11:00:00+02:00", K), ("callback_requested", "2026-04-14T11:01:30+02:00", K)
    )
    events += call(
        "sat", ("queued", "2026-04-18T10:00:00+02:00", K), ("answered", "2026-04-18T10:00:05+02:00", K | {"agent": "x"})
    )
    return events


def test_contact_counters_give_the_spec_ratios(warehouse, agreements):
    s = samples(feed(warehouse, agreements, kpi_events()))
    c = {
        o: s[("availability_queue_contacts_total", ("kundreskontra", o))]
        for o in ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "out_of_hours")
    }
    assert c == {
        "answered_in_sl": 6,
        "answered_late": 4,
        "abandoned": 1,
        "abandoned_short": 1,
        "callback": 1,
        "out_of_hours": 1,
    }
    # The PromQL of the wall: SL = in_sl / (in_sl + late + abandoned) = 6/11, AR = 10/11 — the
    # report's values for the same events (tests/warehouse/test_report.py).
    assert c["answered_in_sl"] / (c["answered_in_sl"] + c["answered_late"] + c["abandoned"]) == 6 / 11


def test_replayed_events_count_nothing_twice(warehouse, agreements):
    events = kpi_events()
    live = feed(warehouse, agreements, events)
    feed(warehouse, agreements, events, live=live)  # the same worker gets the batch again
    assert samples(live)[("availability_queue_contacts_total", ("kundreskontra", "answered_in_sl"))] == 6
    # A restarted worker (new memory) redelivered the same batch: the warehouse has it, so no transitions.
    fresh = feed(warehouse, agreements, events)
    assert samples(fresh)[("availability_queue_contacts_total", ("kundreskontra", "answered_in_sl"))] == 0


def test_waiting_calls_oldest_wait_and_agents(warehouse, agreements):
    events = call("w1", ("queued", "2026-04-14T10:00:00+02:00", K)) + call(
        "w2", ("queued", "2026-04-14T10:01:00+02:00", K)
    )
    events += [
        ev("agent.state", "2026-04-14T09:00:00+02:00", agent="a1", state="ready", queues=["kundreskontra", "avgifter"]),
        ev("agent.state", "2026-04-14T09:30:00+02:00", agent="a2", state="busy", queues=["kundreskontra"]),
        ev("agent.state", "2026-04-14T09:40:00+02:00", agent="a2", state="logged_out", queues=[]),
        ev("agent.state", "2026-04-14T10:02:00+02:00", agent="a3", state="wrap_up", queues=["avgifter"]),
    ]
    live = feed(warehouse, agreements, events)
    s = samples(live)
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 2
    # Event clock: the latest event is 10:02:00 (+ a few ms of wall time): w1 has waited 120 s.
    assert s[("availability_queue_oldest_wait_seconds", ("kundreskontra",))] == pytest.approx(120, abs=2)
    assert s[("availability_queue_agents", ("kundreskontra", "ready"))] == 1
    assert s[("availability_queue_agents", ("kundreskontra", "busy"))] == 0  # a2 logged out since
    assert s[("availability_queue_agents", ("avgifter", "wrap_up"))] == 1
    assert s[("availability_queue_open", ("kundreskontra",))] == 1  # Tuesday 10:02
    feed(warehouse, agreements, call("w1", ("answered", "2026-04-14T10:03:00+02:00", K | {"agent": "a1"})), live=live)
    assert samples(live)[("availability_queue_waiting", ("kundreskontra",))] == 1


def test_mailbox_breach_and_breach_within_the_hour(warehouse, agreements):
    def received(t, thread, prio=False):
        cats = ["priority"] if prio else []
        return ev(
            "mail.received",
            t,
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id=f"m-{thread}",
            thread_id=thread,
            categories=cats,
        )

    events = [
        received("2026-04-14T08:00:00+02:00", "old"),  # 8.5 business hours by 16:30 -> breached (8 h)
        received("2026-04-14T13:00:00+02:00", "prio", prio=True),  # 3.5 h of 4 h -> breaches within the hour
        received("2026-04-14T16:00:00+02:00", "new"),  # 0.5 h
        ev(
            "mail.received",
            "2026-04-14T16:30:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="m-x",
            thread_id="x",
        ),
    ]
    s = samples(feed(warehouse, agreements, events))
    assert s[("availability_mailbox_open_cases", ("kundreskontra", "false"))] == 3
    assert s[("availability_mailbox_breached_cases", ("kundreskontra", "false"))] == 1
    assert s[("availability_mailbox_breaching_within_hour", ("kundreskontra", "true"))] == 1
    assert s[("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",))] == pytest.approx(
        8.5 * 3600, abs=2
    )
    assert s[("availability_mailbox_open", ("kundreskontra",))] == 0  # 16:30 is closing time


def test_a_simulated_day_on_the_wall_equals_the_report(warehouse):
    """The wall's today-counts for a simulated day give what spec/metrics.md gives (the report)."""
    agreements = load_agreements()
    boundary = Boundary(agreements, Pseudonymiser(b"t", agreements))
    events = [boundary.accept(encode(e)) for e in simulate(agreements, date(2026, 3, 4), 1, seed=8, scale=1)]
    live = LiveState(agreements)
    deriver = Deriver(warehouse, agreements, track_changes=True)
    for i in range(0, len(events), 500):  # in batches, as the worker gets them
        batch = events[i : i + 500]
        live.observe(batch, deriver.apply(batch))
    report = monthly_report(warehouse, agreements, "2026-03", now=datetime(2027, 1, 1, tzinfo=UTC))
    live._clock = (datetime(2026, 3, 4, 12, tzinfo=UTC), live._clock[1])  # "today" is the simulated day
    s = samples(live)
    for qid, r in report["queues"].items():
        n = {
            o: s[("availability_queue_today_contacts", (qid, o))]
            for o in ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "out_of_hours")
        }
        assert (
            n["answered_in_sl"] + n["answered_late"] + n["abandoned"] + n["abandoned_short"] + n["callback"]
            == r["offered"]
        ), qid
        assert n["out_of_hours"] == r["out_of_hours"], qid
        base = n["answered_in_sl"] + n["answered_late"] + n["abandoned"]
        assert (n["answered_in_sl"] / base if base else None) == pytest.approx(r["service_level"]), qid
        assert ((n["answered_in_sl"] + n["answered_late"]) / base if base else None) == pytest.approx(
            r["answer_rate"]
        ), qid


def test_a_restarted_worker_restores_the_gauges_and_two_workers_split_them(warehouse, agreements):
    events = call("w1", ("queued", "2026-04-14T10:00:00+02:00", K)) + call(
        "w2", ("queued", "2026-04-14T10:01:00+02:00", K)
    )
    events += call(
        "done",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:30+02:00", K | {"agent": "a1"}),
    )
    events += [
        ev("agent.state", "2026-04-14T09:00:00+02:00", agent="a1", state="busy", queues=["kundreskontra"]),
        ev("agent.state", "2026-04-14T09:50:00+02:00", agent="a1", state="ready", queues=["kundreskontra"]),
        ev("agent.state", "2026-04-14T09:55:00+02:00", agent="a2", state="ready", queues=["kundreskontra"]),
        ev(
            "mail.received",
            "2026-04-14T08:00:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="m1",
            thread_id="t1",
        ),
        ev(
            "mail.received",
            "2026-04-14T09:00:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="m2",
            thread_id="t2",
            categories=["priority"],
        ),
    ]
    before = samples(feed(warehouse, agreements, events))
    watched = [
        ("availability_queue_waiting", ("kundreskontra",)),
        ("availability_queue_oldest_wait_seconds", ("kundreskontra",)),
        ("availability_queue_agents", ("kundreskontra", "ready")),
        ("availability_mailbox_open_cases", ("kundreskontra", "false")),
        ("availability_mailbox_open_cases", ("kundreskontra", "true")),
        ("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",)),
    ]
    # The event clock is at the latest event, 10:01:00: w1 has waited 60 s.
    assert [before[w] for w in watched][:4] == [2, pytest.approx(60, abs=2), 2, 1]

    restarted = LiveState(agreements)  # a new process owning every partition
    restarted.restore(warehouse, lambda kind, key: True)
    after = samples(restarted)
    for w in watched:
        assert after[w] == pytest.approx(before[w], abs=2), w

    # Two workers, each owning one half of the keys (by a partition rule), sum to the same.
    halves = [LiveState(agreements), LiveState(agreements)]
    for i, live in enumerate(halves):
        live.restore(warehouse, lambda kind, key, i=i: hash(key) % 2 == i)
    for name, labels in watched:
        if name in ("availability_queue_waiting", "availability_queue_agents", "availability_mailbox_open_cases"):
            assert sum(samples(h)[(name, labels)] for h in halves) == before[(name, labels)], name
