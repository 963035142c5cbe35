"""The live state (docs/live-metrics.md) fed by the Deriver on the in-memory store, and restored
from it: no ClickHouse, no Kafka (tests/warehouse/test_live.py runs the same on chDB).

Calendar `kontor` of tests/conftest.py: Tue 14 April 2026 is open 08:00-16:30 (+02:00);
kundreskontra: service level 60 s, short abandon under 5 s; its mailbox: 8 h, priority 4 h.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.store import MemoryStore
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}
OUTCOMES = ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "out_of_hours")


def samples(live: LiveState) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in live.collect()
        for sample in family.samples
    }


def at(text: str) -> Callable[[], datetime]:
    """A stopped clock: the live state's "now" is injected, never taken from the events."""
    instant = datetime.fromisoformat(text)
    return lambda: instant


def feed(store, agreements, events, live=None, deriver=None, clock=None) -> LiveState:
    live = live or LiveState(agreements, **({"clock": clock} if clock else {}))
    deriver = deriver or Deriver(store, agreements, track_changes=True)
    live.observe(events, deriver.apply(events))
    return live


def received(t: str, thread: str, priority: bool = False) -> Any:
    return ev(
        "mail.received",
        t,
        source="imap/kundreskontra",
        mailbox="kundreskontra",
        message_id=f"m-{thread}",
        thread_id=thread,
        categories=["priority"] if priority else [],
    )


def kpi_events():
    # Ten answers after 10, 20, ..., 100 s, a 3 s abandon, a 200 s hang-up, a callback after 90 s
    # and a Saturday call (out of hours), all in kundreskontra.
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


def contacts(live: LiveState) -> dict[str, float]:
    s = samples(live)
    return {o: s[("availability_queue_contacts_total", ("kundreskontra", o))] for o in OUTCOMES}


def test_contact_counters_after_observe(agreements):
    live = feed(MemoryStore(), agreements, kpi_events())
    # Answers within 60 s: 10..60 s (6); later: 70..100 s (4); the 200 s hang-up abandoned, the
    # 3 s one short (under 5 s); one callback; Saturday is closed: out of hours.
    assert contacts(live) == {
        "answered_in_sl": 6,
        "answered_late": 4,
        "abandoned": 1,
        "abandoned_short": 1,
        "callback": 1,
        "out_of_hours": 1,
    }


def test_a_redelivered_batch_counts_nothing_twice(agreements):
    store = MemoryStore()
    events = [
        *kpi_events(),
        received("2026-04-14T09:00:00+02:00", "t1"),
        ev(
            "mail.replied",
            "2026-04-14T10:00:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="r-t1",
            thread_id="t1",
        ),
    ]
    live = feed(store, agreements, events)
    feed(store, agreements, events, live=live, deriver=Deriver(store, agreements, track_changes=True))
    # The second Deriver (a restarted worker) reloads what the store holds: every fact before
    # the batch equals the one after, so no counter moves.
    assert contacts(live)["answered_in_sl"] == 6
    # The thread's one case: received 09:00, replied 10:00 -> 1 business hour, within 8 h: once.
    assert samples(live)[("availability_mailbox_cases_total", ("kundreskontra", "answered_within"))] == 1


def test_waiting_calls_oldest_wait_and_agents(agreements):
    store = MemoryStore()
    events = call("w1", ("queued", "2026-04-14T10:00:00+02:00", K)) + call(
        "w2", ("queued", "2026-04-14T10:01:00+02:00", K)
    )
    events += [
        ev("agent.state", "2026-04-14T09:00:00+02:00", agent="a1", state="ready", queues=["kundreskontra", "avgifter"]),
        ev("agent.state", "2026-04-14T09:30:00+02:00", agent="a2", state="busy", queues=["kundreskontra"]),
        ev("agent.state", "2026-04-14T09:40:00+02:00", agent="a2", state="logged_out", queues=[]),
        ev("agent.state", "2026-04-14T10:02:00+02:00", agent="a3", state="wrap_up", queues=["avgifter"]),
    ]
    deriver = Deriver(store, agreements, track_changes=True)
    live = feed(store, agreements, events, deriver=deriver, clock=at("2026-04-14T10:02:00+02:00"))
    s = samples(live)
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 2
    assert s[("availability_queue_oldest_wait_seconds", ("kundreskontra",))] == 120  # 10:00:00 -> 10:02:00
    assert s[("availability_queue_agents", ("kundreskontra", "ready"))] == 1  # a1
    assert s[("availability_queue_agents", ("kundreskontra", "busy"))] == 0  # a2 logged out since
    assert s[("availability_queue_agents", ("avgifter", "wrap_up"))] == 1  # a3
    assert s[("availability_queue_open", ("kundreskontra",))] == 1  # Tuesday 10:02
    answer = call("w1", ("answered", "2026-04-14T10:03:00+02:00", K | {"agent": "a1"}))
    feed(store, agreements, answer, live=live, deriver=deriver)
    assert samples(live)[("availability_queue_waiting", ("kundreskontra",))] == 1  # only w2 left


