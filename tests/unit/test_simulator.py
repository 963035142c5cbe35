"""The traffic simulator (ingest/simulator/traffic.py) on the default agreements."""

from __future__ import annotations

import io
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from itertools import pairwise

import pytest

from ingest.simulator import simulate, write_jsonl
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


def test_every_type_and_both_abandon_forms_occur(week: list[E.Event]) -> None:
    types = Counter(E.type_name(ev) for ev in week)
    assert set(types) == set(E.TYPE_NAMES)
    by_call: dict[str, list[str]] = defaultdict(list)
    for ev in week:
        if isinstance(ev.data, E.CallEndedData | E.CallQueueData | E.CallQueuedData | E.CallAnsweredData):
            by_call[ev.data.call_id].append(E.type_name(ev))
    with_abandoned = [c for c, ts in by_call.items() if "call.abandoned" in ts]
    ended_only = [c for c, ts in by_call.items() if ts[-2:] == ["call.queued", "call.ended"]]
    internal = [c for c, ts in by_call.items() if ts.count("call.queued") > 1 and "call.answered" in ts]
    assert with_abandoned and ended_only and internal


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
