"""The mailbox case tracker, rule by rule (spec/metrics.md "Function mailboxes").

Mailbox kundreskontra: calendar `kontor` (Mon 08-12 + 13-16:30, Tue-Thu 08-16:30, Fri 08-16),
response target 8 h, priority 4 h of business time.
"""

from __future__ import annotations

import pytest

from stream_jobs.core.mail import derive_thread
from tests.conftest import ev

SRC = "imap/kundreskontra"


def received(t, msg="m1", thread="u1", categories=(), **extra):
    data = {"mailbox": "kundreskontra", "message_id": msg, "thread_id": thread, "categories": list(categories)}
    return ev("mail.received", t, source=SRC, **data, **extra)


def replied(t, msg="r1", thread="u1"):
    return ev("mail.replied", t, source=SRC, mailbox="kundreskontra", message_id=msg, thread_id=thread)


def closed(t, reason="handled", thread="u1"):
    return ev("mail.closed", t, source=SRC, mailbox="kundreskontra", thread_id=thread, reason=reason)


def cases(agreements, events):
    return derive_thread("u1", events, agreements.mailboxes["kundreskontra"])


def test_friday_afternoon_answered_monday_counts_only_open_hours(agreements):
    # Fri 2026-04-17 15:30 -> Mon 2026-04-20 09:00: Fri 15:30-16:00 (0.5 h) + Mon 08:00-09:00 (1 h).
    [case] = cases(agreements, [received("2026-04-17T15:30:00+02:00"), replied("2026-04-20T09:00:00+02:00")])
    assert case.end == "replied"
    assert case.lead_seconds == 1.5 * 3600
    assert case.within_target and not case.priority and case.target_seconds == 8 * 3600


def test_lead_time_at_exactly_the_target_is_within(agreements):
    # Tue 08:00 -> Tue 16:00 is 8 h of a 08:00-16:30 day: exactly the 8 h target.
    [case] = cases(agreements, [received("2026-04-14T08:00:00+02:00"), replied("2026-04-14T16:00:00+02:00")])
    assert case.lead_seconds == 8 * 3600 and case.within_target
    [late] = cases(agreements, [received("2026-04-14T08:00:00+02:00"), replied("2026-04-14T16:00:01+02:00")])
    assert not late.within_target


def test_mail_received_out_of_hours_starts_counting_at_opening(agreements):
    # Sat 10:00 -> Mon 08:30: nothing on the weekend, Mon 08:00-08:30.
    [case] = cases(agreements, [received("2026-04-18T10:00:00+02:00"), replied("2026-04-20T08:30:00+02:00")])
    assert case.lead_seconds == 1800


def test_follow_up_while_open_does_not_restart_the_clock(agreements):
    [case] = cases(
        agreements,
        [
            received("2026-04-14T09:00:00+02:00", "m1"),
            received("2026-04-14T11:00:00+02:00", "m2"),
            replied("2026-04-14T12:00:00+02:00"),
        ],
    )
    assert case.opened_at.hour == 9 and case.lead_seconds == 3 * 3600 and case.messages == 2


def test_message_after_the_reply_opens_a_new_case(agreements):
    first, second = cases(
        agreements,
        [
            received("2026-04-14T09:00:00+02:00", "m1"),
            replied("2026-04-14T10:00:00+02:00", "r1"),
            received("2026-04-15T09:00:00+02:00", "m2"),
        ],
    )
    assert (first.seq, first.end, first.lead_seconds) == (1, "replied", 3600)
    assert (second.seq, second.end, second.ended_at, second.lead_seconds) == (2, "", None, None)


def test_reply_or_close_without_an_open_case_opens_nothing(agreements):
    assert cases(agreements, [replied("2026-04-14T10:00:00+02:00"), closed("2026-04-14T11:00:00+02:00")]) == []


def test_close_ends_the_case_without_reply(agreements):
    [case] = cases(
        agreements,
        [
            received("2026-04-14T09:00:00+02:00"),
            closed("2026-04-14T09:30:00+02:00", "spam"),
            replied("2026-04-14T10:00:00+02:00"),  # after the close: no open case, ignored
        ],
    )
    assert (case.end, case.close_reason, case.lead_seconds, case.within_target) == ("closed", "spam", None, False)


def test_priority_from_any_message_of_the_case_sets_the_priority_target(agreements):
    # Second message carries the `priority` category (the ingest boundary classified its subject).
    # Wed 15:00 -> Thu 12:00 = 1.5 h + 4 h = 5.5 h > the 4 h priority target.
    [case] = cases(
        agreements,
        [
            received("2026-04-29T15:00:00+02:00", "m1"),
            received("2026-04-29T15:10:00+02:00", "m2", categories=["priority", "avbetalning"]),
            replied("2026-04-30T12:00:00+02:00"),
        ],
    )
    assert case.priority and case.target_seconds == 4 * 3600
    assert case.lead_seconds == 5.5 * 3600 and not case.within_target


def test_open_case_carries_the_business_clock_at_opening(agreements):
    # opened_clock is the business clock (business seconds since an epoch) at the opening: the
    # business age of an open case is later clock minus it. The absolute value spans 26 years of
    # holidays, so the expectations are the hand-computed differences between three openings
    # (calendar `kontor`), not the calendar's own clock():
    # - a: Thu 30 April 2026 12:30, Valborgsmässoafton, reduced to 08:00-13:00;
    # - b: Fri 1 May 10:00, a public holiday: closed, so the clock stands at Thu 13:00;
    # - c: Mon 4 May 09:00, open since 08:00.
    # b - a = Thu 12:30-13:00 = 0.5 h; c - b = Mon 08:00-09:00 = 1 h.
    mailbox = agreements.mailboxes["kundreskontra"]
    opened = {}
    for thread, t in (
        ("a", "2026-04-30T12:30:00+02:00"),
        ("b", "2026-05-01T10:00:00+02:00"),
        ("c", "2026-05-04T09:00:00+02:00"),
    ):
        [case] = derive_thread(thread, [received(t, f"m-{thread}", thread)], mailbox)
        assert case.end == ""
        opened[thread] = case.opened_clock
    assert opened["b"] - opened["a"] == 0.5 * 3600
    assert opened["c"] - opened["b"] == 1 * 3600


@pytest.mark.parametrize("variant", ["reversed", "duplicated"])
def test_order_and_duplicates_do_not_matter(agreements, variant):
    events = [
        received("2026-04-14T09:00:00+02:00", "m1"),
        received("2026-04-14T09:30:00+02:00", "m2"),
        replied("2026-04-14T10:00:00+02:00", "r1"),
        received("2026-04-15T09:00:00+02:00", "m3"),
        closed("2026-04-15T09:05:00+02:00"),
    ]
    other = list(reversed(events)) if variant == "reversed" else events + events[::2]
    assert cases(agreements, other) == cases(agreements, events)
