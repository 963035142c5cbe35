"""Rules of docs/decisions.md that no other test covered; each test's docstring names its rule.

The rules on same-instant events, several `call.ended` and a `call.queued` after an abandon, a
callback or a flow-out are in tests/unit/test_calls_rules.py (and tests/unit/test_contract_v2.py);
the order- and batch-independence of a conflicting duplicate in tests/unit/test_properties.py.
Times are local (+02:00 in summer, +01:00 in winter); calendar `kontor` (tests/conftest.py) is open
Tue/Wed 08:00-16:30.
"""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from schemas.agreements import Agreements, parse_agreements
from schemas.events import encode
from stream_jobs.core.calls import derive_call
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.ordering import digest
from stream_jobs.core.store import MemoryStore
from tests.conftest import AGREEMENTS, call, ev

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
at = datetime.fromisoformat


@pytest.fixture(scope="module")
def evening() -> Agreements:
    """The test agreements with avgifter on its own calendar, open only 16:00-20:00 on weekdays."""
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["kvall"] = {"hours": {d: ["16:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}
    raw["queues"]["avgifter"]["calendar"] = "kvall"
    return parse_agreements(raw)


@pytest.mark.parametrize(
    ("queued_at", "is_open"),
    [
        # Tue 14 Apr 17:00: kontor (kundreskontra) is closed, kvall (avgifter) open: judged by avgifter.
        ("2026-04-14T17:00:00+02:00", True),
        # Tue 14 Apr 10:00: kontor open, kvall closed: out of hours, as avgifter was closed.
        ("2026-04-14T10:00:00+02:00", False),
    ],
)
def test_open_or_closed_uses_the_calendar_of_the_queue_the_contact_is_attributed_to(evening, queued_at, is_open):
    """Rule "Open or closed": decided with the calendar of the queue the contact is attributed to
    (the last queue it waited in), at the moment it was first queued."""
    t = at(queued_at)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", queued_at, K),
            ("transferred", t.replace(minute=1).isoformat(), K | {"to_queue": "avgifter"}),
            ("answered", t.replace(minute=2).isoformat(), A | {"agent": "a"}),
        ),
        evening,
    )
    assert (f.contact.queue, f.contact.queued_at, f.contact.wait_seconds) == ("avgifter", t, 120)
    assert f.contact.queue_open is is_open


def test_queued_elsewhere_while_waiting_is_a_transfer_and_into_the_same_queue_changes_nothing(agreements):
    """Rule "A call.queued into another queue while the call waits is a transfer (the same as
    call.transferred); a call.queued into the queue the call already waits in changes nothing"."""
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("queued", "2026-04-01T09:00:10+02:00", K),  # the same queue again: nothing
            ("queued", "2026-04-01T09:00:30+02:00", A),  # another queue while waiting: a transfer
            ("queued", "2026-04-01T09:00:40+02:00", A),  # the same queue again: nothing
            ("answered", "2026-04-01T09:01:40+02:00", A | {"agent": "a2"}),
        ),
        agreements,
    )
    # One contact, in avgifter, one transfer out of kundreskontra, wait 100 s from the first queued.
    assert (f.contact.queue, f.contact.outcome, f.contact.wait_seconds) == ("avgifter", "answered", 100)
    assert f.contact.transferred_from == ("kundreskontra",)
    assert f.contacts == (f.contact,)
    assert f.contact.in_service_level  # 100 s <= avgifter's 120 s


