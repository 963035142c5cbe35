"""Contract v2 (spec revised 2026-11-28, issue #9): the contact rules made exact, one call at a time.

Each case of the issue is written with its events and the values worked out by hand. Times are
local summer time (+02:00) on Wednesday 1 April 2026, when the `kontor` calendar is open 08:00-16:30.
Same-instant cases run with the events' ids in both orders (and the list reversed): the spec orders
them by the call's lifecycle, never by their ids, so the result must not move.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements, parse_agreements
from schemas.events import Event, MailReceived
from stream_jobs.core.calls import ABANDONED, ANSWERED, CALLBACK, FLOWED_OUT, WAITING, CallFact, derive_call
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import OUTCOMES, LiveState
from stream_jobs.core.mail import derive_thread, working_day_deadline
from stream_jobs.core.ordering import preferred
from stream_jobs.core.store import MemoryStore
from tests.conftest import AGREEMENTS, ev
from tests.unit.test_live_state import at, feed, samples

K, A, D = "kundreskontra", "avgifter", "redovisning"
DAY = "2026-04-01T"


@pytest.fixture(scope="module")
def v2() -> Agreements:
    """The test agreements with a third queue and extra thresholds of 20 s and 120 s on K."""
    raw = copy.deepcopy(AGREEMENTS)
    raw["queues"][K]["extra_service_levels"] = [20, 120]
    raw["queues"][D] = raw["queues"][A] | {"name": "Redovisning"}
    return parse_agreements(raw)


def step(kind: str, hhmmss: str, id: str, **data: str) -> Event:
    return ev(f"call.{kind}", f"{DAY}{hhmmss}+02:00", id=id, call_id="c1", **data)


def fold(agreements: Agreements, events: list[Event]) -> CallFact:
    return derive_call("c1", events, agreements)


def every_order(agreements: Agreements, make: object) -> CallFact:
    """Derive with ids in two opposite orders and the events in two opposite orders; all four must
    agree, and the one fact is returned. `make(ids)` builds the events from a list of ids."""
    n = 16
    facts = []
    for ids in ([f"e{i:02d}" for i in range(n)], [f"e{n - i:02d}" for i in range(n)]):
        events = make(ids)  # type: ignore[operator]
        facts += [fold(agreements, events), fold(agreements, events[::-1])]
    assert all(f == facts[0] for f in facts[1:])
    return facts[0]


# -- the seven cases of the issue --------------------------------------------------------------------


def test_1_answered_without_ever_being_queued_is_no_contact(v2):
    """offered 11:10:00, answered in K 11:10:30, ended: a direct call to an agent, not a contact
    (the landed code counted offered 1, answered 1, wait 0)."""
    f = fold(
        v2,
        [
            step("offered", "11:10:00", "o", entrance="0101234500"),
            step("answered", "11:10:30", "a", queue=K, agent="ag1"),
            step("ended", "11:14:00", "e"),
        ],
    )
    assert f.contacts == ()


def test_1b_abandoned_or_ended_without_being_queued_is_no_contact(v2):
    """A hang-up in the menu (ended) or an abandon naming a queue the call never entered."""
    assert fold(v2, [step("offered", "11:10:00", "o", entrance="x"), step("ended", "11:10:20", "e")]).contacts == ()
    assert fold(v2, [step("abandoned", "11:10:20", "b", queue=K)]).contacts == ()


def test_2_requeued_after_a_callback_request_is_an_ordinary_contact(v2):
    """queued K 10:30, callback K 10:31, queued A 10:40, answered A 10:41: K has a callback (wait
    60 s, out of the base); A an ordinary contact answered after 60 s (not an internal transfer)."""
    f = fold(
        v2,
        [
            step("queued", "10:30:00", "q1", queue=K),
            step("callback_requested", "10:31:00", "cb", queue=K),
            step("queued", "10:40:00", "q2", queue=A),
            step("answered", "10:41:00", "an", queue=A, agent="ag1"),
        ],
    )
    k, a = f.contacts
    assert (k.queue, k.outcome, k.wait_seconds, k.internal) == (K, CALLBACK, 60, False)
    assert (a.queue, a.outcome, a.wait_seconds, a.internal) == (A, ANSWERED, 60, False)
    assert a.in_service_level  # 60 s <= A's 120 s
    assert a.transferred_from == () and k.transferred_from == ()
    assert [c.seq for c in f.contacts] == [1, 2]


def test_4_a_transfer_chain_in_one_second_follows_the_chain_not_the_ids(v2):
    """queued K 10:00, at 10:01:00 transferred K→A and A→D, answered D 10:02: the contact left K and
    A once each and counts in D with its wait from 10:00 (120 s); D has no transfer out."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("transferred", "10:01:00", ids[1], queue=K, to_queue=A),
            step("transferred", "10:01:00", ids[2], queue=A, to_queue=D),
            step("answered", "10:02:00", ids[3], queue=D, agent="ag1"),
        ]

    f = every_order(v2, make)
    (c,) = f.contacts
    assert (c.queue, c.outcome, c.wait_seconds, c.transferred_from) == (D, ANSWERED, 120, (K, A))


