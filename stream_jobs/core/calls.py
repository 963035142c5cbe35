"""The contact state machine (spec/metrics.md, "Phone queues"): one call's events -> its contacts.

Pure: no I/O. The fold sorts the call's events by time and drops duplicates (same source and id)
first, so the result does not depend on arrival order or repeats. Events at the same instant
(sources have one-second resolution) are taken in the order the call goes through them, read
off the call's state, never off their ids (`_next`).

Only a `call.queued` (or a transfer into a queue while the call waits in none) starts a contact:
a call answered, abandoned or ended without ever being queued has none. One call can hold several
contacts: the caller re-queued after a callback request or a flow-out is an ordinary new contact;
a call queued again after it was answered is an internal transfer, reported apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec
from msgspec import Struct

from schemas.agreements import Agreements
from schemas.events import (
    CallAbandoned,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallEvent,
    CallExited,
    CallOffered,
    CallQueued,
    CallTransferred,
)
from stream_jobs.core.ordering import ordered

# The rank of each type among events at the same instant: the order a call goes through them.
# `_next` refines it with the call's state (a transfer chain, a re-queue after an answer).
_ORDER: dict[type, int] = {
    CallOffered: 0,
    CallQueued: 1,
    CallTransferred: 2,
    CallAnswered: 3,
    CallbackRequested: 4,
    CallAbandoned: 5,
    CallExited: 6,
    CallEnded: 7,
}
# Events that end the wait in the queue they name.
_LEAVING = (CallAnswered, CallbackRequested, CallAbandoned, CallExited)

WAITING, ANSWERED, ABANDONED, CALLBACK, FLOWED_OUT = "waiting", "answered", "abandoned", "callback", "flowed_out"
_OUTCOME = {CallbackRequested: CALLBACK, CallAbandoned: ABANDONED, CallExited: FLOWED_OUT}


class Contact(Struct, frozen=True, gc=False):
    """One stay of a call in the queues, from first queued to answer, abandon, callback or flow-out."""

    seq: int  # 1 for the call's first contact, in the order they started
    queue: str  # the last queue it waited in (ACE attribution)
    queued_at: datetime  # when it was *first* queued; the clock runs across transfers
    outcome: str  # waiting | answered | abandoned | callback | flowed_out
    left_at: datetime | None  # answered, abandoned, callback or flow-out time
    agent: str | None
    transferred_from: tuple[str, ...]  # the queues it left for another before answer, each once
    internal: bool  # queued again after the call was answered: reported apart, in no KPI
    queue_open: bool  # its queue was open when it was first queued (else out_of_hours)
    short_abandon: bool  # abandoned with wait < short_abandon_seconds
    in_service_level: bool  # answered with wait <= service_level_seconds
    levels_met: tuple[float, ...]  # the queue's extra_service_levels X it was answered within

    @property
    def wait_seconds(self) -> float | None:
        return None if self.left_at is None else (self.left_at - self.queued_at).total_seconds()


class CallFact(Struct, frozen=True, gc=False):
    call_id: str
    offered_at: datetime | None
    entrance: str | None
    caller_ref: str | None  # of the first call.offered that has a caller
    ended_at: datetime | None
    contacts: tuple[Contact, ...]  # in the order they started; none if never queued
    events: int  # distinct events folded

    @property
    def ordinary(self) -> tuple[Contact, ...]:
        """The contacts in the KPIs."""
        return tuple(c for c in self.contacts if not c.internal)

    @property
    def internal(self) -> tuple[Contact, ...]:
        """Internal transfers (queued again after an answer): reported apart."""
        return tuple(c for c in self.contacts if c.internal)

    @property
    def contact(self) -> Contact | None:
        """The first ordinary contact (most calls have one at most)."""
        return next((c for c in self.contacts if not c.internal), None)

    def talk_seconds(self, contact: Contact) -> float | None:
        """call.ended - call.answered of an answered contact."""
        if contact.outcome != ANSWERED or self.ended_at is None or contact.left_at is None:
            return None
        return (self.ended_at - contact.left_at).total_seconds()


class _Open:
    __slots__ = ("agent", "internal", "left_at", "outcome", "queue", "queued_at", "transferred_from")

    def __init__(self, queue: str, queued_at: datetime, internal: bool) -> None:
        self.queue, self.queued_at, self.internal = queue, queued_at, internal
        self.outcome: str = WAITING
        self.left_at: datetime | None = None
        self.agent: str | None = None
        self.transferred_from: list[str] = []

    def move_to(self, queue: str) -> None:
        if queue != self.queue:
            if self.queue not in self.transferred_from:  # once per queue, however often it left
                self.transferred_from.append(self.queue)
            self.queue = queue

    def leave(self, outcome: str, at: datetime, queue: str) -> None:
        self.move_to(queue)  # a missed transfer event: attribute to where it left from
        self.outcome, self.left_at = outcome, at

    def frozen(self, seq: int, agreements: Agreements) -> Contact:
        agreement = agreements.queues[self.queue]
        wait = None if self.left_at is None else (self.left_at - self.queued_at).total_seconds()
        answered = self.outcome == ANSWERED and wait is not None
        return Contact(
            seq=seq,
            queue=self.queue,
            queued_at=self.queued_at,
            outcome=self.outcome,
            left_at=self.left_at,
            agent=self.agent,
            transferred_from=tuple(self.transferred_from),
            internal=self.internal,
            queue_open=agreement.calendar.is_open(self.queued_at),
            short_abandon=self.outcome == ABANDONED and wait is not None and wait < agreement.short_abandon_seconds,
            in_service_level=answered and wait <= agreement.service_level_seconds,  # type: ignore[operator]
            levels_met=tuple(x for x in agreement.extra_service_levels if answered and wait <= x),  # type: ignore[operator]
        )


class _Fold:
    """One call's state while its events are applied in order."""

    def __init__(self) -> None:
        self.offered: CallOffered | None = None
        self.caller_ref: str | None = None
        self.ended_at: datetime | None = None
        self.contacts: list[_Open] = []
        self.answered = False  # answered at some point: a later re-queue is an internal transfer

    def waiting(self) -> _Open | None:
        last = self.contacts[-1] if self.contacts else None
        return last if last is not None and last.outcome == WAITING else None

    def enter(self, queue: str, at: datetime) -> None:
        """The call enters `queue`: a transfer while it waits, else a new contact."""
        w = self.waiting()
        if w is not None:
            w.move_to(queue)
        else:
            self.contacts.append(_Open(queue, at, internal=self.answered))

    def apply(self, ev: CallEvent) -> None:
        # `type(ev) is X` narrows like isinstance() and is cheaper on this hot path.
        if type(ev) is CallOffered:
            if self.offered is None:
                self.offered = ev
            if self.caller_ref is None:
                self.caller_ref = ev.data.caller_ref
        elif type(ev) is CallQueued:
            self.enter(ev.data.queue, ev.time)
        elif type(ev) is CallTransferred:
            w = self.waiting()
            if w is not None:
                w.move_to(ev.data.queue)  # a missed transfer into the queue it leaves
            self.enter(ev.data.to_queue, ev.time)
        elif type(ev) is CallEnded:
            if self.ended_at is None:
                self.ended_at = ev.time
                w = self.waiting()
                if w is not None:  # ended while waiting: the caller hung up
                    w.leave(ABANDONED, ev.time, w.queue)
        elif type(ev) is CallAnswered:
            self.answered = True
            w = self.waiting()
            if w is not None:
                w.agent = ev.data.agent
                w.leave(ANSWERED, ev.time, ev.data.queue)
        else:  # callback, abandoned, exited: the wait ends in the queue named
            w = self.waiting()
            if w is not None:
                w.leave(_OUTCOME[type(ev)], ev.time, ev.data.queue)  # type: ignore[union-attr]

    def next_of(self, pending: Sequence[CallEvent], entered: set[str]) -> int:
        """Which of the events at one instant (in `_ORDER`, ties by content) comes first, given the
        call's state: the lifecycle of spec/metrics.md ("Events at the same instant"). `entered`
        holds the queues transfers of this instant led into."""
        w = self.waiting()
        if w is None:
            # Waiting nowhere: the queued that starts the chain comes first, i.e. one that no
            # transfer of this instant leads into and that something of this instant leaves from.
            # (A call.offered may come at any point: only the first offered's data is kept.)
            best: tuple[tuple[bool, bool], int] | None = None
            for k, ev in enumerate(pending):
                if type(ev) is CallQueued:
                    q = ev.data.queue
                    into = any(type(p) is CallTransferred and p.data.to_queue == q for p in pending)
                    leaves = any(type(p) in _FROM_QUEUE and p.data.queue == q for p in pending)  # type: ignore[union-attr]
                    score = (into, not leaves)
                    if best is None or score < best[0]:
                        best = (score, k)
            if best is not None:
                return best[1]
            # No call.queued (lost, or a transfer after a callback): the transfer chain from its start.
            for k, ev in enumerate(pending):
                if type(ev) is CallTransferred and not any(
                    type(p) is CallTransferred and p.data.to_queue == ev.data.queue for p in pending
                ):
                    return k
            return 0
        here = w.queue
        requeue = transfer_out = False
        for k, ev in enumerate(pending):
            if type(ev) is CallQueued:
                if ev.data.queue == here and here in entered:
                    return k  # the switch echoing a transfer of this instant: nothing more
                requeue = True
            elif type(ev) is CallTransferred and ev.data.queue == here:
                transfer_out = True
        # A re-queue comes after a callback or flow-out of the instant; while a transfer leaves the
        # queue, the chain comes first (a call.queued then is its echo, or a transfer's).
        if requeue and not transfer_out:
            for k, ev in enumerate(pending):
                if type(ev) in _HANDED_BACK and ev.data.queue == here:  # type: ignore[union-attr]
                    return k
        leaving = any(type(p) in _FROM_QUEUE and p.data.queue == here for p in pending)  # type: ignore[union-attr]
        for k, ev in enumerate(pending):
            cls = type(ev)
            if cls is CallOffered:
                return k
            if cls is CallQueued:
                if not leaving:  # queued elsewhere while waiting here, nothing leaving: a transfer
                    return k
            elif cls in _FROM_QUEUE and ev.data.queue == here:  # type: ignore[union-attr]
                return k  # the transfer chain from where the call is, then its answer or end
        return 0


