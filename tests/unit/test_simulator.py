"""The traffic simulator (ingest/simulator/traffic.py) on the default agreements."""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import pairwise

import pytest

from ingest.simulator import profiles as P
from ingest.simulator import simulate, write_jsonl
from ingest.simulator.phone import PhoneDay
from ingest.simulator.state import Out, Simulator, instant
from schemas import events as E
from schemas.agreements import Agreements, load_agreements, parse_agreements

SEED = 7
WEEK = date(2026, 3, 9)  # an ordinary Monday-to-Sunday week, not at a month start


@pytest.fixture(scope="module")
def agreements() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="module")
def week(agreements: Agreements) -> list[E.Event]:
    return list(simulate(agreements, WEEK, 7, SEED))


def _jsonl(events: Iterable[E.Event]) -> bytes:
    out = io.BytesIO()
    write_jsonl(events, out)
    return out.getvalue()


def _on(agreements: Agreements, events: list[E.Event], day: date) -> list[E.Event]:
    return [ev for ev in events if agreements.local(ev.time).date() == day]


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def test_same_arguments_give_byte_identical_output(agreements: Agreements, week: list[E.Event]) -> None:
    assert _jsonl(simulate(agreements, WEEK, 7, SEED)) == _jsonl(week)
    assert _jsonl(simulate(agreements, WEEK, 7, SEED + 1)) != _jsonl(week)


def test_write_jsonl_writes_one_event_per_line(week: list[E.Event]) -> None:
    out = io.BytesIO()
    assert write_jsonl(iter(week), out) == len(week)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(week)
    assert lines[0] == E.encode(week[0])


def test_simulate_is_lazy(agreements: Agreements) -> None:
    first = next(simulate(agreements, WEEK, 10_000, SEED))  # only the first day is generated
    assert agreements.local(first.time).date() == WEEK


def test_events_round_trip_through_the_canonical_codec(week: list[E.Event]) -> None:
    for ev in week:
        raw = E.encode(ev)
        back = E.decode(raw)
        assert back == ev
        assert E.encode(back) == raw


def _calls(events: Iterable[E.Event]) -> dict[str, list[E.Event]]:
    """Each call's events, in output order."""
    calls: dict[str, list[E.Event]] = defaultdict(list)
    for ev in events:
        if E.type_name(ev) in E.CALL_TYPES:
            calls[ev.data.call_id].append(ev)  # type: ignore[union-attr]
    return calls


def test_every_type_and_both_abandon_forms_occur(week: list[E.Event]) -> None:
    types = Counter(E.type_name(ev) for ev in week)
    assert set(types) == set(E.TYPE_NAMES)
    by_call = {c: [E.type_name(ev) for ev in events] for c, events in _calls(week).items()}
    with_abandoned = [c for c, ts in by_call.items() if "call.abandoned" in ts]
    ended_only = [c for c, ts in by_call.items() if ts[-2:] == ["call.queued", "call.ended"]]
    internal = [
        c for c, ts in by_call.items() if "call.answered" in ts and "call.queued" in ts[ts.index("call.answered") :]
    ]
    assert with_abandoned and ended_only and internal


def _same_second(calls: dict[str, list[E.Event]]) -> list[list[E.Event]]:
    """Groups of two or more events of one call that carry the same timestamp."""
    groups = []
    for events in calls.values():
        by_time: dict[datetime, list[E.Event]] = defaultdict(list)
        for ev in events:
            by_time[ev.time].append(ev)
        groups += [g for g in by_time.values() if len(g) > 1]
    return groups


def _follows(group: list[E.Event], first: type, then: type) -> bool:
    kinds = [type(ev) for ev in group]
    return first in kinds and then in kinds[kinds.index(first) + 1 :]


def test_each_call_follows_the_lifecycle(week: list[E.Event]) -> None:
    """Offered first, nothing after call.ended, and every step names the queue the call is waiting in."""
    for events in _calls(week).values():
        assert isinstance(events[0], E.CallOffered)
        waiting_in: str | None = None
        queued = False
        for ev in events[1:-1]:
            assert not isinstance(ev, E.CallEnded | E.CallOffered), events
        for ev in events[1:]:
            d = ev.data
            if isinstance(ev, E.CallQueued):
                assert waiting_in is None, events
                waiting_in, queued = ev.data.queue, True
            elif isinstance(ev, E.CallTransferred):
                assert waiting_in == ev.data.queue, events
                waiting_in = ev.data.to_queue
            elif isinstance(d, E.CallAnsweredData | E.CallQueueData | E.CallExitedData):
                direct = isinstance(ev, E.CallAnswered) and waiting_in is None and not queued  # never queued
                assert direct or waiting_in == d.queue, events
                waiting_in = None


