"""The mailbox case tracker (spec/metrics.md, "Function mailboxes"): a thread's events -> cases.

Pure: no I/O. A case opens at a message received while no case is open in the thread; more
messages do not restart its clock; the first reply (answered) or close (closed without
reply) ends it; a message after that opens a new case. Replies and closes with no open case
open nothing. Events are sorted and de-duplicated first, so order and repeats do not matter.

Adding events to a thread never lowers its number of cases, so case `seq` numbers are a
stable key for the warehouse's upserts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from msgspec import Struct

from schemas.agreements import Mailbox
from schemas.calendar import Calendar
from schemas.events import MailClosed, MailEvent, MailReceived, MailReplied
from stream_jobs.core.ordering import ordered

_ORDER: dict[type, int] = {MailReceived: 0, MailReplied: 1, MailClosed: 2}
PRIORITY = "priority"
REPLIED, CLOSED, OPEN = "replied", "closed", ""


class MailCase(Struct, frozen=True, gc=False):
    mailbox: str
    thread_id: str
    seq: int  # 1 for the thread's first case
    opened_at: datetime
    opened_clock: float  # the calendar's business clock at opening (schemas.calendar)
    ended_at: datetime | None
    end: str  # replied | closed | "" (open)
    close_reason: str
    lead_seconds: float | None  # business time from opening to the reply
    priority: bool
    target_seconds: float
    working_day_deadline: datetime | None  # KKiK: a reply before it is within one working day
    messages: int  # messages received while the case was open
    sender_ref: str | None

    @property
    def within_target(self) -> bool:
        return self.lead_seconds is not None and self.lead_seconds <= self.target_seconds


def derive_thread(thread_id: str, events: Iterable[MailEvent], mailbox: Mailbox) -> list[MailCase]:
    cal = mailbox.calendar
    cases: list[MailCase] = []
    opened: MailReceived | None = None
    messages, priority = 0, False

    def finish(end: str, at: datetime | None, reason: str = "") -> None:
        assert opened is not None
        cases.append(
            MailCase(
                mailbox=mailbox.id,
                thread_id=thread_id,
                seq=len(cases) + 1,
                opened_at=opened.time,
                opened_clock=cal.clock(opened.time),
                ended_at=at,
                end=end,
                close_reason=reason,
                lead_seconds=cal.business_seconds(opened.time, at) if end == REPLIED and at else None,
                priority=priority,
                target_seconds=(
                    mailbox.priority_response_target_seconds if priority else mailbox.response_target_seconds
                ),
                working_day_deadline=working_day_deadline(cal, opened.time),
                messages=messages,
                sender_ref=opened.data.sender_ref,
            )
        )

    for ev in ordered(events, _ORDER):
        if isinstance(ev, MailReceived):
            if opened is None:
                opened, messages, priority = ev, 0, False
            messages += 1
            priority = priority or any(c.casefold() == PRIORITY for c in ev.data.categories)
        elif opened is not None:
            if isinstance(ev, MailClosed):
                finish(CLOSED, ev.time, ev.data.reason)
            else:
                finish(REPLIED, ev.time)
            opened = None
    if opened is not None:
        finish(OPEN, None)
    return cases


# A calendar with no opening hours for this long has no "next working day" (no deadline).
_WORKING_DAY_SEARCH = 400


def working_day_deadline(cal: Calendar, opened: datetime) -> datetime | None:
    """The end (24:00, local) of the first working day after the local day `opened` falls on: the
    KKiK yardstick's deadline (spec/metrics.md). A working day has opening hours in the calendar."""
    day = opened.astimezone(cal.tz).date()
    key = (cal, day)  # a Calendar hashes by identity, and the key keeps it alive
    found = _deadlines.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = _deadline_after(cal, day)
        if len(_deadlines) >= _DEADLINES_KEPT:  # bounded: forget all, refilled from what comes
            _deadlines.clear()
        _deadlines[key] = found
    return found  # type: ignore[return-value]


# Each case derived asks for its day's deadline, and a thread is derived again whenever a batch
# touches it: the deadlines of the (calendar, local day)s met, a few hundred a year per calendar.
_deadlines: dict[tuple[Calendar, date], datetime | None] = {}
_DEADLINES_KEPT = 8192
_UNKNOWN = object()


def _deadline_after(cal: Calendar, day: date) -> datetime | None:
    for _ in range(_WORKING_DAY_SEARCH):
        day += timedelta(days=1)
        if cal.intervals_on(day):
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=cal.tz)
    return None
