"""The contact state machine, rule by rule (spec/metrics.md "Phone queues").

Calendar `kontor`: Mon 08-12 + 13-16:30, Tue-Thu 08-16:30, Fri 08-16, SE holidays, julafton
etc. closed, valborgsmässoafton 08-13. Times are local (+02:00 in summer, +01:00 in winter).
"""

from __future__ import annotations

import pytest

from stream_jobs.core.calls import derive_call
from tests.conftest import call, ev

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}


def fact(agreements, events):
    return derive_call("c1", events, agreements)


@pytest.mark.parametrize(
    ("answered_at", "wait", "in_sl"),
    [
        ("2026-04-01T09:00:59+02:00", 59, True),
        ("2026-04-01T09:01:00+02:00", 60, True),  # wait == T counts as met (<=)
        ("2026-04-01T09:01:00.001+02:00", 60.001, False),  # one millisecond over
        ("2026-04-01T09:01:01+02:00", 61, False),
    ],
)
def test_service_level_threshold_is_inclusive(agreements, answered_at, wait, in_sl):
    f = fact(
        agreements,
        call("c1", ("queued", "2026-04-01T09:00:00+02:00", K), ("answered", answered_at, K | {"agent": "a1"})),
    )
    assert f.contact.outcome == "answered"
    assert f.contact.wait_seconds == pytest.approx(wait)
    assert f.contact.in_service_level is in_sl
    assert f.contact.queue_open


def test_transfer_before_answer_counts_once_in_last_queue_with_clock_from_first_queued(agreements):
    # Queued in kundreskontra 09:00:00, moved to avgifter 09:00:30, answered 09:01:30:
    # one contact, in avgifter, wait 90 s from the first queue; kundreskontra gets one transfer out.
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("transferred", "2026-04-01T09:00:30+02:00", K | {"to_queue": "avgifter"}),
            ("answered", "2026-04-01T09:01:30+02:00", A | {"agent": "a2"}),
        ),
    )
    assert f.contact.queue == "avgifter"
    assert f.contact.wait_seconds == 90
    assert f.contact.transferred_from == ("kundreskontra",)
    assert f.contact.in_service_level  # 90 <= avgifter's 120
    assert f.contacts == (f.contact,) and f.internal == ()


def test_transfer_followed_by_queued_in_the_new_queue_is_one_transfer(agreements):
    # Some switches also emit call.queued for the destination at the same instant.
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("transferred", "2026-04-01T09:00:30+02:00", K | {"to_queue": "avgifter"}),
            ("queued", "2026-04-01T09:00:30+02:00", A),
            ("abandoned", "2026-04-01T09:02:00+02:00", A),
        ),
    )
    assert (f.contact.queue, f.contact.outcome, f.contact.wait_seconds) == ("avgifter", "abandoned", 120)
    assert f.contact.transferred_from == ("kundreskontra",)
    assert f.contacts == (f.contact,)  # the echoing call.queued is no second contact


def test_queued_after_answer_is_an_internal_transfer_reported_apart(agreements):
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("answered", "2026-04-01T09:00:20+02:00", K | {"agent": "a1"}),
            ("queued", "2026-04-01T09:05:00+02:00", A),
            ("answered", "2026-04-01T09:05:40+02:00", A | {"agent": "a2"}),
            ("ended", "2026-04-01T09:10:00+02:00", {}),
        ),
    )
    assert (f.contact.queue, f.contact.wait_seconds, f.contact.agent) == ("kundreskontra", 20, "a1")
    assert f.contact.transferred_from == ()
    [internal] = f.internal
    assert (internal.queue, internal.outcome, internal.wait_seconds, internal.seq) == ("avgifter", "answered", 40, 2)
    assert f.ordinary == (f.contact,)
    assert f.talk_seconds(f.contact) == 580  # ended 09:10:00 - answered 09:00:20 (talk = ended - answered)
    assert f.talk_seconds(internal) == 260  # ended 09:10:00 - answered 09:05:40


@pytest.mark.parametrize(
    ("queued_at", "is_open"),
    [
        ("2026-04-06T16:29:55+02:00", False),  # Easter Monday 2026: public holiday
        ("2026-04-07T16:29:55+02:00", True),  # Tuesday, 5 s before closing: open, counts
        ("2026-04-07T16:30:00+02:00", False),  # exactly at closing: closed (intervals are [start, end))
        ("2026-04-07T07:59:59+02:00", False),
        ("2026-04-07T08:00:00+02:00", True),
        ("2026-04-13T12:30:00+02:00", False),  # Monday lunch closure 12-13
        ("2026-04-03T10:00:00+02:00", False),  # Good Friday
        ("2026-04-30T12:59:59+02:00", True),  # valborgsmässoafton: reduced to 08-13
        ("2026-04-30T13:00:00+02:00", False),
        ("2026-12-24T10:00:00+01:00", False),  # julafton (a Thursday): named in `closed`
        ("2026-06-19T10:00:00+02:00", False),  # midsommarafton
        ("2026-04-04T10:00:00+02:00", False),  # Saturday
    ],
)
def test_open_or_closed_when_first_queued(agreements, queued_at, is_open):
    f = fact(agreements, call("c1", ("queued", queued_at, K), ("ended", "2026-12-31T23:00:00+01:00", {})))
    assert f.contact.queue_open is is_open