def test_5_answer_and_requeue_in_one_second_is_an_internal_transfer_not_a_transfer_out(v2):
    """queued K 10:00, answered K 10:03:00, queued A 10:03:00, answered A 10:04: K's contact is
    answered after 180 s and left no queue; A's is an internal transfer (answered 60 s later)."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("answered", "10:03:00", ids[1], queue=K, agent="ag1"),
            step("queued", "10:03:00", ids[2], queue=A),
            step("answered", "10:04:00", ids[3], queue=A, agent="ag2"),
        ]

    f = every_order(v2, make)
    k, a = f.contacts
    assert (k.queue, k.outcome, k.wait_seconds, k.transferred_from, k.internal) == (K, ANSWERED, 180, (), False)
    assert (a.queue, a.outcome, a.wait_seconds, a.transferred_from, a.internal) == (A, ANSWERED, 60, (), True)
    assert f.ordinary == (k,) and f.internal == (a,)


def test_7_back_and_forth_counts_each_queue_left_once(v2):
    """K→A→K→A then answered in A: K was left twice, A once; each queue left counts one
    transferred_out (once per contact), so (K, A), and the contact is A's (last queue)."""
    f = fold(
        v2,
        [
            step("queued", "10:00:00", "q", queue=K),
            step("transferred", "10:01:00", "t1", queue=K, to_queue=A),
            step("transferred", "10:02:00", "t2", queue=A, to_queue=K),
            step("transferred", "10:03:00", "t3", queue=K, to_queue=A),
            step("answered", "10:04:00", "an", queue=A, agent="ag1"),
        ],
    )
    (c,) = f.contacts
    assert (c.queue, c.wait_seconds, c.transferred_from) == (A, 240, (K, A))


# -- call.exited: flow-out ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["timeout", "exit_key", "queue_full", "no_agents"])
def test_exited_is_a_flow_out_never_answered(v2, reason):
    """queued K 10:00, exited K 10:05 (then the caller is in voicemail, ended 10:06): flowed_out,
    not an abandon (the call.ended after it changes nothing), left after 300 s."""
    f = fold(
        v2,
        [
            step("queued", "10:00:00", "q", queue=K),
            step("exited", "10:05:00", "x", queue=K, reason=reason),
            step("ended", "10:06:00", "e"),
        ],
    )
    (c,) = f.contacts
    assert (c.outcome, c.wait_seconds, c.short_abandon, c.in_service_level, c.levels_met) == (
        FLOWED_OUT, 300, False, False, ()
    )  # fmt: skip


