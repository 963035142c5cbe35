"""The contact state machine's tie, re-queue and end rules (docs/decisions.md, "Phone queues").

Each test names the bug it guards (issue #16). Expected values are worked out by hand from the
events; times are local summer time (+02:00), Wed 1 April 2026, the queues open 08-16:30.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from stream_jobs.core.calls import derive_call
from tests.conftest import call, ev

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
at = datetime.fromisoformat


def call_with_ids(ids, *steps):
    """Like tests.conftest.call, with the events' ids given (the i-th step gets ids[i])."""
    return [ev(f"call.{kind}", t, id=id, call_id="c1", **data) for id, (kind, t, data) in zip(ids, steps, strict=False)]


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
    assert f.contact.in_service_level and not f.contact.short_abandon  # 20 s <= 60 s
    assert f.talk_seconds(f.contact) == 0  # talk from the answer (09:00:20) to the end (09:00:20)


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
    assert f.contacts == (f.contact,) and f.internal == ()
    assert f.talk_seconds(f.contact) == 280  # 09:04:40 - 09:00:00


@pytest.mark.parametrize(
    ("finish", "data", "outcome"),
    [("callback_requested", K, "callback"), ("exited", K | {"reason": "timeout"}, "flowed_out")],
)
def test_callback_or_flow_out_and_ended_at_the_same_instant_stays_a_callback_or_flow_out(
    agreements, finish, data, outcome
):
    """Same-instant events: abandoned / callback / exited before ended (spec/metrics.md, "Events at
    the same instant")."""
    # guards: the same tie order for callback (or exited) before ended: the wait would end as an
    # abandon (and an abandon of 90 s is in the answer rate's base, a callback is not)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("ended", "2026-04-01T09:01:30+02:00", {}),
            (finish, "2026-04-01T09:01:30+02:00", data),
            ("queued", "2026-04-01T09:00:00+02:00", K),
        ),
        agreements,
    )
    assert (f.contact.outcome, f.contact.wait_seconds, f.contact.short_abandon) == (outcome, 90, False)
    assert f.contacts == (f.contact,)


@pytest.mark.parametrize(
    ("finish", "data", "outcome"),
    [
        ("abandoned", K, "abandoned"),
        ("callback_requested", K, "callback"),
        ("exited", K | {"reason": "exit_key"}, "flowed_out"),
    ],
)
def test_queued_in_another_queue_after_an_abandon_callback_or_flow_out_is_an_ordinary_new_contact(
    agreements, finish, data, outcome
):
    """Spec v2 (metrics.md, "Phone queues"): "A `call.queued` after a callback request or after a
    flow-out starts an ordinary new contact"; after an abandon too (docs/decisions.md: the spec is
    silent, the caller dialled a new choice like after a callback). Spec v1 reported that second
    stay apart as an internal transfer; now it is the citizen's second contact, in the KPIs. The
    first contact stays where it finished, with its own clock, as before."""
    # guards: calls.py moving the finished contact to the new queue (it would be counted in
    # avgifter, with a transfer out of kundreskontra), and flagging the re-queue internal (the v1
    # rule: avgifter's answer would drop out of its offered and answered)
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            (finish, "2026-04-01T09:00:30+02:00", data),
            ("queued", "2026-04-01T09:01:00+02:00", A),
            ("answered", "2026-04-01T09:01:45+02:00", A | {"agent": "a2"}),
            ("ended", "2026-04-01T09:03:00+02:00", {}),
        ),
        agreements,
    )
    first, second = f.contacts
    assert (first.seq, first.queue, first.outcome, first.wait_seconds) == (1, "kundreskontra", outcome, 30)
    assert first.transferred_from == () and first.agent is None and not first.internal
    assert (second.seq, second.queue, second.outcome, second.wait_seconds, second.agent) == (
        2, "avgifter", "answered", 45, "a2"
    )  # fmt: skip
    assert second.queued_at == at("2026-04-01T09:01:00+02:00")  # a new contact: its own clock
    assert second.transferred_from == () and not second.internal
    assert f.ordinary == (first, second) and f.internal == () and f.contact == first
    assert second.in_service_level  # 45 s <= avgifter's 120 s
    assert f.talk_seconds(first) is None  # the first contact was not answered
    assert f.talk_seconds(second) == 75  # 09:03:00 - 09:01:45


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
    assert f.talk_seconds(f.contact) == 280  # 09:05:00 - 09:00:20, not 09:10:00 - 09:00:20 = 580


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


# -- same-instant cases the first v2 fold got wrong (found by the property tests) -----------------------