def test_flow_outs_occur_at_a_low_rate_for_each_switch_reason(agreements: Agreements, week: list[E.Event]) -> None:
    queued = sum(1 for ev in week if isinstance(ev, E.CallQueued))
    exits = [ev for ev in week if isinstance(ev, E.CallExited)]
    reasons = Counter(ev.data.reason for ev in exits)
    assert 0 < len(exits) < 0.05 * queued
    assert reasons["timeout"] > 0 and reasons["exit_key"] > 0 and reasons["no_agents"] > 0
    calls = _calls(week)
    for ev in exits:
        events = calls[ev.data.call_id]
        i = events.index(ev)
        first = max(e.time for e in events[:i] if isinstance(e, E.CallQueued))  # this contact's first queued
        if ev.data.reason == "timeout":
            assert (ev.time - first).total_seconds() >= 300
        after = events[i + 1 :]
        assert not after or isinstance(after[0], E.CallEnded | E.CallQueued)  # voicemail, or the exit's queue
        if after and isinstance(after[0], E.CallQueued):
            assert ev.data.reason == "exit_key" and after[0].time == ev.time


def test_no_agents_flow_outs_only_when_nobody_is_logged_in(agreements: Agreements, week: list[E.Event]) -> None:
    state: dict[str, E.AgentStateData] = {}
    seen = 0
    for ev in week:
        if isinstance(ev, E.AgentStateChanged):
            state[ev.data.agent] = ev.data
        elif isinstance(ev, E.CallExited) and ev.data.reason == "no_agents":
            seen += 1
            assert agreements.queues[ev.data.queue].calendar.is_open(ev.time)
            assert not any(ev.data.queue in s.queues for s in state.values() if s.state != "logged_out")
    assert seen


def test_some_events_of_a_call_share_one_second(week: list[E.Event]) -> None:
    groups = _same_second(_calls(week))
    assert any(_follows(g, E.CallQueued, E.CallAnswered) for g in groups)  # answered at the queued second
    assert any(_follows(g, E.CallAnswered, E.CallQueued) for g in groups)  # answered and re-queued
    assert any(_follows(g, E.CallExited, E.CallQueued) for g in groups)  # exit key to another queue
    chains = [
        moves
        for g in groups
        if len(moves := [ev.data for ev in g if isinstance(ev, E.CallTransferred)]) >= 2
        and all(a.to_queue == b.queue and b.to_queue != a.queue for a, b in pairwise(moves))
    ]
    assert chains  # K -> A -> D in one second
    assert len(groups) < 0.5 * sum(1 for ev in week if isinstance(ev, E.CallOffered))


def test_callers_call_again_after_abandoning_and_some_get_through(agreements: Agreements, week: list[E.Event]) -> None:
    """Abandons in opening hours (not short) whose caller is answered within 24 h: abandoned_recovered."""
    abandons: list[tuple[str, datetime]] = []
    answered: dict[str, list[datetime]] = defaultdict(list)
    for events in _calls(week).values():
        caller, queued, short = events[0].data.caller, None, 0.0  # type: ignore[union-attr]
        for ev in events:
            if isinstance(ev, E.CallQueued):
                queue = agreements.queues[ev.data.queue]
                queued = ev.time if queue.calendar.is_open(ev.time) else None  # offered, not out of hours
                short = queue.short_abandon_seconds
            elif isinstance(ev, E.CallAnswered):
                answered[caller or ""].append(ev.time)
                queued = None
            elif isinstance(ev, E.CallAbandoned | E.CallEnded) and queued is not None:
                if (ev.time - queued).total_seconds() >= max(short, 10):
                    abandons.append((caller or "", ev.time))
                queued = None
            elif isinstance(ev, E.CallTransferred):
                continue
            else:
                queued = None
    recovered = [(c, t) for c, t in abandons if any(t < a <= t + timedelta(hours=24) for a in answered[c])]
    assert 0.1 * len(abandons) < len(recovered) < 0.6 * len(abandons)
    assert any(  # some only on another day
        all(a.date() != t.date() for a in answered[c] if t < a <= t + timedelta(hours=24)) for c, t in recovered
    )


def test_some_calls_are_answered_without_being_queued(week: list[E.Event]) -> None:
    calls = _calls(week)
    direct = [
        events
        for events in calls.values()
        if any(isinstance(ev, E.CallAnswered) for ev in events)
        and not any(isinstance(ev, E.CallQueued) for ev in events)
    ]
    assert 0 < len(direct) < 0.03 * len(calls)
    assert all(events[0].data.entrance == "direktval" for events in direct)  # type: ignore[union-attr]


