"""The contact state machine's tie, re-queue and end rules (docs/decisions.md, "Phone queues").

Each test names the bug it guards (issue #16). Expected values are worked out by hand from the
events; times are local summer time (+02:00), Wed 1 April 2026, the queues open 08-16:30.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from stream_jobs.core.calls import derive_call
from tests.conftest import call

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
at = datetime.fromisoformat


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_answered_and_ended_at_the_same_instant_stays_answered(agreements, reverse):
    """Same-instant events are ordered as a call goes through them: answered before ended."""
    # guards: same-instant order with `call.ended` sorted before the answer (calls._ORDER):
    # the hang-up would end the wait first and the answered call would become an abandon
    events = call(
        "c1",
        ("queued", "2026-04-01T09:00:00+02:00", K),
        ("answered", "2026-04-01T09:00:20+02:00", K | {"agent": "a1"}),
        ("ended", "2026-04-01T09:00:20+02:00", {}),
    )
    f = derive_call("c1", events[::-1] if reverse else events, agreements)
    assert (f.contact.outcome, f.contact.wait_seconds, f.contact.agent) == ("answered", 20, "a1")
    assert f.in_service_level and not f.short_abandon  # 20 s <= 60 s
    assert f.talk_seconds == 0  # talk from the answer (09:00:20) to the end (09:00:20)


def test_queued_and_answered_at_the_same_instant_is_one_contact_with_wait_0(agreements):
    """Same-instant events: queued before answered (a wait of 0 s), talk = ended - answered."""
    # guards: the tie order of queued before answered (calls._ORDER); the answer first would make a
    # contact of its own and the call.queued after it a second, internal one
    events = call(
        "c1",
        ("ended", "2026-04-01T09:04:40+02:00", {}),
        ("answered", "2026-04-01T09:00:00+02:00", K | {"agent": "a1"}),
        ("queued", "2026-04-01T09:00:00+02:00", K),
    )
    f = derive_call("c1", events, agreements)
    assert (f.contact.outcome, f.contact.wait_seconds) == ("answered", 0)
    assert f.internal == ()
    assert f.talk_seconds == 280  # 09:04:40 - 09:00:00


def test_callback_and_ended_at_the_same_instant_stays_a_callback(agreements):
    # guards: the same tie order for callback before ended: the callback would become an abandon
    # (and an abandon of 90 s is in the answer rate's base, a callback is not)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("ended", "2026-04-01T09:01:30+02:00", {}),
            ("callback_requested", "2026-04-01T09:01:30+02:00", K),
            ("queued", "2026-04-01T09:00:00+02:00", K),
        ),
        agreements,
    )
    assert (f.contact.outcome, f.contact.wait_seconds, f.short_abandon) == ("callback", 90, False)


@pytest.mark.parametrize("finish", ["abandoned", "callback_requested"])
def test_queued_in_another_queue_after_an_abandon_or_callback_is_a_new_contact(agreements, finish):
    """A `call.queued` after an abandon or a callback is reported apart as an internal transfer:
    the citizen's contact stays where it finished (docs/decisions.md, spec v1). The revised spec
    (2026-11-28, issue #9) makes the contact after a callback an ordinary new contact: the
    `[internal]` expectation below changes then; the contact staying where it finished does not."""
    # guards: calls.py queued after abandon/callback moving the finished contact to the new queue
    # (it would be counted in avgifter, with a transfer out of kundreskontra)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            (finish, "2026-04-01T09:00:30+02:00", K),
            ("queued", "2026-04-01T09:01:00+02:00", A),
            ("answered", "2026-04-01T09:01:45+02:00", A | {"agent": "a2"}),
            ("ended", "2026-04-01T09:03:00+02:00", {}),
        ),
        agreements,
    )
    outcome = "abandoned" if finish == "abandoned" else "callback"
    assert (f.contact.queue, f.contact.outcome, f.contact.wait_seconds) == ("kundreskontra", outcome, 30)
    assert f.contact.transferred_from == () and f.contact.agent is None
    [internal] = f.internal
    assert (internal.queue, internal.outcome, internal.wait_seconds, internal.agent) == (
        "avgifter",
        "answered",
        45,
        "a2",
    )
    assert internal.queued_at == at("2026-04-01T09:01:00+02:00")  # a new contact: its own clock
    assert f.talk_seconds is None  # the citizen's contact was not answered


def test_the_first_of_several_call_ended_ends_the_call(agreements):
    """Several `call.ended`: the first (by time) ends the call."""
    # guards: calls.py several `call.ended` with the last one winning: talk 580 s instead of 280 s
    events = call(
        "c1",
        ("queued", "2026-04-01T09:00:00+02:00", K),
        ("answered", "2026-04-01T09:00:20+02:00", K | {"agent": "a1"}),
        ("ended", "2026-04-01T09:10:00+02:00", {}),  # a second end, 5 min later (given first here)
        ("ended", "2026-04-01T09:05:00+02:00", {}),
    )
    f = derive_call("c1", events, agreements)
    assert f.ended_at == at("2026-04-01T09:05:00+02:00")
    assert f.talk_seconds == 280  # 09:05:00 - 09:00:20, not 09:10:00 - 09:00:20 = 580


def test_the_first_call_ended_also_ends_a_wait(agreements):
    # guards: the same rule while waiting: the first end is the abandon time (wait 70 s, not 130 s)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("ended", "2026-04-01T09:02:10+02:00", {}),
            ("ended", "2026-04-01T09:01:10+02:00", {}),
        ),
        agreements,
    )
    assert (f.contact.outcome, f.contact.wait_seconds) == ("abandoned", 70)
    assert f.ended_at == at("2026-04-01T09:01:10+02:00")