def test_mailbox_breached_and_breaching_within_the_hour(agreements):
    events = [
        received("2026-04-14T08:00:00+02:00", "old"),  # 8.5 business hours by 16:30: past 8 h
        received("2026-04-14T13:00:00+02:00", "prio", priority=True),  # 3.5 h of 4 h: breaches within the hour
        received("2026-04-14T16:00:00+02:00", "new"),  # 0.5 h
        received("2026-04-14T16:30:00+02:00", "x"),  # at closing time: 0 h
    ]
    s = samples(feed(MemoryStore(), agreements, events, clock=at("2026-04-14T16:30:00+02:00")))
    assert s[("availability_mailbox_open_cases", ("kundreskontra", "false"))] == 3
    assert s[("availability_mailbox_open_cases", ("kundreskontra", "true"))] == 1
    assert s[("availability_mailbox_breached_cases", ("kundreskontra", "false"))] == 1
    assert s[("availability_mailbox_breaching_within_hour", ("kundreskontra", "true"))] == 1
    assert s[("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",))] == 8.5 * 3600
    assert s[("availability_mailbox_open", ("kundreskontra",))] == 0  # 16:30 is closing time


WATCHED = [
    ("availability_queue_waiting", ("kundreskontra",)),
    ("availability_queue_oldest_wait_seconds", ("kundreskontra",)),
    ("availability_queue_agents", ("kundreskontra", "ready")),
    ("availability_mailbox_open_cases", ("kundreskontra", "false")),
    ("availability_mailbox_open_cases", ("kundreskontra", "true")),
    ("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",)),
]


def restart_scene():
    """Two waiting calls, one answered, two agents ready and two open cases, at 10:01."""
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
        received("2026-04-14T08:00:00+02:00", "t1"),
        received("2026-04-14T09:00:00+02:00", "t2", priority=True),
    ]
    return events


def test_a_restarted_worker_restores_the_gauges_from_the_store(agreements):
    store = MemoryStore()
    clock = at("2026-04-14T10:01:00+02:00")
    before = samples(feed(store, agreements, restart_scene(), clock=clock))
    # w1 and w2 wait (w1 for 60 s); a1 and a2 are ready (a1's latest state); t1 and t2 are open,
    # t1 for 08:00 -> 10:01, 2 h 1 min of business time.
    assert [before[w] for w in WATCHED] == [2, 60, 2, 1, 1, 7260]

    restarted = LiveState(agreements, clock=clock)  # a new process owning every partition
    restarted.restore(store, lambda kind, key: True)
    after = samples(restarted)
    assert [after[w] for w in WATCHED] == [before[w] for w in WATCHED]
    assert restarted.skipped_rows == 0

    # Two workers, each owning one half of the keys, sum to the same counts.
    halves = [LiveState(agreements, clock=clock), LiveState(agreements, clock=clock)]
    for i, live in enumerate(halves):
        live.restore(store, lambda kind, key, i=i: hash(key) % 2 == i)
    for w in [WATCHED[0], *WATCHED[2:5]]:  # the counts (an oldest wait does not add up)
        assert sum(samples(h)[w] for h in halves) == before[w], w


