"""The outlook (stream_jobs/core/outlook.py) and what the live state feeds it, by hand.

The Erlang A numbers themselves are checked in tests/unit/test_erlang.py; these check what is
built on them: the arrival forecast, the time to breach, the agents needed, the inputs the live
state gathers from events, and (on simulated traffic) that the outlook is not biased.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import Event
from stream_jobs.calibration import Interval, calibrate
from stream_jobs.core import outlook
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.outlook import QueueNow
from stream_jobs.core.store import MemoryStore
from tests.conftest import call, ev

NOW = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)  # Tue 10:00 in Stockholm
STOCKHOLM = ZoneInfo("Europe/Stockholm")  # the shipped agreements' time zone


def queue_now(**over: object) -> QueueNow:
    base: dict[str, object] = dict(
        arrivals_per_second=0.01, handle_seconds=300.0, patience_seconds=150.0, callback_share=0.0,
        agents=4.0, in_system=2, horizon_seconds=1800.0, threshold_seconds=60.0, target=0.8, past=(),
    )  # fmt: skip
    return QueueNow(**(base | over))  # type: ignore[arg-type]


# -- the arrival forecast ------------------------------------------------------------------------------


def test_without_history_the_forecast_is_the_recent_rate() -> None:
    # 18 calls in the last 30 minutes: 18 / 1800 s.
    assert outlook.expected_arrivals(18, lambda o, n: None, NOW) == pytest.approx(0.01)


def test_earlier_weeks_give_the_shape_and_today_the_level() -> None:
    # Earlier weeks: 10 in the half hour before, 30 in the half hour ahead (the morning peak).
    # Today 25 came in the half hour before: ratio (25 + 5) / (10 + 5) = 2, so 60 shaped; the
    # earlier weeks' weight is 30 / (30 + 5) = 6/7: 60 x 6/7 + 25 x 1/7 = 385/7 = 55.
    history = {timedelta(0): 30.0, -outlook.HORIZON: 10.0}
    rate = outlook.expected_arrivals(25, lambda o, n: history[o], NOW)
    assert rate * 1800 == pytest.approx(55.0)


def test_a_half_hour_without_calls_on_earlier_weeks_keeps_todays_rate() -> None:
    # Nothing ahead on earlier weeks (weight 0): today's 20 stand, not 0.
    assert outlook.expected_arrivals(20, lambda o, n: 0.0, NOW) * 1800 == pytest.approx(20.0)


def test_the_ratio_to_earlier_weeks_is_bounded() -> None:
    # (95 + 5) / (5 + 5) = 10 is held at 2: 2 x 40 = 80, weight 40/45: 80 x 8/9 + 95/9 = 735/9;
    # (0 + 5) / (45 + 5) = 0.1 at 0.5: 20 x 8/9 + 0 = 160/9.
    assert outlook.expected_arrivals(95, lambda o, n: 40.0 if o == timedelta(0) else 5.0, NOW) * 1800 == pytest.approx(
        735 / 9
    )
    assert outlook.expected_arrivals(0, lambda o, n: 40.0 if o == timedelta(0) else 45.0, NOW) * 1800 == pytest.approx(
        160 / 9
    )


def test_the_share_of_the_horizon_an_absent_agent_is_back() -> None:
    # Spells with a mean of 30 min over a 30 min horizon: 1 - (1 - e^-1) = e^-1 = 0.3679.
    assert outlook.available_share(1800, 1800) == pytest.approx(math.exp(-1))
    assert outlook.available_share(0, 1800) == 1.0
    assert outlook.available_share(300, 0) == 0.0


# -- time to breach and agents needed -------------------------------------------------------------------


def test_the_breach_comes_when_the_good_answers_leave_the_window() -> None:
    # Window: 4 answered within T, 25 min ago, and 1 late, 1 min ago: 4/5 = 80 %, on target.
    # Nothing more arrives (λ = 0): at +5 min the four leave the window (25 + 5 = 30 min),
    # leaving 0 of 1, but the rule judges only a base of 5 or more, so no breach is expected.
    quiet = queue_now(arrivals_per_second=0.0, past=[(1500.0, True)] * 4 + [(60.0, False)])
    assert outlook.seconds_to_breach(quiet, 1.0) == math.inf
    # With 1 call a minute expected at a level of 50 %: at +1 min, 4 + 0.5 of 6 = 75 % < 80 %.
    busy = queue_now(arrivals_per_second=1 / 60, past=[(1500.0, True)] * 4 + [(60.0, False)])
    assert outlook.seconds_to_breach(busy, 0.5) == 60.0
    # Already below: 3 of 5.
    below = queue_now(past=[(100.0, True)] * 3 + [(100.0, False)] * 2)
    assert outlook.seconds_to_breach(below, 1.0) == 0.0


def test_the_calls_waiting_now_enter_the_window_first() -> None:
    # The window: 8 answered within T = 20 s in the last 10 minutes (100 %). One agent, busy; six
    # callers have waited 30–80 s, past T; no new calls expected. The six will end outside T, so
    # within the first minute the window is 8 of 14 = 57 %: a breach in 60 s, not "none".
    stuck = queue_now(
        arrivals_per_second=0.0, agents=1.0, in_system=7, threshold_seconds=20.0,
        past=[(600.0, True)] * 8, waiting_ages=[30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
    )  # fmt: skip
    p = outlook.predict(stuck)
    assert p.seconds_to_breach == 60.0 and p.agents_needed >= 1
    # The same six, but only just queued (5 s, under T) and a level of 100 % expected: no breach.
    fresh = QueueNow(**(vars(stuck) | {"waiting_ages": [5.0] * 6}))
    assert outlook.seconds_to_breach(fresh, 1.0) == math.inf


def test_short_abandons_and_callbacks_do_not_flow_into_the_base() -> None:
    # A call a minute, half of them outside the base: 0.5 a minute into the window. Window: 4 met,
    # 25 min ago; the horizon's level 0 %, target 80 %. +1 min: 4 of 4.5 (base < 5, not judged);
    # +2: 4 of 5 = 80 %, on target; +3: 4 of 5.5 = 73 %: the breach. With the whole flow in the
    # base: +1 min 4 of 5 = 80 %, +2 min 4 of 6 = 67 %.
    now = queue_now(arrivals_per_second=1 / 60, base_share=0.5, past=[(1500.0, True)] * 4)
    assert outlook.seconds_to_breach(now, 0.0) == 180.0
    full = QueueNow(**(vars(now) | {"base_share": 1.0}))
    assert outlook.seconds_to_breach(full, 0.0) == 120.0


def test_an_understaffed_queue_is_at_risk_and_the_agents_needed_avoid_it() -> None:
    # One agent, ten waiting, 36 calls an hour of 5 minutes each (15 erlangs): hopeless at 1 agent.
    now = queue_now(arrivals_per_second=0.01, agents=1.0, in_system=11, past=[(600.0, True)] * 7)
    p = outlook.predict(now)
    assert p.service_level < 0.2
    assert 0 < p.seconds_to_breach <= 900
    assert p.agents_needed >= 1
    # With that many more, no breach is expected; with one fewer, it still is.
    level, _ = outlook.outlook(now, now.agents + p.agents_needed)
    assert outlook.seconds_to_breach(now, level) == math.inf
    if p.agents_needed > 1:
        fewer, _ = outlook.outlook(now, now.agents + p.agents_needed - 1)
        assert outlook.seconds_to_breach(now, fewer) < math.inf


def test_a_well_staffed_queue_needs_nobody() -> None:
    p = outlook.predict(queue_now(arrivals_per_second=0.005, agents=6.0, in_system=1, past=[(300.0, True)] * 6))
    assert p.service_level > 0.95 and p.seconds_to_breach == math.inf and p.agents_needed == 0
    assert p.contacts == pytest.approx(9.0)  # 0.005/s over 30 min


def test_fractional_agents_lie_between_the_whole_numbers() -> None:
    now = queue_now(arrivals_per_second=0.02)
    four, five, between = (outlook.outlook(now, n)[0] for n in (4.0, 5.0, 4.25))
    assert between == pytest.approx(four + 0.25 * (five - four))


def test_callbacks_are_left_out_of_the_base() -> None:
    # Half of those who leave unanswered book a callback: the base is 1 - (1 - answer rate) / 2.
    now = queue_now(arrivals_per_second=0.02, agents=3.0)
    plain, with_callbacks = outlook.outlook(now), outlook.outlook(QueueNow(**(vars(now) | {"callback_share": 0.5})))
    base = 1 - (1 - plain[1]) * 0.5
    assert with_callbacks[0] == pytest.approx(plain[0] / base)


# -- the inputs the live state gathers ----------------------------------------------------------------


K = {"queue": "kundreskontra"}


def test_the_live_state_gathers_arrivals_waits_handling_and_agents() -> None:
    agreements = load_agreements()
    clock = [datetime(2026, 4, 14, 8, 30, tzinfo=UTC)]  # Tue 10:30 in Stockholm
    store = MemoryStore()
    live = LiveState(agreements, clock=lambda: clock[0])
    deriver = Deriver(store, agreements, track_changes=True)
    t = "2026-04-14T10:{:02d}:00+02:00".format
    agent = {"agent": "a1"}
    events = [
        ev("agent.state", t(0), agent="a1", state="busy", queues=["kundreskontra"]),
        ev("agent.state", t(5), agent="a1", state="wrap_up", queues=["kundreskontra"]),
        ev("agent.state", t(6), agent="a1", state="ready", queues=["kundreskontra"]),  # handled 6 min
        ev("agent.state", t(1), agent="a2", state="busy", queues=["kundreskontra"]),
        *call("c1", ("queued", t(0), K), ("answered", t(1), K | agent)),  # waited 60 s
        *call("c2", ("queued", t(2), K), ("abandoned", t(4), K)),  # gave up after 120 s
        *call("c3", ("queued", t(20), K)),  # waiting
    ]
    live.observe(events, deriver.apply(events))
    now = live.queue_now("kundreskontra", clock[0])
    assert now is not None
    # 3 arrivals in the last 30 min, no history: 3 / 1800 s.
    assert now.arrivals_per_second == pytest.approx(3 / 1800)
    # Handle: one cycle of 360 s with 3 pseudo-cycles of 345 s: (360 + 1035) / 4.
    assert now.handle_seconds == pytest.approx((360 + 3 * 345) / 4)
    # Patience: 180 s waited, 1 left, with 3 pseudo-abandons over 450 s: 630 / 4.
    assert now.patience_seconds == pytest.approx((60 + 120 + 450) / 4)
    # Agents a1 ready and a2 busy serve it; in the system: a2's call and c3 waiting.
    assert (now.agents, now.in_system) == (2.0, 2)
    assert now.threshold_seconds == 60 and now.target == 0.8
    # The window's base: c1 within 60 s (T = 60 s: 60 is within), c2 abandoned.
    assert sorted(met for _, met in now.past) == [False, True]


def test_earlier_weeks_arrivals_come_from_the_store_on_the_same_local_time_across_dst() -> None:
    # Summer time began on Sun 29 March 2026: Tue 31 March 10:00 is 08:00 UTC, Tue 24 March
    # 10:00 was 09:00 UTC. Four calls that Tuesday between 10:00 and 10:30 local are "the same
    # interval a week earlier" for 31 March at 10:00.
    agreements = load_agreements()
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    events = [
        e
        for i in range(4)
        for e in call(
            f"h{i}",
            ("queued", f"2026-03-24T10:{5 * i:02d}:00+01:00", K),
            ("answered", f"2026-03-24T10:{5 * i:02d}:30+01:00", K | {"agent": "a"}),
        )
    ]
    deriver.apply(events)
    now = datetime(2026, 3, 31, 8, 0, tzinfo=UTC)
    live = LiveState(agreements, clock=lambda: now)
    live.load_history(store)
    assert live.history_mean("kundreskontra", now, timedelta(0), outlook.HORIZON) == pytest.approx(4.0)
    # The half hour before had no call that day, but the day is held: 0, not "unknown".
    assert live.history_mean("kundreskontra", now, -outlook.HORIZON, outlook.HORIZON) == 0.0
    # A queue with no call that day, which the store holds (kundreskontra had calls): 0.
    assert live.history_mean("avgifter", now, timedelta(0), outlook.HORIZON) == 0.0
    # A Monday: no earlier Monday is held at all (a new warehouse), so no history, not 0.
    monday = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert live.history_mean("kundreskontra", monday, timedelta(0), outlook.HORIZON) is None


# -- calibration on simulated traffic -----------------------------------------------------------------


def test_on_simulated_traffic_the_outlook_is_not_biased() -> None:
    """Two weekdays at scale 3 after a week of history: pooled over every judged half hour, the
    expected service level is within 5 points of the realised one (bench/calibration.py gives
    the full figures, docs/forecasting.md#calibration)."""
    rows = calibrate(load_agreements(), date(2026, 3, 10), 2, warmup_days=7, scale=3.0)
    judged = [r for r in rows if r.realised is not None]
    assert len(judged) > 100
    base = sum(r.base for r in judged)
    expected = sum(r.expected * r.base for r in judged) / base
    realised = sum((r.realised or 0) * r.base for r in judged) / base
    assert abs(expected - realised) < 0.05, (expected, realised)
    assert all(len(r.served) == outlook.SEGMENTS for r in judged)  # the worker sampled every minute


def test_told_what_then_happened_the_outlook_takes_it_instead_of_its_forecast() -> None:
    """bench/calibration.py splits the error into the inputs' and the rest: told the agents
    who served each segment and the half hour's arrivals, the outlook is that of a queue with
    those agents throughout and that rate."""
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    row = Interval("q", start, 0.9, 18.0, 0.5, 30, 36, queue_now(agents=4.0), served=(2.0,) * outlook.SEGMENTS)
    assert row.told(staffing=True) == pytest.approx(outlook.outlook(queue_now(agents=2.0))[0])
    assert row.told(arrivals=True) == pytest.approx(outlook.outlook(queue_now(arrivals_per_second=0.02))[0])
    both = outlook.outlook(queue_now(agents=2.0, arrivals_per_second=0.02))[0]
    assert row.told(staffing=True, arrivals=True) == pytest.approx(both)
    assert both < row.told(staffing=True) < outlook.outlook(queue_now())[0]
    assert replace(row, served=()).told(staffing=True) == pytest.approx(outlook.outlook(queue_now())[0])


def test_a_transfer_is_one_arrival_in_the_last_queue_and_short_abandons_stay_out() -> None:
    agreements = load_agreements()
    clock = [datetime(2026, 4, 14, 8, 30, tzinfo=UTC)]  # Tue 10:30 in Stockholm
    store = MemoryStore()
    live = LiveState(agreements, clock=lambda: clock[0])
    deriver = Deriver(store, agreements, track_changes=True)
    t = "2026-04-14T10:{:02d}:00+02:00".format
    first = call("t1", ("queued", t(1), K))
    moved = [ev("call.transferred", t(2), call_id="t1", queue="kundreskontra", to_queue="avgifter")]
    short = [
        *call("s1", ("queued", t(3), K)),
        ev("call.abandoned", "2026-04-14T10:03:02+02:00", call_id="s1", queue="kundreskontra"),
    ]
    for batch in (first, moved, short):  # the transfer comes in a later batch than the queuing
        live.observe(batch, deriver.apply(batch))
    # t1 is avgifter's arrival only (as the warehouse's intervals count it); s1 is kundreskontra's.
    assert list(live.arrived["avgifter"]) == [datetime(2026, 4, 14, 8, 1, tzinfo=UTC)]
    assert list(live.arrived["kundreskontra"]) == [datetime(2026, 4, 14, 8, 3, tzinfo=UTC)]
    # The 2 s abandon is short: not a patience sample, not in the window's base, but it lowers
    # the share of contacts that reach the base: (0 + 3 pseudo) / (1 + 3).
    now = live.queue_now("kundreskontra", clock[0])
    assert now is not None and not live.waits["kundreskontra"] and now.past == []
    assert now.base_share == pytest.approx(3 / 4)


def test_a_restart_takes_the_last_half_hours_arrivals_from_the_store_and_no_open_cycle() -> None:
    agreements = load_agreements()
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    t = "2026-04-14T10:{:02d}:00+02:00".format
    # Six calls between 10:00 and 10:15, stored before the restart at 10:20.
    deriver.apply([e for i in range(6) for e in call(f"r{i}", ("queued", t(2 * i), K), ("abandoned", t(2 * i + 1), K))])
    deriver.apply([ev("agent.state", t(5), agent="a1", state="busy", queues=["kundreskontra"])])
    clock = [datetime(2026, 4, 14, 8, 20, tzinfo=UTC)]
    live = LiveState(agreements, clock=lambda: clock[0])
    live._busy_since["a1"] = datetime(2026, 4, 14, 6, 0, tzinfo=UTC)  # a cycle begun long before
    live.restore(store, lambda kind, key: True)
    assert live._busy_since == {}
    clock[0] = datetime(2026, 4, 14, 8, 25, tzinfo=UTC)
    now = live.queue_now("kundreskontra", clock[0])
    # The window 09:55–10:25: the 10:00–10:15 interval's six from the store (before 10:20), none
    # seen since; no earlier week, so the rate is the recent count: 6 / 1800 s.
    assert now is not None and now.arrivals_per_second == pytest.approx(6 / 1800)


@functools.cache
def ran_through_eight_days() -> tuple[MemoryStore, LiveState, datetime]:
    """Eight simulated days from Mon 2 March, fed minute by minute as the worker feeds them and
    sampled at every minute as a scrape samples: the store, the live state and the clock's now
    (made once; the tests only read them)."""
    agreements = load_agreements()
    store, now = MemoryStore(), [datetime(2026, 3, 2, tzinfo=agreements.timezone).astimezone(UTC)]
    deriver = Deriver(store, agreements, track_changes=True)
    ran = LiveState(agreements, clock=lambda: now[0])
    batch: list[Event] = []

    def next_minute() -> None:
        ran.observe(batch, deriver.apply(batch))
        batch.clear()
        now[0] += timedelta(minutes=1)
        ran.sample_staffing(now[0])  # the state at the minute's start: the events before it

    for e in simulate(agreements, date(2026, 3, 2), 8, seed=3, scale=0.5):
        while e.time >= now[0] + timedelta(minutes=1):
            next_minute()
        batch.append(e)
    next_minute()
    return store, ran, now[0]


def test_a_restarted_worker_replays_the_earlier_weeks_agent_events_as_it_would_have_sampled_them() -> None:
    """A worker that restarts finds in the store what its outlook learned from the agents: the
    staffing it sampled every minute of the earlier weeks (the breaks and lunches to come), the
    handling cycles and the spells of not being ready. The restored state holds the same samples,
    minute for minute, the same cycles and spells, and so the same staffing change ahead."""
    store, ran, now = ran_through_eight_days()
    restarted = LiveState(ran.agreements, clock=lambda: now)
    restarted.restore(store, lambda kind, key: True)
    assert len(ran.staffing) > 8000 and sum(ran.staffing.values()) > 10_000
    # The minutes before now, exactly: none from the 21 days of the four weeks before the
    # traffic began (no agent event stored: unknown, not "nobody served").
    assert restarted.staffing == {k: n for k, n in ran.staffing.items() if k[1] < now}
    for queue in ran.agreements.queues:
        assert list(restarted.handling[queue]) == list(ran.handling[queue]), queue
        assert list(restarted.away[queue]) == list(ran.away[queue]), queue
    assert sum(len(d) for d in restarted.handling.values()) > 500
    # Mon 9 March, the eighth day, before the morning's coffee breaks: the change the outlook
    # expects from one earlier week (Mon 2 March), the same for both; not all zero.
    at = [datetime(2026, 3, 9, 9, m, tzinfo=UTC) for m in (0, 15, 30)]  # 10:00–10:30 local
    changes = [ran.staffing_change(q, t, outlook.HORIZON) for q in ran.agreements.queues for t in at]
    assert [restarted.staffing_change(q, t, outlook.HORIZON) for q in ran.agreements.queues for t in at] == changes
    assert any(c and any(c) for c in changes)


def test_each_restore_replays_for_the_agents_the_worker_owns_then() -> None:
    """A rolling update: the first assignment holds the agents whose name ends in an odd digit,
    the next all of them. The second restore replaces what the first replayed (samples, cycles
    and spells: none appended twice); a minute not begun at the restore is the process's own."""
    store, ran, now = ran_through_eight_days()
    worker = LiveState(ran.agreements, clock=lambda: now)
    worker.restore(store, lambda kind, key: kind != "agent" or key[-1] in "13579")
    some = worker.staffing
    assert 0 < sum(some.values()) < sum(ran.staffing.values())
    assert 0 < len(worker.handling["kundreskontra"]) < len(ran.handling["kundreskontra"])
    worker.staffing[("kundreskontra", now + timedelta(minutes=1))] = 99
    worker.restore(store, lambda kind, key: True)
    assert {k: n for k, n in worker.staffing.items() if k[1] < now} == {
        k: n for k, n in ran.staffing.items() if k[1] < now
    }
    assert worker.staffing[("kundreskontra", now + timedelta(minutes=1))] == 99
    assert list(worker.handling["kundreskontra"]) == list(ran.handling["kundreskontra"])
    assert list(worker.away["kundreskontra"]) == list(ran.away["kundreskontra"])
    # A worker that owns no agent has no earlier weeks: its outlook falls back to the spells.
    none = LiveState(ran.agreements, clock=lambda: now)
    none.restore(store, lambda kind, key: kind != "agent")
    assert none.staffing == {} and none.staffing_change("kundreskontra", now, outlook.HORIZON) is None


class TroubledStore(MemoryStore):
    """Agent events as ClickHouse may give them (a copy not yet merged away) beside what an older
    version wrote (a payload that no longer decodes) every day; on Wed 4 March only that (a gap);
    or none at all (the warehouse does not answer)."""

    broken = False
    gap = date(2026, 3, 4)

    def agent_events(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        if self.broken:
            raise ConnectionError("the warehouse does not answer")
        old = '{"type": "agent.state", "data": {"agent": "a9"'
        rows = [row for row in super().agent_events(since, until) for _ in range(2)]
        return [("a9", old)] + ([] if local_day(since) == self.gap else rows)


def local_day(t: datetime) -> date:
    return t.astimezone(STOCKHOLM).date()


def test_the_replay_takes_a_copy_once_skips_what_it_cannot_use_and_survives_a_store_that_fails() -> None:
    store, ran, now = ran_through_eight_days()
    troubled = TroubledStore()
    troubled.events = store.events
    clock = [now]
    worker = LiveState(ran.agreements, clock=lambda: clock[0])
    worker.restore(troubled, lambda kind, key: True)
    # As from the memory store, but for the gap: a day with only a bad row is unknown, not
    # "nobody served" (as are the four weeks before the traffic).
    expected = {k: n for k, n in ran.staffing.items() if k[1] < now and local_day(k[1]) != TroubledStore.gap}
    assert sum(local_day(k[1]) == TroubledStore.gap for k in ran.staffing) > 500
    assert worker.staffing == expected
    # The warehouse gone at a later restore: the earlier weeks are dropped (they could be of
    # another ownership), the outlook falls back to the spells; no exception.
    handled = list(worker.handling["kundreskontra"])
    troubled.broken = True
    worker.restore(troubled, lambda kind, key: True)
    assert worker.staffing == {} and worker.staffing_change("kundreskontra", now, outlook.HORIZON) is None
    assert list(worker.handling["kundreskontra"]) == handled  # what it had (the store holds no better)
    # Back 15 minutes later: the next batch replays them again.
    troubled.broken = False
    clock[0] = now + timedelta(minutes=15)
    worker.observe([], Deriver(MemoryStore(), ran.agreements, track_changes=True).apply([]))
    assert {k: n for k, n in worker.staffing.items() if k[1] < now} == expected


def test_a_minute_is_sampled_as_it_begins_at_its_first_scrape() -> None:
    """The replay samples a minute's start; so does the worker, keeping its first scrape of it."""
    agreements = load_agreements()
    live = LiveState(agreements, clock=lambda: NOW)
    deriver = Deriver(MemoryStore(), agreements, track_changes=True)
    ready = [ev("agent.state", "2026-04-14T09:59:00+02:00", agent="a1", state="ready", queues=["kundreskontra"])]
    live.observe(ready, deriver.apply(ready))
    live.sample_staffing(NOW + timedelta(seconds=5))
    away = [ev("agent.state", "2026-04-14T10:00:20+02:00", agent="a1", state="not_ready", queues=["kundreskontra"])]
    live.observe(away, deriver.apply(away))
    live.sample_staffing(NOW + timedelta(seconds=35))
    assert live.staffing[("kundreskontra", NOW)] == 1
