"""Calls missing some of their events, transfers the fold must repair, and contacts compared whole
(docs/testing.md, "Mutation testing").

Each test kills mutants of stream_jobs/core/calls.py that the other tests let survive: a call
whose call.offered or call.queued never arrived, an event naming another queue than the one the
call waits in (a lost transfer), and a transfer after an answer. Contacts are compared with every
field, so a mutant changing any one of them (seq, internal, the flags of the queue's agreement)
dies. Expected values are by hand from spec/metrics.md ("Phone queues", contract v2): only a
`call.queued` (or a transfer into a queue while the call waits in none) starts a contact, and a
call without call.offered has no entrance or caller. Times are local (+02:00), Wed 1 April 2026,
kontor open 08:00-16:30; kundreskontra T = 60 s, avgifter T = 120 s, short abandon < 5 s.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from stream_jobs.core.calls import Contact, derive_call
from tests.conftest import call

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
T0, T1, T2 = "2026-04-01T09:00:00+02:00", "2026-04-01T09:00:40+02:00", "2026-04-01T09:05:00+02:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def contact(queue: str, queued_at: str, outcome: str, left_at: str | None, **rest: object) -> Contact:
    """A contact with every field; the defaults are those of an ordinary contact, first of its call,
    queued while open, not transferred, meeting no threshold."""
    fields: dict[str, object] = {
        "seq": 1,
        "agent": None,
        "transferred_from": (),
        "internal": False,
        "queue_open": True,
        "short_abandon": False,
        "in_service_level": False,
        "levels_met": (),
    }
    fields.update(rest)
    return Contact(
        queue=queue,
        queued_at=at(queued_at),
        outcome=outcome,
        left_at=None if left_at is None else at(left_at),
        **fields,  # type: ignore[arg-type]
    )


def test_a_call_without_call_offered_has_no_entrance_and_no_caller(agreements):
    # guards: derive_call filling entrance or caller_ref with "" (or the queue) when no call.offered came
    f = derive_call("c1", call("c1", ("queued", T0, K), ("answered", T1, K | {"agent": "a1"})), agreements)
    assert f.offered_at is None
    assert f.entrance is None
    assert f.caller_ref is None
    assert f.contacts == (contact("kundreskontra", T0, "answered", T1, agent="a1", in_service_level=True),)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("answered", K | {"agent": "a1"}),
        ("callback_requested", K),
        ("abandoned", K),
        ("exited", K | {"reason": "no_agents"}),
    ],
)
def test_an_end_of_a_wait_whose_call_queued_is_missing_is_no_contact(agreements, kind, data):
    """Spec v2: "A call that is answered, abandoned or ends without ever being queued is no contact".
    Under v1 this test said the opposite ("a contact whose call.queued is missing starts where it
    left", wait 0): that rule is gone, and the call keeps its events but has no contact."""
    # guards: calls._Fold.apply opening a contact at an end of the wait that finds the call waiting
    # nowhere (v1), or the leave of a missing contact raising instead of being ignored
    f = derive_call("c1", call("c1", (kind, T1, data)), agreements)
    assert (f.contacts, f.contact, f.events) == ((), None, 1)


def test_a_transfer_whose_call_queued_is_missing_starts_the_contact_at_the_transfer(agreements):
    """The call's call.queued into kundreskontra was lost; its transfer to avgifter at 09:00:00 is
    the first event that puts it in a queue: a contact in avgifter from 09:00:00, answered at
    09:00:40 (40 s <= avgifter's 120 s). docs/decisions.md: the queue the transfer names as left
    gets no transferred_out (under v1 it did: transferred_from was ("kundreskontra",)); no contact
    was ever seen waiting there."""
    # guards: calls._Fold.apply dropping a transfer that finds the call waiting nowhere, starting the
    # contact at the answer (wait 0), or counting a transfer out of kundreskontra
    events = call(
        "c1",
        ("transferred", T0, K | {"to_queue": "avgifter"}),
        ("answered", T1, A | {"agent": "a2"}),
    )
    f = derive_call("c1", events, agreements)
    assert f.contacts == (contact("avgifter", T0, "answered", T1, agent="a2", in_service_level=True),)
    assert f.contact.wait_seconds == 40


def test_a_transfer_after_the_answer_is_an_internal_contact_in_the_queue_transferred_to(agreements):
    """After the answer, call.transferred (without a call.queued) enters the queue transferred to:
    an internal transfer, waiting from 09:05:00, second contact of the call; the citizen's contact
    (answered after 40 s, within kundreskontra's 60 s) stays as it was."""
    # guards: calls._Fold.apply moving the answered contact to avgifter, or the new contact not
    # flagged internal (it would be counted as the call's second offered contact)
    events = call(
        "c1",
        ("queued", T0, K),
        ("answered", T1, K | {"agent": "a1"}),
        ("transferred", T2, K | {"to_queue": "avgifter"}),
    )
    f = derive_call("c1", events, agreements)
    assert f.contacts == (
        contact("kundreskontra", T0, "answered", T1, agent="a1", in_service_level=True),
        contact("avgifter", T2, "waiting", None, seq=2, internal=True),
    )
    assert f.contact == f.contacts[0] and f.internal == f.contacts[1:]


def test_an_end_of_the_wait_naming_another_queue_is_a_lost_transfer_to_it(agreements):
    """Queued in kundreskontra at 09:00:00, abandoned in avgifter at 09:00:40: the transfer between
    was lost. The contact is attributed to avgifter, where it left from, with one transfer out of
    kundreskontra; an abandon of 40 s is not short (>= 5 s)."""
    # guards: _Open.leave not moving the contact to the queue the event names (it would stay in
    # kundreskontra with no transfer), or moving it without recording the queue it left
    f = derive_call("c1", call("c1", ("queued", T0, K), ("abandoned", T1, A)), agreements)
    assert f.contacts == (contact("avgifter", T0, "abandoned", T1, transferred_from=("kundreskontra",)),)


def test_a_transfer_from_another_queue_than_the_one_waited_in_repairs_the_lost_hop(agreements):
    """Queued in kundreskontra 09:00:00; at 09:00:40 a transfer from avgifter to kundreskontra: the
    hop kundreskontra -> avgifter was lost. The contact left kundreskontra, then avgifter, and
    waits in kundreskontra again from its first queued: transferred_from lists each queue once, in
    the order left (spec: "once per contact, even if it left that queue twice")."""
    # guards: the CallTransferred branch skipping the move to the queue the transfer names as left
    # (avgifter would have no transfer out), or move_to listing a queue twice
    events = call(
        "c1",
        ("queued", T0, K),
        ("transferred", T1, A | {"to_queue": "kundreskontra"}),
        ("abandoned", T2, K),
    )
    f = derive_call("c1", events, agreements)
    assert f.contacts == (
        contact("kundreskontra", T0, "abandoned", T2, transferred_from=("kundreskontra", "avgifter")),
    )
    assert f.contact.wait_seconds == 300  # 09:00:00 -> 09:05:00


def test_a_short_abandon_and_a_closed_queue_are_flags_of_the_contact(agreements):
    """Queued on Saturday 4 April 2026 10:00 (kontor closed) and abandoned 3 s later: out of hours
    (queue_open False) and a short abandon (3 s < 5 s)."""
    # guards: _Open.frozen computing queue_open at the leave time, or short_abandon with <= / >
    f = derive_call(
        "c1",
        call("c1", ("queued", "2026-04-04T10:00:00+02:00", K), ("abandoned", "2026-04-04T10:00:03+02:00", K)),
        agreements,
    )
    assert f.contacts == (
        contact(
            "kundreskontra",
            "2026-04-04T10:00:00+02:00",
            "abandoned",
            "2026-04-04T10:00:03+02:00",
            queue_open=False,
            short_abandon=True,
        ),
    )