@pytest.mark.parametrize(
    ("finish", "data", "internal"),
    [("answered", K | {"agent": "a1"}, True), ("abandoned", K, False)],
)
def test_queued_into_the_same_queue_as_something_leaves_it_is_a_re_queue_after_it(agreements, finish, data, internal):
    """Rule "a `call.queued` into the queue the call already waits in changes nothing, unless
    something leaves that queue at the same instant: then it is a re-queue after it"."""
    # guards: calls._Fold.next_of taking the same-queue call.queued before the answer or abandon of
    # that instant: it would change nothing, and the stay after it would be lost (one contact, not
    # two). The list is reversed and the re-queue's id sorts first: the order is the call's, not ids'.
    events = [
        ev("call.queued", "2026-04-01T09:00:00+02:00", id="e3", call_id="c1", **K),
        ev(f"call.{finish}", "2026-04-01T09:00:30+02:00", id="e2", call_id="c1", **data),
        ev("call.queued", "2026-04-01T09:00:30+02:00", id="e1", call_id="c1", **K),
        ev("call.answered", "2026-04-01T09:01:10+02:00", id="e4", call_id="c1", **K, agent="a2"),
    ]
    f = derive_call("c1", events[::-1], agreements)
    first, second = f.contacts
    assert (first.queue, first.outcome, first.wait_seconds, first.internal) == ("kundreskontra", finish, 30, False)
    # The re-queue waits from 09:00:30 to the answer at 09:01:10: 40 s; internal only after an answer.
    assert (second.queue, second.queued_at, second.outcome, second.wait_seconds, second.agent) == (
        "kundreskontra", at("2026-04-01T09:00:30+02:00"), "answered", 40, "a2"
    )  # fmt: skip
    assert second.internal is internal and second.transferred_from == ()


def test_transferred_after_the_answer_starts_an_internal_contact_in_to_queue(agreements):
    """Rule "A `call.transferred` while the call waits in no queue enters `to_queue` as a new
    contact, waiting from the transfer: an internal transfer if the call was answered before"
    (here: a transfer after the answer)."""
    # guards: calls._Fold.apply dropping a call.transferred that finds the call waiting nowhere
    # (the second stay would vanish from the internal transfers), or moving the answered contact
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("answered", "2026-04-01T09:00:15+02:00", K | {"agent": "a1"}),
            ("transferred", "2026-04-01T09:03:00+02:00", K | {"to_queue": "avgifter"}),
            ("answered", "2026-04-01T09:03:50+02:00", A | {"agent": "a2"}),
            ("ended", "2026-04-01T09:08:15+02:00", {}),
        ),
        agreements,
    )
    assert (f.contact.queue, f.contact.outcome, f.contact.wait_seconds, f.contact.agent) == (
        "kundreskontra",
        "answered",
        15,
        "a1",
    )
    assert f.contact.transferred_from == ()  # the citizen's contact was not transferred before its answer
    [internal] = f.internal
    assert (internal.queue, internal.outcome, internal.wait_seconds, internal.agent) == (
        "avgifter",
        "answered",
        50,
        "a2",
    )
    assert internal.transferred_from == ()  # it started in avgifter: no transfer out of kundreskontra
    assert f.talk_seconds(f.contact) == 480  # talk over the whole call: 09:08:15 - 09:00:15
    assert f.talk_seconds(internal) == 265  # 09:08:15 - 09:03:50