def test_requeue_at_the_same_instant_as_a_flow_out_comes_after_it(v2):
    """queued K 10:00, exited K and queued A both 10:05:00, answered A 10:05:30: K flowed out after
    300 s; A is an ordinary new contact answered after 30 s (the spec: a re-queue at the same
    instant as a callback or flow-out comes after it)."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("exited", "10:05:00", ids[1], queue=K, reason="timeout"),
            step("queued", "10:05:00", ids[2], queue=A),
            step("answered", "10:05:30", ids[3], queue=A, agent="ag1"),
        ]

    k, a = every_order(v2, make).contacts
    assert (k.queue, k.outcome, k.wait_seconds, k.internal) == (K, FLOWED_OUT, 300, False)
    assert (a.queue, a.outcome, a.wait_seconds, a.internal) == (A, ANSWERED, 30, False)


def test_requeue_at_the_same_instant_as_a_callback_comes_after_it(v2):
    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("callback_requested", "10:02:00", ids[1], queue=K),
            step("queued", "10:02:00", ids[2], queue=A),
        ]

    k, a = every_order(v2, make).contacts
    assert (k.outcome, k.wait_seconds, a.queue, a.outcome, a.internal) == (CALLBACK, 120, A, WAITING, False)


def test_a_call_answered_earlier_stays_answered_so_a_requeue_after_a_callback_is_internal(v2):
    """queued K 10:00, answered K 10:01, queued A 10:05 (internal), callback A 10:06, queued D 10:10:
    the call was answered at 10:01, so both later contacts are internal transfers."""
    f = fold(
        v2,
        [
            step("queued", "10:00:00", "q1", queue=K),
            step("answered", "10:01:00", "a1", queue=K, agent="ag1"),
            step("queued", "10:05:00", "q2", queue=A),
            step("callback_requested", "10:06:00", "cb", queue=A),
            step("queued", "10:10:00", "q3", queue=D),
        ],
    )
    assert [(c.queue, c.outcome, c.internal) for c in f.contacts] == [
        (K, ANSWERED, False), (A, CALLBACK, True), (D, WAITING, True)
    ]  # fmt: skip


def test_a_direct_answer_then_a_queue_is_an_internal_transfer(v2):
    """answered directly (no queue) 10:00, then queued in A 10:02: the call was answered, so the
    queue stay is an internal transfer, and the call has no ordinary contact."""
    f = fold(
        v2,
        [step("answered", "10:00:00", "a1", queue=K, agent="ag1"), step("queued", "10:02:00", "q", queue=A)],
    )
    assert f.ordinary == () and [(c.queue, c.internal) for c in f.internal] == [(A, True)]


# -- same-instant lifecycle -----------------------------------------------------------------------


def test_queued_and_answered_in_the_first_second_is_one_contact_with_wait_0(v2):
    def make(ids: list[str]) -> list[Event]:
        return [
            step("offered", "10:00:00", ids[0], entrance="x"),
            step("queued", "10:00:00", ids[1], queue=K),
            step("answered", "10:00:00", ids[2], queue=K, agent="ag1"),
            step("ended", "10:00:00", ids[3]),
        ]

    f = every_order(v2, make)
    (c,) = f.contacts
    assert (c.outcome, c.wait_seconds, c.in_service_level, c.levels_met, f.talk_seconds(c)) == (
        ANSWERED, 0, True, (20.0, 120.0), 0
    )  # fmt: skip


def test_a_whole_call_in_one_second_with_a_transfer_and_a_requeue(v2):
    """Everything at 10:00:00: offered, queued K, K→A, answered A, re-queued D, ended. One ordinary
    contact (A, via K, wait 0) and one internal transfer in D, ended while waiting (abandoned)."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("offered", "10:00:00", ids[0], entrance="x"),
            step("queued", "10:00:00", ids[1], queue=K),
            step("transferred", "10:00:00", ids[2], queue=K, to_queue=A),
            step("answered", "10:00:00", ids[3], queue=A, agent="ag1"),
            step("queued", "10:00:00", ids[4], queue=D),
            step("ended", "10:00:00", ids[5]),
        ]

    a, d = every_order(v2, make).contacts
    assert (a.queue, a.transferred_from, a.outcome, a.wait_seconds, a.internal) == (A, (K,), ANSWERED, 0, False)
    assert (d.queue, d.outcome, d.internal) == (D, ABANDONED, True)