def test_some_mail_carries_a_priority_category_from_the_source(week: list[E.Event]) -> None:
    received = [ev for ev in week if isinstance(ev, E.MailReceived)]
    flagged = Counter(tuple(ev.data.categories) for ev in received if ev.data.categories)
    assert set(flagged) == {("Priority",), ("priority",)}
    assert 0 < sum(flagged.values()) < 0.05 * len(received)


def test_named_queues_and_mailboxes_exist(agreements: Agreements, week: list[E.Event]) -> None:
    for ev in week:
        d = ev.data
        for name in ("queue", "to_queue"):
            if hasattr(d, name):
                assert getattr(d, name) in agreements.queues
        if isinstance(d, E.AgentStateData):
            assert all(q in agreements.queues for q in d.queues)
        if isinstance(d, E.MailReceivedData | E.MailRepliedData | E.MailClosedData):
            assert d.mailbox in agreements.mailboxes
            assert ev.source == f"imap/{d.mailbox}"
        else:
            assert ev.source == "simulator"


def test_times_are_aware_and_non_decreasing_across_dst(agreements: Agreements) -> None:
    # DST starts 29 March and ends 25 October; seed 3 has mail in the repeated hour 02:00-03:00
    for start, seed in ((date(2026, 3, 27), SEED), (date(2026, 10, 23), SEED), (date(2026, 10, 23), 3)):
        times = [ev.time for ev in simulate(agreements, start, 4, seed)]
        assert all(t.tzinfo is not None and t.utcoffset() is not None for t in times)
        assert all(a <= b for a, b in pairwise(times))


def test_ids_are_unique_and_deterministic(week: list[E.Event]) -> None:
    ids = [ev.id for ev in week]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"sim{SEED}-202603(09|1[0-5])-\d+", i) for i in ids)


def test_no_call_is_answered_while_its_queue_is_closed(agreements: Agreements) -> None:
    events = list(simulate(agreements, date(2026, 3, 30), 10, SEED))  # skärtorsdag, Easter, Valborg
    answered = [ev for ev in events if isinstance(ev, E.CallAnswered)]
    assert answered
    for ev in answered:
        assert agreements.queues[ev.data.queue].calendar.is_open(ev.time), ev


def test_good_friday_has_out_of_hours_calls_but_no_answers(agreements: Agreements) -> None:
    good_friday = date(2026, 4, 3)
    day = _on(agreements, list(simulate(agreements, good_friday - timedelta(days=1), 3, SEED)), good_friday)
    assert any(isinstance(ev, E.CallQueued) for ev in day)  # out-of-hours demand
    assert not any(isinstance(ev, E.CallAnswered | E.AgentStateChanged | E.MailReplied) for ev in day)


def test_calls_end_and_replies_answer_a_received_message(week: list[E.Event]) -> None:
    last: dict[str, str] = {}
    received: dict[str, set[str]] = defaultdict(set)
    for ev in week:
        if isinstance(ev.data, E.CallOfferedData):
            assert ev.data.call_id not in last and re.fullmatch(r"\+467\d{8}", ev.data.caller or "")
        if E.type_name(ev) in E.CALL_TYPES:
            last[ev.data.call_id] = E.type_name(ev)  # type: ignore[union-attr]
        if isinstance(ev, E.MailReceived):
            received[ev.data.thread_id].add(ev.data.message_id)
        if isinstance(ev, E.MailReplied):
            assert ev.data.in_reply_to in received[ev.data.thread_id]
    ended = sum(1 for t in last.values() if t == "call.ended")
    assert ended >= 0.99 * len(last)  # all but calls still going at the end of the range


def test_month_start_has_more_avgifter_calls_than_mid_month(agreements: Agreements) -> None:
    events = list(simulate(agreements, date(2026, 3, 2), 19, SEED))
    per_day = Counter(
        agreements.local(ev.time).day for ev in events if isinstance(ev, E.CallQueued) and ev.data.queue == "avgifter"
    )
    first_five = sum(per_day[d] for d in range(2, 7))  # Mon 2 - Fri 6 March: working days 1-5
    mid_month = sum(per_day[d] for d in range(16, 21))  # Mon 16 - Fri 20 March
    assert first_five > 1.4 * mid_month


def test_scale_two_gives_about_twice_the_calls(agreements: Agreements, week: list[E.Event]) -> None:
    def calls(events: Iterable[E.Event]) -> int:
        return sum(1 for ev in events if isinstance(ev, E.CallOffered))

    ratio = calls(simulate(agreements, WEEK, 7, SEED, scale=2.0)) / calls(week)
    assert 1.75 < ratio < 2.25