@pytest.mark.parametrize("before", ["lost", "callback_requested"])
def test_transferred_while_waiting_nowhere_is_an_ordinary_contact_in_to_queue(agreements, before):
    """Rule "A `call.transferred` while the call waits in no queue (its `call.queued` was lost, or it
    comes after an answer, a callback or a flow-out) enters `to_queue` as a new contact, waiting from
    the transfer: ... else an ordinary contact. The queue it names as left gets no
    `transferred_out`" (here: the queued lost, and after a callback)."""
    # guards: calls._Fold.apply ignoring a transfer that finds the call waiting nowhere (the contact
    # in avgifter would be lost), flagging it internal without an answer, or listing kundreskontra
    # as left (a transfer out of a queue the call was never seen waiting in)
    steps = [("offered", "2026-04-01T08:59:50+02:00", {"entrance": "0101234500"})]
    if before == "callback_requested":
        steps += [("queued", "2026-04-01T08:59:52+02:00", K), (before, "2026-04-01T08:59:58+02:00", K)]
    steps += [
        ("transferred", "2026-04-01T09:00:00+02:00", K | {"to_queue": "avgifter"}),
        ("answered", "2026-04-01T09:00:40+02:00", A | {"agent": "a2"}),
    ]
    f = derive_call("c1", call("c1", *steps), agreements)
    *earlier, last = f.contacts
    if before == "lost":
        assert earlier == []
    else:  # the callback contact stays as it was: kundreskontra, 08:59:52 -> 08:59:58 = 6 s
        [cb] = earlier
        assert (cb.queue, cb.outcome, cb.wait_seconds, cb.transferred_from) == ("kundreskontra", "callback", 6, ())
    # Waits from the transfer at 09:00:00 to the answer at 09:00:40: 40 s, within avgifter's 120 s.
    assert (last.queue, last.queued_at, last.outcome, last.wait_seconds, last.transferred_from) == (
        "avgifter", at("2026-04-01T09:00:00+02:00"), "answered", 40, ()
    )  # fmt: skip
    assert not last.internal and last.in_service_level and f.internal == ()


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("answered", A | {"agent": "a1"}),
        ("abandoned", A),
        ("callback_requested", A),
        ("exited", A | {"reason": "queue_full"}),
        ("ended", {}),
    ],
)
def test_an_end_of_a_wait_without_call_queued_is_no_contact(agreements, kind, data):
    """Rule "An answer, abandon, callback, flow-out or end without a `call.queued` is no contact";
    "'Answered' includes an answer without a queue": a later `call.queued` is then an internal
    transfer, after the others an ordinary contact. (Spec v2: "A call that is answered, abandoned or
    ends without ever being queued is no contact"; v1 made a contact with a wait of 0 s.)"""
    # guards: calls._Fold.apply opening a contact at the end of a wait that found the call waiting
    # nowhere (a direct call or a menu hang-up counted as offered), and the "answered" flag: set by
    # anything but an answer, or not set by a direct answer (the queue stay after it would be an
    # ordinary contact, counted as demand)
    alone = derive_call("c1", call("c1", (kind, "2026-04-01T09:00:00+02:00", data)), agreements)
    assert (alone.contacts, alone.contact) == ((), None)
    f = derive_call(
        "c1",
        call(
            "c1",
            (kind, "2026-04-01T09:00:00+02:00", data),
            ("queued", "2026-04-01T09:02:00+02:00", K),
            ("answered", "2026-04-01T09:02:50+02:00", K | {"agent": "a2"}),
        ),
        agreements,
    )
    [only] = f.contacts
    assert (only.queue, only.outcome, only.wait_seconds, only.seq) == ("kundreskontra", "answered", 50, 1)
    assert only.internal is (kind == "answered")


def test_a_conflicting_duplicate_keeps_the_version_whose_canonical_json_sorts_first(agreements):
    """Rule "Conflicting duplicates (same `source` and `id`, other content): the version kept is the
    one whose canonical JSON sorts first (`ordering.preferred`), whichever arrived first; each other
    version is counted once"."""
    # guards: stream_jobs/core/ordering.preferred (or _Entities.add) keeping the first or the last
    # to arrive: the wait would be 40 s in one arrival order and 50 s in the other
    queued = ev("call.queued", "2026-04-14T10:00:00+02:00", id="q", call_id="c1", **K)
    early = ev("call.answered", "2026-04-14T10:00:40+02:00", id="dup", call_id="c1", **K, agent="a1")
    late = ev("call.answered", "2026-04-14T10:00:50+02:00", id="dup", call_id="c1", **K, agent="a1")
    # The two differ only in their time, "...T10:00:40..." < "...T10:00:50...": the 10:00:40 one is kept.
    assert encode(early) < encode(late)
    for first, second in ((early, late), (late, early)):
        assert derive_call("c1", [queued, first, second], agreements).contact.wait_seconds == 40
        store = MemoryStore()
        deriver = Deriver(store, agreements)
        deriver.apply([queued, first])
        result = deriver.apply([second])
        assert result.conflicts == [(early, late)]  # (kept, other), whichever came first
        assert store.calls["c1"].contact.wait_seconds == 40 and store.calls["c1"].events == 2
        deriver.apply([second, first])  # met again (a redelivery): still one conflict
        assert store.conflicts == {("callguide", "dup", digest(late))}