# -- extra service levels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "met", "in_sl"),
    [(0, (20.0, 120.0), True), (20, (20.0, 120.0), True), (21, (120.0,), True), (60, (120.0,), True),
     (61, (120.0,), False), (120, (120.0,), False), (121, (), False)],
)  # fmt: skip
def test_extra_service_levels_are_inclusive_thresholds(v2, wait, met, in_sl):
    """K: T = 60 s, extra 20 s and 120 s; a wait exactly at a threshold meets it."""
    start = datetime.fromisoformat(f"{DAY}10:00:00+02:00")
    answer = (start + timedelta(seconds=wait)).isoformat()
    f = fold(
        v2,
        [
            step("queued", "10:00:00", "q", queue=K),
            ev("call.answered", answer, id="a", call_id="c1", queue=K, agent="ag1"),
        ],
    )
    (c,) = f.contacts
    assert (c.levels_met, c.in_service_level) == (met, in_sl)


def test_an_abandon_meets_no_level(v2):
    f = fold(v2, [step("queued", "10:00:00", "q", queue=K), step("abandoned", "10:00:10", "b", queue=K)])
    (c,) = f.contacts
    assert (c.outcome, c.levels_met, c.short_abandon) == (ABANDONED, (), False)  # 10 s >= 5 s: not short


# -- callers --------------------------------------------------------------------------------------


def test_the_caller_is_the_first_offered_that_has_one(v2):
    """Two call.offered (a source repeating the offer): the first with a caller names the caller."""
    f = fold(
        v2,
        [
            ev("call.offered", f"{DAY}09:59:59+02:00", id="o1", call_id="c1", entrance="x"),
            ev("call.offered", f"{DAY}10:00:00+02:00", id="o2", call_id="c1", entrance="x", caller_ref="a" * 32),
            ev("call.offered", f"{DAY}10:00:01+02:00", id="o3", call_id="c1", entrance="x", caller_ref="b" * 32),
        ],
    )
    assert (f.caller_ref, f.offered_at) == ("a" * 32, datetime.fromisoformat(f"{DAY}09:59:59+02:00"))


# -- conflicting duplicates -----------------------------------------------------------------------


def test_a_conflicting_duplicate_keeps_the_same_version_whatever_the_arrival_order(v2):
    """Two `call.answered` with the same source and id but other agents: one is kept, the same one
    in both arrival orders (the derivation must not depend on order)."""
    queued = step("queued", "10:00:00", "q", queue=K)
    one = step("answered", "10:00:30", "dup", queue=K, agent="ag1")
    two = step("answered", "10:00:30", "dup", queue=K, agent="ag2")
    f1, f2 = fold(v2, [queued, one, two]), fold(v2, [two, queued, one])
    assert f1 == f2 and f1.events == 2


# -- the live wall -------------------------------------------------------------------------------


def test_the_wall_counts_each_contact_of_a_call_and_flow_outs(v2):
    """Issue case 2 with a flow-out before: queued K 10:00, exited K 10:02 (time-out), queued A
    10:03 answered 10:03:30, re-queued D 10:05 after the answer (internal). The wall counts K's
    flow-out and A's answer within its 120 s (30 s), and nothing for the internal transfer in D,
    which waits physically in D."""
    events = [
        step("queued", "10:00:00", "q1", queue=K),
        step("exited", "10:02:00", "x", queue=K, reason="timeout"),
        step("queued", "10:03:00", "q2", queue=A),
        step("answered", "10:03:30", "a", queue=A, agent="ag1"),
        step("queued", "10:05:00", "q3", queue=D),
    ]
    live = feed(MemoryStore(), v2, events, clock=at(f"{DAY}10:06:00+02:00"))
    s = samples(live)
    counted = {(q, o): s[("availability_queue_contacts_total", (q, o))] for q in (K, A, D) for o in OUTCOMES}
    assert {k: v for k, v in counted.items() if v} == {(K, "flowed_out"): 1, (A, "answered_in_sl"): 1}
    assert s[("availability_queue_waiting", (D,))] == 1
    assert s[("availability_queue_oldest_wait_seconds", (D,))] == 60  # since 10:05, now 10:06


