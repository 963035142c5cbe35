"""Rules of docs/decisions.md that no other test covered; each test's docstring names its rule.

The rules on same-instant events, several `call.ended` and a `call.queued` after an abandon or a
callback are in tests/unit/test_calls_rules.py. Times are local (+02:00 in summer, +01:00 in
winter); calendar `kontor` (tests/conftest.py) is open Tue 08:00-16:30.
"""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from schemas.agreements import Agreements, parse_agreements
from stream_jobs.core.calls import derive_call
from tests.conftest import AGREEMENTS, call

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
    assert f.queue_open is is_open


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
    assert f.internal == ()
    assert f.in_service_level  # 100 s <= avgifter's 120 s


def test_transferred_after_the_answer_starts_an_internal_contact_in_to_queue(agreements):
    """Rule "A call.transferred after the answer starts an internal-transfer contact in to_queue,
    like a call.queued after the answer"."""
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
    assert f.talk_seconds == 480  # talk over the whole call: 09:08:15 - 09:00:15


@pytest.mark.parametrize(("kind", "outcome"), [("abandoned", "abandoned"), ("callback_requested", "callback")])
def test_an_abandon_or_callback_without_call_queued_is_still_a_contact(agreements, kind, outcome):
    """Rule "An answer, abandon or callback without a call.queued (a lost event) still makes a
    contact, starting at that event (wait 0)"."""
    f = derive_call("c1", call("c1", (kind, "2026-04-01T09:00:00+02:00", A)), agreements)
    assert (f.contact.queue, f.contact.outcome, f.contact.wait_seconds) == ("avgifter", outcome, 0)
    assert f.contact.queued_at == at("2026-04-01T09:00:00+02:00") and f.queue_open
    assert f.short_abandon is (outcome == "abandoned")  # a wait of 0 s is under 5 s


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