def test_the_live_wall_counts_an_internal_transfer_waiting_as_waiting(agreements):
    """Rule "The live wall's 'waiting now' counts every call physically in a queue, internal
    transfers too; the contact counters and KPIs leave internal transfers out"."""
    # guards: stream_jobs/core/live.LiveState dropping internal transfers from "waiting now" (the
    # wall would show an empty avgifter while a caller waits in it), or counting them as contacts
    events = call(
        "c1",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:45+02:00", K | {"agent": "a1"}),
        ("queued", "2026-04-14T10:02:00+02:00", A),  # after the answer: an internal transfer, waiting
    )
    now = at("2026-04-14T10:03:00+02:00")
    live = LiveState(agreements, clock=lambda: now)
    live.observe(events, Deriver(MemoryStore(), agreements, track_changes=True).apply(events))
    s = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in live.collect()
        for sample in family.samples
    }
    assert s[("availability_queue_waiting", ("avgifter",))] == 1
    assert s[("availability_queue_waiting", ("kundreskontra",))] == 0
    assert s[("availability_queue_oldest_wait_seconds", ("avgifter",))] == 60  # 10:02:00 -> 10:03:00
    # The citizen's contact: answered in kundreskontra after 45 s (<= 60 s); nothing in avgifter.
    assert s[("availability_queue_contacts_total", ("kundreskontra", "answered_in_sl"))] == 1
    assert not any(v for (name, labels), v in s.items() if "contacts" in name and labels[0] == "avgifter")


@pytest.fixture(scope="module")
def night() -> Agreements:
    """A queue whose calendar is open only 02:00-03:00 on Sundays (Europe/Stockholm)."""
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["natt"] = {"hours": {"sun": ["02:00-03:00"]}}
    raw["queues"]["avgifter"]["calendar"] = "natt"
    return parse_agreements(raw)


def test_an_interval_that_does_not_exist_on_the_spring_forward_day_has_no_opening_time(night):
    """Rule "A wall-clock interval that does not exist on the spring-forward day (02:00-03:00 in
    Stockholm) has no opening time that day"."""
    cal = night.queues["avgifter"].calendar
    # Sun 29 Mar 2026: 02:00 CET jumps to 03:00 CEST; the whole day holds no business time.
    assert cal.business_seconds(at("2026-03-29T00:00:00+01:00"), at("2026-03-30T00:00:00+02:00")) == 0
    assert not cal.is_open(at("2026-03-29T01:59:59+01:00")) and not cal.is_open(at("2026-03-29T03:00:00+02:00"))
    # A week earlier (Sun 22 Mar, CET) the same interval is 1 h.
    assert cal.business_seconds(at("2026-03-22T00:00:00+01:00"), at("2026-03-23T00:00:00+01:00")) == 3600


def test_an_interval_over_the_repeated_hour_on_the_fall_back_day_is_an_hour_longer(night):
    """Rule "On the fall-back day an interval over 02:00-03:00 is 1 h longer, as it really is"."""
    cal = night.queues["avgifter"].calendar
    # Sun 25 Oct 2026: 02:00 CEST to 03:00 CET is 2 real hours (02:00-03:00 happens twice).
    assert cal.business_seconds(at("2026-10-25T00:00:00+02:00"), at("2026-10-26T00:00:00+01:00")) == 2 * 3600
    assert cal.is_open(at("2026-10-25T02:30:00+02:00")) and cal.is_open(at("2026-10-25T02:30:00+01:00"))
    assert not cal.is_open(at("2026-10-25T03:00:00+01:00"))