def ids_both_ways(make):
    """The events built with ids in one order and in the opposite order."""
    return make([f"e{i}" for i in range(8)]), make([f"e{7 - i}" for i in range(8)])


def test_a_transfer_chain_with_echoing_call_queued_in_one_second_ends_where_the_chain_ends(agreements):
    """Queued in kundreskontra 09:00:00; at 09:00:30 kundreskontra -> avgifter -> kundreskontra, the
    switch also sending call.queued for each queue entered (docs/decisions.md: switches that emit
    both count one transfer). The chain ends in kundreskontra: one contact waiting there, having
    left kundreskontra and avgifter once each, whatever the ids (spec: "never by their ids")."""
    # guards: next_of applying the echo of the first hop (call.queued avgifter) after the chain,
    # where it reads as a new transfer back to avgifter; the result then followed the ids

    def make(ids):
        return call_with_ids(
            ids,
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("transferred", "2026-04-01T09:00:30+02:00", K | {"to_queue": "avgifter"}),
            ("queued", "2026-04-01T09:00:30+02:00", A),
            ("transferred", "2026-04-01T09:00:30+02:00", A | {"to_queue": "kundreskontra"}),
            ("queued", "2026-04-01T09:00:30+02:00", K),
        )

    for events in ids_both_ways(make):
        f = derive_call("c1", events, agreements)
        assert [(c.queue, c.outcome, c.transferred_from) for c in f.contacts] == [
            ("kundreskontra", "waiting", ("kundreskontra", "avgifter"))
        ]


@pytest.mark.parametrize(("finish", "data", "outcome"), [
    ("callback_requested", K, "callback"), ("exited", K | {"reason": "timeout"}, "flowed_out"),
])  # fmt: skip
def test_a_re_queue_into_the_same_queue_at_the_instant_of_a_callback_comes_after_it(agreements, finish, data, outcome):
    """Queued in kundreskontra 09:00:00; at 09:01:00 a callback request (or a flow-out), a
    call.queued into kundreskontra and an answer there. Spec (metrics.md): "A re-queue at the same
    instant as a callback or flow-out comes after it", and a call.queued after a callback or a
    flow-out starts an ordinary new contact. So: the callback after 60 s, then an ordinary contact
    answered after 0 s by a2. The first v2 fold took the answer first (the first contact answered after
    60 s) and the callback ends an internal transfer of 0 s."""
    # guards: next_of choosing the answer (rank 3) before the callback (rank 4) when both leave the
    # queue the call waits in and a re-queue into that queue shares the instant
    f = derive_call(
        "c1",
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            (finish, "2026-04-01T09:01:00+02:00", data),
            ("queued", "2026-04-01T09:01:00+02:00", K),
            ("answered", "2026-04-01T09:01:00+02:00", K | {"agent": "a2"}),
        ),
        agreements,
    )
    assert [(c.queue, c.outcome, c.wait_seconds, c.agent, c.internal) for c in f.contacts] == [
        ("kundreskontra", outcome, 60, None, False),
        ("kundreskontra", "answered", 0, "a2", False),
    ]


def test_two_stays_queued_and_answered_in_one_second_do_not_depend_on_the_ids(agreements):
    """At 09:00:00 queued in kundreskontra and answered there by a1, queued in avgifter and answered
    there by a2. Either stay may be read as the first (the other then an internal transfer): the
    lifecycle does not tell. But the spec orders same-instant events "never by their ids", so the
    reading must be the same whatever ids the source gave."""
    # guards: next_of's tie between two call.queued that both have an end of the wait at the
    # instant, broken by (source, id) in the first v2 fold

    def make(ids):
        return call_with_ids(
            ids,
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("answered", "2026-04-01T09:00:00+02:00", K | {"agent": "a1"}),
            ("queued", "2026-04-01T09:00:00+02:00", A),
            ("answered", "2026-04-01T09:00:00+02:00", A | {"agent": "a2"}),
        )

    one, other = (derive_call("c1", events, agreements) for events in ids_both_ways(make))
    assert one == other
    assert sorted((c.internal, c.outcome, c.wait_seconds) for c in one.contacts) == [
        (False, "answered", 0), (True, "answered", 0)
    ]  # fmt: skip
    # The tie goes by content, the first in it (avgifter's call.queued sorts before kundreskontra's):
    # avgifter is the ordinary stay, kundreskontra the internal transfer after its answer.
    assert [(c.queue, c.internal, c.agent) for c in one.contacts] == [
        ("avgifter", False, "a2"),
        ("kundreskontra", True, "a1"),
    ]