def test_restore_reads_only_the_window_around_the_clock(agreements):
    store = MemoryStore()
    events = [
        *call("stale", ("queued", "2026-04-14T05:00:00+02:00", K)),  # waiting 5 h by 10:01: over 4 h, lost its end
        *call("fresh", ("queued", "2026-04-14T10:00:00+02:00", K)),
        ev("agent.state", "2026-04-12T09:00:00+02:00", agent="old", state="ready", queues=["kundreskontra"]),
        ev("agent.state", "2026-04-14T09:00:00+02:00", agent="now", state="ready", queues=["kundreskontra"]),
    ]
    Deriver(store, agreements).apply(events)
    # Stored by a version before the Deriver refused times after 2100.
    store.insert_events(
        [ev("agent.state", "2150-01-01T00:00:00Z", agent="future", state="ready", queues=["kundreskontra"])]
    )
    live = LiveState(agreements, clock=at("2026-04-14T10:01:00+02:00"))
    live.restore(store, lambda kind, key: True)
    # Only the call first queued within 4 h, and the agent whose state is within the last day and
    # not ahead of the clock (by more than 5 minutes).
    assert set(live.waiting) == {"fresh"}
    assert set(live.agents) == {"now"}


class OldStore(MemoryStore):
    """A store written by an earlier version: rows the live state cannot use come with the good ones."""

    def waiting_calls(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        return [*super().waiting_calls(since, until), ("gone", "a-queue-no-longer-defined", since)]

    def open_cases(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        good = super().open_cases(since, until)
        opened_1989 = good[0] | {"thread_id": "t0", "opened_at": datetime.fromisoformat("1989-12-31T09:00:00+00:00")}
        other_mailbox = good[0] | {"mailbox": "gone", "thread_id": "t9"}
        return [*good, opened_1989, other_mailbox]

    def agent_states(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        return [*super().agent_states(since, until), ("a7", "{not json"), ("a8", '{"type": "agent.gone"}')]


def test_restore_skips_and_counts_rows_it_cannot_use(agreements):
    store = OldStore()
    clock = at("2026-04-14T10:01:00+02:00")
    events = [
        *call("w1", ("queued", "2026-04-14T10:00:00+02:00", K)),
        received("2026-04-14T08:00:00+02:00", "t1"),
        ev("agent.state", "2026-04-14T09:50:00+02:00", agent="a1", state="ready", queues=["kundreskontra"]),
    ]
    Deriver(store, agreements).apply(events)
    live = LiveState(agreements, clock=clock)
    live.restore(store, lambda kind, key: True)  # never raises for a bad row
    # Five bad rows: an unknown queue, a case before 1990, an unknown mailbox, two bad payloads.
    assert live.skipped_rows == 5
    s = samples(live)
    # The good rows are restored: w1 waiting 60 s, a1 ready, t1 open 2 h 1 min (not breached).
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 1
    assert s[("availability_queue_oldest_wait_seconds", ("kundreskontra",))] == 60
    assert s[("availability_queue_agents", ("kundreskontra", "ready"))] == 1
    assert s[("availability_mailbox_open_cases", ("kundreskontra", "false"))] == 1
    assert s[("availability_mailbox_breached_cases", ("kundreskontra", "false"))] == 0


@pytest.mark.parametrize("owned", ["call", "mail", "agent"])
def test_restore_keeps_only_what_the_worker_owns(agreements, owned):
    store = MemoryStore()
    Deriver(store, agreements).apply(restart_scene())
    live = LiveState(agreements, clock=at("2026-04-14T10:01:00+02:00"))
    live.restore(store, lambda kind, key: kind == owned)
    held = {"call": len(live.waiting), "mail": len(live.open_cases), "agent": len(live.agents)}
    # The scene has 2 waiting calls, 2 open cases and 2 agents; the worker owns one kind only.
    assert held == {kind: 2 if kind == owned else 0 for kind in held}


def test_a_shifted_clock_with_an_anchor_reads_its_start_at_that_instant() -> None:
    """Two processes given the same start, speed and anchor read the same time, whenever each
    was made: at 600×, the anchor 10 wall seconds ago puts the clock 100 minutes past its start."""
    from stream_jobs.core.live import shifted_clock

    start = datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    wall = iter([1000.0, 1000.0, 1010.0]).__next__
    clock = shifted_clock(start, 600.0, wall=wall, anchor=1000.0)
    assert clock() == start
    assert clock() == start
    assert clock() == start + timedelta(minutes=100)
    unanchored = shifted_clock(start, 2.0, wall=iter([50.0, 53.0]).__next__)  # origin: when made
    assert unanchored() == start + timedelta(seconds=6)