def test_some_subjects_carry_priority_keywords_in_several_spellings(week: list[E.Event]) -> None:
    subjects = [ev.data.subject or "" for ev in week if isinstance(ev, E.MailReceived)]
    priority = [s for s in subjects if re.search(r"(?<!\w)(anstand|makuler|avbetalning)", _fold(s))]
    assert 0.02 * len(subjects) < len(priority) < 0.3 * len(subjects)
    spellings = {re.sub(r"\d+", "N", s) for s in priority}
    assert {"ansökan om anstand", "AVBETALNING", "faktura makuleras"} <= spellings


def test_fake_personal_data_only(week: list[E.Event]) -> None:
    for ev in week:
        if isinstance(ev, E.MailReceived):
            assert re.fullmatch(r"[a-z]+\d*@([a-z]+\d*\.)*example\.(com|net|org)", ev.data.sender or "")
            assert re.fullmatch(r"<[0-9a-f]{10}\.\d{8}\.\d+@example\.se>", ev.data.message_id)


def test_agents_follow_their_roster(agreements: Agreements, week: list[E.Event]) -> None:
    states = [ev for ev in week if isinstance(ev, E.AgentStateChanged)]
    assert {ev.data.state for ev in states} == {"ready", "busy", "wrap_up", "not_ready", "logged_out"}
    assert any(len(ev.data.queues) == 2 for ev in states)  # some agents serve two queues
    for ev in states:
        if ev.data.state == "ready":
            assert all(agreements.queues[q].calendar.is_open(ev.time) for q in ev.data.queues[:1])
    assert not any(agreements.local(ev.time).weekday() >= 5 for ev in states)


def test_other_agreements_get_default_profiles() -> None:
    other = parse_agreements(
        {
            "timezone": "Europe/Stockholm",
            "calendars": {"dygnet": {"hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}},
            "queues": {"support": {"name": "Support", "calendar": "dygnet", "service_level_seconds": 30,
                                   "service_level_target": 1.0, "answer_rate_target": 1.0}},
            "mailboxes": {"info": {"name": "Info", "calendar": "dygnet", "response_target": "2h",
                                   "priority_keywords": []}},
        }
    )  # fmt: skip
    events = list(simulate(other, WEEK, 3, SEED))
    assert any(isinstance(ev, E.CallAnswered) for ev in events)
    assert any(isinstance(ev, E.MailReplied) for ev in events)
    assert {ev.data.queue for ev in events if isinstance(ev, E.CallQueued)} == {"support"}


def _phone_day(agreements: Agreements, day: date) -> tuple[Simulator, PhoneDay]:
    sim = Simulator(agreements, SEED, 3.0)
    bounds = [instant(day, h * 60, agreements.timezone) for h in range(25)]
    return sim, PhoneDay(sim, day, Out(sim, day), bounds)


def _what(items: list[tuple[float, int, E.Event]]) -> list[tuple[float, str, str | None, object]]:
    """The events without their ids (a fork numbers its own)."""
    return [(t, type(ev).__name__, ev.subject, ev.data) for t, _, ev in items]


def test_a_fork_given_the_days_random_numbers_replays_the_rest_of_the_day(agreements: Agreements) -> None:
    """bench/oracle.py's ceiling rests on the fork being the whole day as it stands (every
    caller waiting, every agent's shift, every timer): with the day's own random state and
    callers it emits exactly what the day then does; forking leaves the day and its redials
    untouched. A fork with new callers draws those still to call afresh: none before now."""
    sim, day = _phone_day(agreements, WEEK)
    ten = instant(WEEK, 10 * 60, agreements.timezone)  # the morning peak: callers waiting, agents busy
    day.begin()
    day.advance(ten)
    before = len(day.out.items)
    twin = day.fork("replay", new_callers=False)
    twin.rng.setstate(day.rng.getstate())
    other = day.fork("other")
    for d in (day, twin, other):
        d.advance(float("inf"))
    assert twin.out.items[0][2].id == "replay-0"
    assert _what(twin.out.items) == _what(day.out.items[before:])

    def offered(items: list[tuple[float, int, E.Event]]) -> list[float]:
        return [t for t, _, ev in items if isinstance(ev, E.CallOffered) and ev.data.entrance == P.ENTRANCE]

    theirs, ours = offered(other.out.items), offered(day.out.items[before:])
    assert min(theirs) >= ten  # another afternoon's callers: only the redials booked before keep their time
    assert len(set(theirs) & set(ours)) < 0.1 * len(ours)
    assert 0.8 < len(theirs) / len(ours) < 1.25  # from the same process (thousands of calls at scale 3)
    straight_sim, straight = _phone_day(agreements, WEEK)
    straight.run()
    assert [ev for *_, ev in straight.out.items] == [ev for *_, ev in day.out.items]
    assert sim.redials == straight_sim.redials and sim.redials
