"""The contact state machine (spec/metrics.md, "Phone queues"): one call's events -> its fact.

Pure: no I/O. The fold sorts the call's events by time (ties in call order: offered, queued,
transferred, answered, callback, abandoned, ended) and drops duplicates (same source and id)
first, so the result does not depend on arrival order or repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from msgspec import Struct

from schemas.agreements import Agreements
from schemas.events import (
    CallAbandoned,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallEvent,
    CallOffered,
    CallQueued,
    CallTransferred,
)
from stream_jobs.core.ordering import ordered

# Tie order for events at the same instant: the order a call goes through them.
_ORDER: dict[type, int] = {
    CallOffered: 0,
    CallQueued: 1,
    CallTransferred: 2,
    CallAnswered: 3,
    CallbackRequested: 4,
    CallAbandoned: 5,
    CallEnded: 6,
}

WAITING, ANSWERED, ABANDONED, CALLBACK = "waiting", "answered", "abandoned", "callback"


class Contact(Struct, frozen=True, gc=False):
    """One stay of a call in the queues, from first queued to answer, abandon or callback."""

    queue: str  # the last queue it waited in (ACE attribution)
    queued_at: datetime  # when it was *first* queued; the clock runs across transfers
    outcome: str  # waiting | answered | abandoned | callback
    left_at: datetime | None  # answered, abandoned or callback time
    agent: str | None
    transferred_from: tuple[str, ...]  # queues left for another before answer, in order

    @property
    def wait_seconds(self) -> float | None:
        return None if self.left_at is None else (self.left_at - self.queued_at).total_seconds()


class CallFact(Struct, frozen=True, gc=False):
    call_id: str
    offered_at: datetime | None
    entrance: str | None
    caller_ref: str | None
    ended_at: datetime | None
    contact: Contact | None  # the citizen's contact; None if the call never reached a queue
    internal: tuple[Contact, ...]  # internal transfers after an answer: reported apart
    queue_open: bool  # the contact's queue was open when it was first queued
    short_abandon: bool
    in_service_level: bool
    events: int  # distinct events folded

    @property
    def talk_seconds(self) -> float | None:
        c = self.contact
        if c is None or c.outcome != ANSWERED or self.ended_at is None or c.left_at is None:
            return None
        return (self.ended_at - c.left_at).total_seconds()


class _Open:
    __slots__ = ("agent", "left_at", "outcome", "queue", "queued_at", "transferred_from")

    def __init__(self, queue: str, queued_at: datetime) -> None:
        self.queue, self.queued_at = queue, queued_at
        self.outcome: str = WAITING
        self.left_at: datetime | None = None
        self.agent: str | None = None
        self.transferred_from: list[str] = []

    def move_to(self, queue: str) -> None:
        if queue != self.queue:
            self.transferred_from.append(self.queue)
            self.queue = queue

    def leave(self, outcome: str, at: datetime, queue: str) -> None:
        if self.outcome == WAITING:
            self.move_to(queue)  # a missed transfer event: attribute to where it left from
            self.outcome, self.left_at = outcome, at

    def frozen(self) -> Contact:
        return Contact(self.queue, self.queued_at, self.outcome, self.left_at, self.agent, tuple(self.transferred_from))


def derive_call(call_id: str, events: Iterable[CallEvent], agreements: Agreements) -> CallFact:
    evs = ordered(events, _ORDER)
    offered_at: datetime | None = None
    entrance = caller_ref = None
    ended_at: datetime | None = None
    contacts: list[_Open] = []

    def current(queue: str, at: datetime) -> _Open:
        # An answer or abandon whose call.queued is missing still is a contact (wait from here).
        if not contacts:
            contacts.append(_Open(queue, at))
        return contacts[-1]

    for ev in evs:
        # `type(ev) is X` narrows like isinstance() and is cheaper on this hot path.
        if type(ev) is CallOffered:
            if offered_at is None:
                offered_at, entrance, caller_ref = ev.time, ev.data.entrance, ev.data.caller_ref
        elif type(ev) is CallQueued:
            q = ev.data.queue
            if not contacts:
                contacts.append(_Open(q, ev.time))
            elif contacts[-1].outcome == WAITING:
                contacts[-1].move_to(q)  # queued elsewhere while waiting: a transfer
            else:
                contacts.append(_Open(q, ev.time))  # after an answer: an internal transfer
        elif type(ev) is CallTransferred:
            c = current(ev.data.queue, ev.time)
            if c.outcome == WAITING:
                c.move_to(ev.data.to_queue)
            else:
                contacts.append(_Open(ev.data.to_queue, ev.time))  # transferred after answer
        elif type(ev) is CallAnswered:
            c = current(ev.data.queue, ev.time)
            if c.outcome == WAITING:
                c.agent = ev.data.agent
            c.leave(ANSWERED, ev.time, ev.data.queue)
        elif type(ev) is CallbackRequested:
            current(ev.data.queue, ev.time).leave(CALLBACK, ev.time, ev.data.queue)
        elif type(ev) is CallAbandoned:
            current(ev.data.queue, ev.time).leave(ABANDONED, ev.time, ev.data.queue)
        elif type(ev) is CallEnded and ended_at is None:
            ended_at = ev.time
            for c in contacts:  # ended while waiting: the caller hung up
                c.leave(ABANDONED, ev.time, c.queue)

    contact = contacts[0].frozen() if contacts else None
    queue_open = short = in_sl = False
    if contact is not None:
        agreement = agreements.queues[contact.queue]
        queue_open = agreement.calendar.is_open(contact.queued_at)
        wait = contact.wait_seconds
        short = contact.outcome == ABANDONED and wait is not None and wait < agreement.short_abandon_seconds
        in_sl = contact.outcome == ANSWERED and wait is not None and wait <= agreement.service_level_seconds
    return CallFact(
        call_id=call_id,
        offered_at=offered_at,
        entrance=entrance,
        caller_ref=caller_ref,
        ended_at=ended_at,
        contact=contact,
        internal=tuple(c.frozen() for c in contacts[1:]),
        queue_open=queue_open,
        short_abandon=short,
        in_service_level=in_sl,
        events=len(evs),
    )