def test_open_or_closed_is_decided_at_first_queued_even_if_answered_after_closing(agreements):
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-07T16:29:55+02:00", K),
            ("answered", "2026-04-07T16:31:00+02:00", K | {"agent": "a"}),
        ),
    )
    assert f.contact.queue_open and f.contact.wait_seconds == 65 and not f.contact.in_service_level


@pytest.mark.parametrize(
    ("queued_at", "is_open"),
    [
        # 2026-03-29 is the spring-forward Sunday; Friday before is CET (+01:00), Monday after CEST.
        ("2026-03-27T07:00:00Z", True),  # 08:00 CET
        ("2026-03-27T06:59:59Z", False),  # 07:59:59 CET
        ("2026-03-30T06:00:00Z", True),  # 08:00 CEST
        ("2026-03-30T05:59:59Z", False),  # 07:59:59 CEST (would be open if the offset were ignored)
        ("2026-10-26T06:59:59Z", False),  # Monday after fall-back: 07:59:59 CET
        ("2026-10-26T07:00:00Z", True),  # 08:00 CET
    ],
)
def test_dst_change_weeks_use_the_local_wall_clock(agreements, queued_at, is_open):
    assert fact(agreements, call("c1", ("queued", queued_at, K))).contact.queue_open is is_open


def test_same_instant_with_different_offsets_gives_the_same_wait(agreements):
    a = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("answered", "2026-04-01T07:00:45Z", K | {"agent": "a"}),
        ),
    )
    assert a.contact.wait_seconds == 45 and a.contact.queue_open


@pytest.mark.parametrize(
    ("abandon_after", "short"),
    [("04.999", True), ("05", False), ("30", False)],  # short means wait < 5 s, strictly
)
def test_short_abandon_threshold(agreements, abandon_after, short):
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("abandoned", f"2026-04-01T09:00:{abandon_after}+02:00", K),
        ),
    )
    assert f.contact.outcome == "abandoned" and f.contact.short_abandon is short


def test_ended_while_waiting_is_an_abandon_at_the_end_time(agreements):
    f = fact(
        agreements, call("c1", ("queued", "2026-04-01T09:00:00+02:00", K), ("ended", "2026-04-01T09:01:10+02:00", {}))
    )
    assert (f.contact.outcome, f.contact.wait_seconds) == ("abandoned", 70)


def test_callback_request_ends_the_wait(agreements):
    f = fact(
        agreements,
        call(
            "c1",
            ("queued", "2026-04-01T09:00:00+02:00", K),
            ("callback_requested", "2026-04-01T09:01:30+02:00", K),
            ("ended", "2026-04-01T09:01:31+02:00", {}),
        ),
    )
    assert (f.contact.outcome, f.contact.wait_seconds, f.contact.short_abandon) == ("callback", 90, False)
    assert f.talk_seconds(f.contact) is None  # not answered: no talk, though the call ended


def test_call_that_never_leaves_the_menu_has_no_contact(agreements):
    f = fact(
        agreements,
        [
            ev("call.offered", "2026-04-01T09:00:00+02:00", call_id="c1", entrance="08-1", caller_ref="r"),
            ev("call.ended", "2026-04-01T09:00:20+02:00", call_id="c1"),
        ],
    )
    assert f.contacts == () and f.contact is None and f.offered_at is not None and f.caller_ref == "r"


def test_an_answer_without_ever_being_queued_is_no_contact(agreements):
    """Spec v2 (metrics.md, "Phone queues"): "A call that is answered, abandoned or ends without ever
    being queued is no contact (a direct call to an agent, or a hang-up in the menu)". Spec v1 read
    such an answer as a contact in the queue it names, with a wait of 0 s; that rule is gone."""
    # guards: calls.py opening a contact at a call.answered that found the call waiting nowhere: a
    # direct call to an agent would be offered and answered in kundreskontra, in service level
    f = fact(
        agreements,
        call(
            "c1",
            ("answered", "2026-04-01T09:00:00+02:00", K | {"agent": "a"}),
            ("ended", "2026-04-01T09:03:00+02:00", {}),
        ),
    )
    assert (f.contacts, f.ordinary, f.internal, f.contact) == ((), (), (), None)
    assert f.ended_at is not None and f.events == 2  # the call is still a fact, just without a contact


def test_order_and_duplicates_do_not_matter(agreements):
    events = call(
        "c1",
        ("queued", "2026-04-01T09:00:00+02:00", K),
        ("transferred", "2026-04-01T09:00:30+02:00", K | {"to_queue": "avgifter"}),
        ("answered", "2026-04-01T09:01:30+02:00", A | {"agent": "a2"}),
        ("ended", "2026-04-01T09:05:00+02:00", {}),
    )
    expected = fact(agreements, events)
    assert fact(agreements, list(reversed(events)) + events[:2]) == expected
    assert expected.events == 4