# Events that leave the queue they name: a transfer out of it, or the end of the wait there.
_FROM_QUEUE = frozenset({CallTransferred, *_LEAVING})
_encode = msgspec.json.Encoder().encode
_HANDED_BACK = frozenset({CallbackRequested, CallExited})  # the caller may be queued again at once


def _tie_key(ev: CallEvent) -> tuple[int, bytes]:
    """The order of one instant's events before the call's state refines it: the lifecycle rank,
    then the content (never the ids, which a source may give in any order)."""
    return _ORDER[type(ev)], _encode(ev.data)


def derive_call(call_id: str, events: Iterable[CallEvent], agreements: Agreements) -> CallFact:
    evs = ordered(events, _ORDER)
    fold = _Fold()
    i, n = 0, len(evs)
    while i < n:
        j = i + 1
        while j < n and evs[j].time == evs[i].time:
            j += 1
        if j == i + 1:
            fold.apply(evs[i])
        else:
            pending = sorted(evs[i:j], key=_tie_key)
            entered: set[str] = set()
            while pending:
                ev = pending.pop(fold.next_of(pending, entered))
                if type(ev) is CallTransferred:
                    entered.add(ev.data.to_queue)
                fold.apply(ev)
        i = j

    offered = fold.offered
    return CallFact(
        call_id=call_id,
        offered_at=offered.time if offered is not None else None,
        entrance=offered.data.entrance if offered is not None else None,
        caller_ref=fold.caller_ref,
        ended_at=fold.ended_at,
        contacts=tuple(c.frozen(seq, agreements) for seq, c in enumerate(fold.contacts, 1)),
        events=n,
    )
