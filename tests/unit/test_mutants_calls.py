"""Calls missing some of their events, and a transfer after an answer (docs/testing.md, "Mutation testing").

Each test kills mutants of stream_jobs/core/calls.py that the other tests let survive: a call
whose call.offered or call.queued never arrived, and an internal transfer by call.transferred.
Expected values are by hand from spec/metrics.md ("Phone queues"): a contact starts at the
first event that puts it in a queue, and a call without call.offered has no entrance or caller.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from stream_jobs.core.calls import Contact, derive_call
from tests.conftest import call

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
T0, T1 = "2026-04-01T09:00:00+02:00", "2026-04-01T09:00:40+02:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_call_without_call_offered_has_no_entrance_and_no_caller(agreements):
    # mutmut calls.x_derive_call__mutmut_7 (entrance = caller_ref = "")
    f = derive_call("c1", call("c1", ("queued", T0, K), ("answered", T1, K | {"agent": "a1"})), agreements)
    assert f.offered_at is None
    assert f.entrance is None
    assert f.caller_ref is None


@pytest.mark.parametrize(
    ("kind", "data", "outcome", "agent"),
    [
        ("answered", K | {"agent": "a1"}, "answered", "a1"),  # mutants 12 and 59
        ("callback_requested", K, "callback", None),  # mutant 79
        ("abandoned", K, "abandoned", None),  # mutant 91
    ],
)
def test_a_contact_whose_call_queued_is_missing_starts_where_it_left(agreements, kind, data, outcome, agent):
    # Only the end of the wait arrived: the contact is in that queue, from that instant (wait 0),
    # and it was transferred from nowhere.
    f = derive_call("c1", call("c1", (kind, T1, data)), agreements)
    assert f.contact == Contact("kundreskontra", at(T1), outcome, at(T1), agent, ())
    assert f.contact.wait_seconds == 0
    assert f.internal == ()


def test_a_transfer_whose_call_queued_is_missing_starts_the_contact_at_the_transfer(agreements):
    # mutants 45 and 46: the transfer event is the first of the contact; its from-queue is the
    # queue left, its time the start of the wait. Answered 40 s later in avgifter.
    events = call(
        "c1",
        ("transferred", T0, K | {"to_queue": "avgifter"}),
        ("answered", T1, A | {"agent": "a2"}),
    )
    f = derive_call("c1", events, agreements)
    assert f.contact == Contact("avgifter", at(T0), "answered", at(T1), "a2", ("kundreskontra",))
    assert f.contact.wait_seconds == 40


def test_a_transfer_after_the_answer_is_an_internal_contact_in_the_queue_transferred_to(agreements):
    # mutant 52: after the answer, call.transferred (without a call.queued) opens an internal
    # contact in the queue transferred to, waiting from the transfer; the citizen's contact stays.
    t2 = "2026-04-01T09:05:00+02:00"
    events = call(
        "c1",
        ("queued", T0, K),
        ("answered", T1, K | {"agent": "a1"}),
        ("transferred", t2, K | {"to_queue": "avgifter"}),
    )
    f = derive_call("c1", events, agreements)
    assert f.contact == Contact("kundreskontra", at(T0), "answered", at(T1), "a1", ())
    assert f.internal == (Contact("avgifter", at(t2), "waiting", None, None, ()),)
