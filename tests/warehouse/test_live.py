"""The live metrics (docs/live-metrics.md) against hand-computed values and the monthly report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from availability.settings import Settings
from availability.wiring import Wiring
from dashboards.report import monthly_report
from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import decode, encode
from stream_jobs.core.deriver import BatchResult, Deriver
from stream_jobs.core.live import OUTCOMES, LiveState
from stream_jobs.warehouse import EVENT_COLUMNS
from tests.conftest import call, ev

# The live state's helpers, store-agnostic: here they run on the ClickHouse warehouse.
from tests.unit.test_live_state import K, at, feed, kpi_events, samples


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
    live = feed(warehouse, agreements, events, clock=at("2026-04-14T10:02:00+02:00"))
    s = samples(live)
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 2
    # The clock says 10:02:00: w1 has waited 120 s.
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
    s = samples(feed(warehouse, agreements, events, clock=at("2026-04-14T16:30:00+02:00")))
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
    live = LiveState(agreements, clock=at("2026-03-04T12:00:00+00:00"))  # "today" is the simulated day
    deriver = Deriver(warehouse, agreements, track_changes=True)
    for i in range(0, len(events), 500):  # in batches, as the worker gets them
        batch = events[i : i + 500]
        live.observe(batch, deriver.apply(batch))
    report = monthly_report(warehouse, agreements, "2026-03", now=datetime(2027, 1, 1, tzinfo=UTC))
    s = samples(live)
    for qid, r in report["queues"].items():
        n = {o: s[("availability_queue_today_contacts", (qid, o))] for o in OUTCOMES}
        assert (
            n["answered_in_sl"] + n["answered_late"] + n["abandoned"] + n["abandoned_short"] + n["callback"]
            + n["flowed_out"] == r["offered"]
        ), qid  # fmt: skip
        assert n["out_of_hours"] == r["out_of_hours"], qid
        assert n["flowed_out"] == r["flowed_out"], qid
        base = n["answered_in_sl"] + n["answered_late"] + n["abandoned"] + n["flowed_out"]
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
    clock = at("2026-04-14T10:01:00+02:00")
    before = samples(feed(warehouse, agreements, events, clock=clock))
    watched = [
        ("availability_queue_waiting", ("kundreskontra",)),
        ("availability_queue_oldest_wait_seconds", ("kundreskontra",)),
        ("availability_queue_agents", ("kundreskontra", "ready")),
        ("availability_mailbox_open_cases", ("kundreskontra", "false")),
        ("availability_mailbox_open_cases", ("kundreskontra", "true")),
        ("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",)),
    ]
    # The clock says 10:01:00: w1 has waited 60 s.
    assert [before[w] for w in watched][:4] == [2, pytest.approx(60, abs=2), 2, 1]

    restarted = LiveState(agreements, clock=clock)  # a new process owning every partition
    restarted.restore(warehouse, lambda kind, key: True)
    after = samples(restarted)
    for w in watched:
        assert after[w] == pytest.approx(before[w], abs=2), w

    # Two workers, each owning one half of the keys (by a partition rule), sum to the same.
    halves = [LiveState(agreements, clock=clock), LiveState(agreements, clock=clock)]
    for i, live in enumerate(halves):
        live.restore(warehouse, lambda kind, key, i=i: hash(key) % 2 == i)
    for name, labels in watched:
        if name in ("availability_queue_waiting", "availability_queue_agents", "availability_mailbox_open_cases"):
            assert sum(samples(h)[(name, labels)] for h in halves) == before[(name, labels)], name


# -- hardening: the wall clock, bounded labels, bad stored rows (issue #7, items 1, 8 and 12) ------------


def open_case_and_waiting_call():
    """An open mail case received 08:00 and a call waiting since 10:00, on Tuesday 14 April."""
    return [
        *call("w1", ("queued", "2026-04-14T10:00:00+02:00", K)),
        ev(
            "mail.received",
            "2026-04-14T08:00:00+02:00",
            source="imap/kundreskontra",
            mailbox="kundreskontra",
            message_id="m1",
            thread_id="t1",
        ),
    ]


FROM_2150 = ev("agent.state", "2150-01-01T00:00:00Z", agent="a9", state="ready", queues=["kundreskontra"])


def test_an_event_dated_2150_does_not_move_now_not_even_after_a_restart(warehouse, agreements):
    clock = at("2026-04-14T10:02:00+02:00")
    done = call(
        "done",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:30+02:00", K | {"agent": "a1"}),
    )
    # Stored as it was before the live boundary rejected it (the issue: it made every open case
    # breached and today's contacts 0, and the restore read it back from max(time)).
    live = feed(warehouse, agreements, [*open_case_and_waiting_call(), *done, FROM_2150], clock=clock)
    restarted = LiveState(agreements, clock=clock)
    restarted.restore(warehouse, lambda kind, key: True)
    for state in (live, restarted):
        s = samples(state)
        assert state.now() == clock()
        # By the clock (10:02), not by 2150: w1 has waited 120 s; the case is 2 business hours old (08:00-10:02).
        assert s[("availability_queue_oldest_wait_seconds", ("kundreskontra",))] == pytest.approx(120)
        assert s[("availability_mailbox_breached_cases", ("kundreskontra", "false"))] == 0
        assert s[("availability_mailbox_oldest_open_business_seconds", ("kundreskontra",))] == pytest.approx(
            2 * 3600 + 120
        )
        assert s[("availability_queue_open", ("kundreskontra",))] == 1  # Tuesday 10:02
    # "today" is 14 April by the clock: the answer within 60 s counts (the restarted worker's
    # counters start at 0, as Prometheus expects).
    assert samples(live)[("availability_queue_today_contacts", ("kundreskontra", "answered_in_sl"))] == 1


def test_now_is_the_wall_clock_by_default(warehouse, agreements):
    live = feed(warehouse, agreements, [FROM_2150])
    assert abs(live.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_worker_boundary_rejects_events_more_than_five_minutes_ahead(agreements):
    clock = at("2026-04-14T10:02:00+02:00")
    boundary = Wiring(Settings()).boundary(agreements, live=True, clock=clock)  # the worker's
    agent = "a" * 32  # an agent's pseudonym, as on the topics

    def published(time: str) -> bytes:
        return encode(ev("agent.state", time, agent=agent, state="ready", queues=["kundreskontra"]))

    # spec/events.md: the live paths reject an event more than 5 minutes ahead, with a reason.
    assert "2150" in boundary.accept_published(published("2150-01-01T00:00:00Z")).reason
    assert not isinstance(boundary.accept_published(published("2026-04-14T10:06:00+02:00")), Rejection)  # 4 min ahead
    assert "10:08" in boundary.accept_published(published("2026-04-14T10:08:00+02:00")).reason  # 6 minutes ahead


def test_the_source_label_only_takes_known_values(agreements):
    live = LiveState(agreements, clock=at("2026-04-14T10:02:00+02:00"))
    # The issue: an e-mail address appeared as a label, and 20 000 sources gave 40 012 series.
    sources = ["callguide", "simulator", "imap/kundreskontra", "imap/avgifter", "anna@example.se"]
    sources += [f"source-{i}" for i in range(20_000)]
    events = [
        ev("agent.state", "2026-04-14T09:00:00+02:00", source=s, agent="a1", state="ready", queues=["kundreskontra"])
        for s in sources
    ]
    live.observe(events, BatchResult())
    labels = {labels[0] for (name, labels) in samples(live) if name.startswith("availability_source_")}
    # The fixed set (the webhook, the simulator, the queue_log adapter and the shipped ACE mapping)
    # and the agreements' mailboxes, polled or imported (the test agreements have only kundreskontra).
    assert labels == {"callguide", "simulator", "imap/kundreskontra", "other"}
    live.observe([ev("agent.state", "2026-04-14T09:00:00+02:00", source=s, agent="a1", state="ready",
                     queues=["kundreskontra"]) for s in ("asterisk", "telia-ace", "mail/kundreskontra")], BatchResult())  # fmt: skip
    labels = {labels[0] for (name, labels) in samples(live) if name.startswith("availability_source_")}
    assert labels == {
        "callguide",
        "simulator",
        "imap/kundreskontra",
        "asterisk",
        "telia-ace",
        "mail/kundreskontra",
        "other",
    }


def test_restore_and_collect_survive_bad_stored_rows(warehouse, agreements):
    clock = at("2026-04-14T10:01:00+02:00")
    events = [
        *open_case_and_waiting_call(),
        ev("agent.state", "2026-04-14T09:50:00+02:00", agent="a1", state="ready", queues=["kundreskontra"]),
        # What a warehouse written before the hardening can hold: a call waiting since 2150 (it
        # moved the restore's window) and an agent's state in 2150.
        *call("future", ("queued", "2150-01-01T00:00:00Z", K)),
        FROM_2150,
    ]
    feed(warehouse, agreements, events, clock=clock)
    # A payload that no longer decodes, one of an unknown type, a case opened in 1989 (before the
    # business clock starts) and one of a mailbox the agreements no longer define.
    t = datetime(2026, 4, 14, 7, 0, tzinfo=UTC)
    warehouse.client.insert(
        "events",
        [
            ["agent", "agent.state", "callguide", "bad1", t, "a7", "{not json"],
            ["agent", "agent.state", "callguide", "bad2", t, "a8", '{"type": "agent.gone"}'],
        ],
        column_names=EVENT_COLUMNS,
    )
    columns = ["mailbox", "thread_id", "seq", "opened_at", "opened_clock", "end", "priority", "target_seconds"]
    warehouse.client.insert(
        "mail_cases",
        [
            ["kundreskontra", "t0", 0, datetime(1989, 12, 31, 9, tzinfo=UTC), -1000.0, "", False, 28800.0],
            ["gone", "t9", 0, t, 0.0, "", False, 28800.0],
        ],
        column_names=columns,
    )
    live = LiveState(agreements, clock=clock)
    live.restore(warehouse, lambda kind, key: True)  # raised on the undecodable payload
    s = samples(live)  # /metrics answered 500 on every scrape
    # The call waiting since 10:00 is still restored (the window is the clock's, not 2150's), and
    # so are agent a1's state and the one good open case (2 business hours old: not breached).
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 1
    assert s[("availability_queue_oldest_wait_seconds", ("kundreskontra",))] == pytest.approx(60)
    assert s[("availability_queue_agents", ("kundreskontra", "ready"))] == 1
    assert s[("availability_mailbox_open_cases", ("kundreskontra", "false"))] == 1
    assert s[("availability_mailbox_breached_cases", ("kundreskontra", "false"))] == 0


def test_restore_skips_stored_payloads_that_no_longer_decode(warehouse, agreements):
    clock = at("2026-04-14T10:01:00+02:00")
    feed(
        warehouse,
        agreements,
        [ev("agent.state", "2026-04-14T09:50:00+02:00", agent="a1", state="ready", queues=["kundreskontra"])],
    )
    t = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    warehouse.client.insert(
        "events",
        [["agent", "agent.state", "callguide", "bad1", t, "a7", "{not json"]],
        column_names=EVENT_COLUMNS,
    )
    live = LiveState(agreements, clock=clock)
    live.restore(warehouse, lambda kind, key: True)  # raised msgspec.DecodeError: the worker could not start
    assert samples(live)[("availability_queue_agents", ("kundreskontra", "ready"))] == 1


def test_the_outlooks_earlier_weeks_read_the_same_arrivals_as_the_memory_store(warehouse, agreements):
    """Store.arrivals (the outlook's earlier weeks) on ClickHouse's queue_intervals equals the
    memory store's count from the facts: ordinary contacts per queue and 15 minutes, open or not;
    internal transfers left out; the window's end excluded."""
    from stream_jobs.core.store import MemoryStore

    events = list(simulate(agreements, date(2026, 4, 13), 2, seed=5, scale=0.5))
    memory = MemoryStore()
    Deriver(memory, agreements).apply(events)
    Deriver(warehouse, agreements).apply(events)
    since, until = datetime(2026, 4, 13, 6, 0, tzinfo=UTC), datetime(2026, 4, 14, 14, 0, tzinfo=UTC)
    stored = sorted(warehouse.arrivals(since, until))
    assert stored == sorted(memory.arrivals(since, until))
    assert sum(n for *_, n in stored) > 50
    assert all(since <= at < until for _, at, _ in stored)


def test_the_agent_events_a_restart_replays_are_the_memory_stores(warehouse, agreements):
    """Store.agent_events (a restarted worker's earlier weeks, LiveState._replay_agents) on
    ClickHouse's events table: every agent event of the window, by time then id, the window's
    end excluded; the same rows as the memory store's."""
    from stream_jobs.core.store import MemoryStore

    events = list(simulate(agreements, date(2026, 4, 13), 2, seed=5, scale=0.5))
    memory = MemoryStore()
    Deriver(memory, agreements).apply(events)
    Deriver(warehouse, agreements).apply(events)
    since, until = datetime(2026, 4, 13, 6, 0, tzinfo=UTC), datetime(2026, 4, 14, 14, 0, tzinfo=UTC)
    stored = warehouse.agent_events(since, until)
    assert stored == memory.agent_events(since, until)
    assert len(stored) > 100
    times = [decode(payload).time for _, payload in stored]
    assert times == sorted(times) and since <= times[0] and times[-1] < until