def test_a_later_batch_counts_only_the_new_contact(v2):
    """The callback arrives in one batch, the re-queue and its answer in the next: K's callback is
    counted once (first batch), A's answer once (second batch)."""
    store, live = MemoryStore(), LiveState(v2, clock=at(f"{DAY}10:30:00+02:00"))
    deriver = Deriver(store, v2, track_changes=True)
    first = [step("queued", "10:00:00", "q1", queue=K), step("callback_requested", "10:01:00", "cb", queue=K)]
    second = [step("queued", "10:10:00", "q2", queue=A), step("answered", "10:10:20", "a", queue=A, agent="ag1")]
    for batch in (first, second, second):  # the second batch redelivered
        live.observe(batch, deriver.apply(batch))
    s = samples(live)
    assert s[("availability_queue_contacts_total", (K, "callback"))] == 1
    assert s[("availability_queue_contacts_total", (A, "answered_in_sl"))] == 1


def test_the_wall_counts_a_conflicting_duplicate_once_per_version(v2):
    one = step("answered", "10:00:30", "dup", queue=K, agent="ag1")
    two = step("answered", "10:00:30", "dup", queue=K, agent="ag2")
    store, live = MemoryStore(), LiveState(v2, clock=at(f"{DAY}10:30:00+02:00"))
    deriver = Deriver(store, v2, track_changes=True)
    for batch in ([step("queued", "10:00:00", "q", queue=K), one], [two], [two], [one]):
        live.observe(batch, deriver.apply(batch))
    assert samples(live)[("availability_source_conflicting_duplicates_total", ("callguide",))] == 1
    assert len(store.conflicts) == 1


# -- mailboxes: KKiK and the priority category ----------------------------------------------------------


@pytest.mark.parametrize(
    ("opened", "deadline"),
    [
        ("2026-04-10T15:00:00+02:00", "2026-04-14T00:00:00+02:00"),  # Fri -> end of Mon
        ("2026-04-11T23:59:00+02:00", "2026-04-14T00:00:00+02:00"),  # Sat -> end of Mon
        ("2026-04-14T07:00:00+02:00", "2026-04-16T00:00:00+02:00"),  # Tue before opening -> end of Wed
        ("2026-04-02T15:00:00+02:00", "2026-04-08T00:00:00+02:00"),  # Thu before Easter -> end of Tue 7
        ("2026-04-29T09:00:00+02:00", "2026-05-01T00:00:00+02:00"),  # Wed -> Valborg eve (reduced) works
        ("2026-03-27T10:00:00+01:00", "2026-03-31T00:00:00+02:00"),  # Fri before DST -> Mon, summer time
        ("2026-10-23T10:00:00+02:00", "2026-10-27T00:00:00+01:00"),  # Fri before DST ends -> Mon, winter
        ("2026-04-13T23:30:00Z", "2026-04-16T00:00:00+02:00"),  # 01:30 Tue local: the local date counts
    ],
)
def test_the_working_day_deadline(v2, opened, deadline):
    """The end (24:00 local) of the first working day after the local day the case opened."""
    cal = v2.mailboxes["kundreskontra"].calendar
    assert working_day_deadline(cal, datetime.fromisoformat(opened)) == datetime.fromisoformat(deadline)


def test_a_calendar_that_never_opens_has_no_deadline():
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["stängd"] = {"hours": {}}
    raw["mailboxes"]["kundreskontra"]["calendar"] = "stängd"
    cal = parse_agreements(raw).mailboxes["kundreskontra"].calendar
    assert working_day_deadline(cal, datetime.fromisoformat(f"{DAY}10:00:00+02:00")) is None


@pytest.mark.parametrize("flag", ["priority", "Priority", "PRIORITY"])
def test_the_priority_category_in_any_letter_case(v2, flag):
    """Issue case 7: `categories: ["Priority"]` makes a priority case (4 h target, not 8 h)."""
    box = {"mailbox": "kundreskontra", "thread_id": "t"}
    received = ev("mail.received", f"{DAY}10:00:00+02:00", id="r", message_id="<m@x>", categories=[flag], **box)
    (case,) = derive_thread("t", [received], v2.mailboxes["kundreskontra"])
    assert (case.priority, case.target_seconds) == (True, 4 * 3600)


def test_a_multi_word_keyword_makes_a_priority_case_through_the_boundary():
    """Issue case 3: keyword `faktura 123`, subject "Om faktura 123": a priority case (4 h target).
    The subject is classified at the boundary and dropped; the case is priority by its category."""
    raw = copy.deepcopy(AGREEMENTS)
    raw["mailboxes"]["kundreskontra"]["priority_keywords"] = ["faktura 123"]
    agreements = parse_agreements(raw)
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    line = (
        '{"specversion": "1.0", "id": "r1", "source": "imap/kundreskontra", "type": "mail.received",'
        ' "time": "2026-04-01T10:00:00+02:00", "data": {"mailbox": "kundreskontra", "message_id": "<m@x>",'
        ' "thread_id": "<m@x>", "sender": "a@example.se", "subject": "Om faktura 123"}}'
    )
    received = boundary.accept(line)
    assert isinstance(received, MailReceived) and received.data.subject is None
    (case,) = derive_thread("t", [received], agreements.mailboxes["kundreskontra"])
    assert (case.priority, case.target_seconds) == (True, 4 * 3600)


def test_an_earlier_contact_arriving_late_is_counted_and_the_later_not_again(v2):
    """Batch 1: queued A 10:05:00, answered 10:05:30. Batch 2 (late): queued K 10:00, callback
    10:01. The call's contacts become K (callback, seq 1) and A (answer, seq 2): the wall counts
    one callback and still one answer (matching contacts by seq would count the answer twice and
    the callback never)."""
    store, live = MemoryStore(), LiveState(v2, clock=at(f"{DAY}10:30:00+02:00"))
    deriver = Deriver(store, v2, track_changes=True)
    first = [step("queued", "10:05:00", "q2", queue=A), step("answered", "10:05:30", "a", queue=A, agent="ag1")]
    late = [step("queued", "10:00:00", "q1", queue=K), step("callback_requested", "10:01:00", "cb", queue=K)]
    for batch in (first, late):
        live.observe(batch, deriver.apply(batch))
    s = samples(live)
    counted = {(q, o): s[("availability_queue_contacts_total", (q, o))] for q in (K, A) for o in OUTCOMES}
    assert {k: v for k, v in counted.items() if v} == {(K, "callback"): 1, (A, "answered_in_sl"): 1}
    today = {(q, o): s[("availability_queue_today_contacts", (q, o))] for q in (K, A) for o in OUTCOMES}
    assert {k: v for k, v in today.items() if v} == {(K, "callback"): 1, (A, "answered_in_sl"): 1}


def test_an_outcome_changed_by_a_late_event_is_not_counted_twice(v2):
    """Batch 1: queued K 10:00, ended 10:02 (an abandon). Batch 2 (late): answered K 10:01. The one
    contact is now answered; the counter keeps its first outcome (a counter cannot go down) and
    adds nothing: one contact, one count."""
    store, live = MemoryStore(), LiveState(v2, clock=at(f"{DAY}10:30:00+02:00"))
    deriver = Deriver(store, v2, track_changes=True)
    first = [step("queued", "10:00:00", "q", queue=K), step("ended", "10:02:00", "e")]
    late = [step("answered", "10:01:00", "a", queue=K, agent="ag1")]
    for batch in (first, late):
        live.observe(batch, deriver.apply(batch))
    s = samples(live)
    assert sum(s[("availability_queue_contacts_total", (K, o))] for o in OUTCOMES) == 1


class _DropFailsOnce(MemoryStore):
    """A store whose first drop of contacts fails, as a write the warehouse refused."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def drop_contacts(self, keys: Iterable[tuple[str, int, datetime]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the warehouse went away")
        super().drop_contacts(keys)


@pytest.mark.parametrize("forget", [False, True], ids=["retried-as-is", "forgotten-then-retried"])
def test_a_drop_whose_write_failed_is_written_on_the_retry(v2, forget):
    """queued K 10:00:30, ended 10:01:00, queued K 10:01:30 (2 contacts); then a late call.ended at
    10:00:00 leaves one. The drop of contact 2 fails; the batch is retried (the sink forgets what
    memory holds first; either way) and contact 2 must be gone."""
    store = _DropFailsOnce()
    deriver = Deriver(store, v2)
    deriver.apply(
        [
            step("queued", "10:00:30", "q1", queue=K),
            step("ended", "10:01:00", "e1"),
            step("queued", "10:01:30", "q2", queue=K),
        ]
    )
    late = [step("ended", "10:00:00", "e0")]
    with pytest.raises(ConnectionError):
        deriver.apply(late)
    if forget:
        deriver.forget()
    deriver.apply(late)
    assert sorted(store.contacts) == [("c1", 1)] and store.contacts[("c1", 1)].outcome == WAITING


def test_a_transfer_chain_while_waiting_nowhere_follows_the_chain(v2):
    """queued K 09:59:00, callback K 09:59:30; at 10:00:00 transferred K→A and A→D (their call.queued
    lost), answered D 10:00:10. The chain enters A (a new ordinary contact, waiting nowhere before:
    docs/decisions.md) then moves it to D: contact 2 left A once and counts in D, whatever the ids."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "09:59:00", ids[0], queue=K),
            step("callback_requested", "09:59:30", ids[1], queue=K),
            step("transferred", "10:00:00", ids[2], queue=K, to_queue=A),
            step("transferred", "10:00:00", ids[3], queue=A, to_queue=D),
            step("answered", "10:00:10", ids[4], queue=D, agent="ag1"),
        ]

    k, d = every_order(v2, make).contacts
    assert (k.queue, k.outcome, k.transferred_from) == (K, CALLBACK, ())
    assert (d.queue, d.outcome, d.wait_seconds, d.transferred_from, d.internal) == (D, ANSWERED, 10, (A,), False)


def test_a_round_trip_with_echoes_and_a_callback_in_one_second_is_one_contact(v2):
    """All at 10:00:00: queued K, K→A, A→K, the switch's call.queued K echoing the last hop, and a
    callback in K. The chain comes first (a transfer leaves the queue, so the call.queued is no
    re-queue to put after the callback): one contact, left K and A, called back in K, wait 0."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("transferred", "10:00:00", ids[1], queue=K, to_queue=A),
            step("transferred", "10:00:00", ids[2], queue=A, to_queue=K),
            step("queued", "10:00:00", ids[3], queue=K),
            step("callback_requested", "10:00:00", ids[4], queue=K),
        ]

    (c,) = every_order(v2, make).contacts
    assert (c.queue, c.outcome, c.wait_seconds, c.transferred_from) == (K, CALLBACK, 0, (K, A))


def test_an_answer_and_a_callback_in_one_second_is_an_answer(v2):
    """queued K 10:00, then answered K and a callback K both at 10:00:40 (a source contradicting
    itself): with no re-queue at that instant, the lifecycle's rank puts the answer first."""

    def make(ids: list[str]) -> list[Event]:
        return [
            step("queued", "10:00:00", ids[0], queue=K),
            step("answered", "10:00:40", ids[1], queue=K, agent="ag1"),
            step("callback_requested", "10:00:40", ids[2], queue=K),
        ]

    (c,) = every_order(v2, make).contacts
    assert (c.outcome, c.wait_seconds) == (ANSWERED, 40)


class _Recording(MemoryStore):
    """A memory store that records each drop of contacts it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.drops: list[tuple[str, int, datetime]] = []

    def drop_contacts(self, keys: Iterable[tuple[str, int, datetime]]) -> None:
        keys = list(keys)
        self.drops += keys
        super().drop_contacts(keys)


def test_exactly_the_contacts_a_call_no_longer_has_are_dropped(v2):
    """Two calls that each lose their second contact in one batch (a late call.ended before their
    first call.queued), and a call with no contact at all: the drops are (m1, 2) and (m2, 2), each
    under the key it was stored under (first queued 10:01:30+02:00), nothing else (no contact 3, no
    contact of the call that never had one)."""
    store = _Recording()
    deriver = Deriver(store, v2)
    for cid in ("m1", "m2"):
        deriver.apply(
            [
                ev("call.queued", f"{DAY}10:00:30+02:00", id=f"{cid}q1", call_id=cid, queue=K),
                ev("call.ended", f"{DAY}10:01:00+02:00", id=f"{cid}e1", call_id=cid),
                ev("call.queued", f"{DAY}10:01:30+02:00", id=f"{cid}q2", call_id=cid, queue=K),
            ]
        )
    deriver.apply(
        [ev("call.ended", f"{DAY}10:00:00+02:00", id=f"{cid}e0", call_id=cid) for cid in ("m1", "m2")]
        + [ev("call.offered", f"{DAY}10:00:00+02:00", id="o3", call_id="m3", entrance="x")]
    )
    second = datetime(2026, 4, 1, 8, 1, 30, tzinfo=UTC)
    assert sorted(store.drops) == [("m1", 2, second), ("m2", 2, second)]
    assert sorted(store.contacts) == [("m1", 1), ("m2", 1)]


def test_conflicts_are_found_in_threads_and_among_reloaded_events(v2):
    """A mail.received repeated with other categories (in memory, then after a restart against the
    stored version), and two versions of a call event an earlier version stored both of: each is a
    conflict, counted once per other version."""
    box = {"mailbox": "kundreskontra", "thread_id": "t"}
    one = ev("mail.received", f"{DAY}10:00:00+02:00", id="r", message_id="<m@x>", categories=[], **box)
    two = ev("mail.received", f"{DAY}10:00:00+02:00", id="r", message_id="<m@x>", categories=["priority"], **box)
    store = MemoryStore()
    assert len(Deriver(store, v2).apply([one, two]).conflicts) == 1  # in one batch, in memory
    loser = two if preferred(one, two) is one else one
    assert len(Deriver(store, v2).apply([loser]).conflicts) == 1  # after a restart, against the kept one
    a = step("answered", "10:00:30", "dup", queue=K, agent="ag1")
    b = ev("call.answered", "2026-04-02T10:00:30+02:00", id="dup", call_id="c1", queue=K, agent="ag2")
    store.insert_events([a, b])  # another day: both rows, as an earlier version could leave them
    result = Deriver(store, v2).apply([step("queued", "10:00:00", "q", queue=K)])
    assert len(result.conflicts) == 1 and len(store.conflicts) == 2


def test_each_other_version_of_a_conflict_is_counted_and_stored_versions_of_a_thread_too(v2):
    """Three versions of one call.answered (agents ag1, ag2, ag3): one kept, two others, each
    recorded once (their fingerprints differ). And two versions of a mail.received that an earlier
    version stored on two days are a conflict when the thread is reloaded."""
    store = MemoryStore()
    versions = [step("answered", "10:00:30", "dup", queue=K, agent=f"ag{i}") for i in (1, 2, 3)]
    Deriver(store, v2).apply([step("queued", "10:00:00", "q", queue=K), *versions])
    assert len(store.conflicts) == 2
    box = {"mailbox": "kundreskontra", "thread_id": "t"}
    one = ev("mail.received", f"{DAY}10:00:00+02:00", id="r", message_id="<m@x>", categories=[], **box)
    two = ev("mail.received", "2026-04-02T10:00:00+02:00", id="r", message_id="<m@x>", **box)
    store.insert_events([one, two])
    reply = ev("mail.replied", f"{DAY}11:00:00+02:00", id="p", message_id="<p@x>", **box)
    assert len(Deriver(store, v2).apply([reply]).conflicts) == 1
