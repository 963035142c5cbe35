"""Applies batches of canonical events to a store: raw events, then re-derived facts.

Shared by the in-process replay (`availability process`) and the stream worker, so both give
the same facts. For each call or mail thread touched by a batch, the pure derivation folds
*all* known events of that entity: those held in memory plus, for an entity not in memory,
those already stored (an earlier run, a restart, an event that arrives after its entity was
evicted). That is what makes the result independent of order, duplicates, restarts and how
events are split across files or batches.

Memory stays flat: entities whose last event is older than the watermark (the latest event
time seen) minus a grace period are evicted; they are reloaded from the store if needed,
with every event stored of them, however old (a `call.ended` days after the call).

Each touched entity is derived before anything of the batch is stored. An entity whose
derivation raises, and an event whose time is outside [EARLIEST_TIME, LATEST_TIME), goes to
`BatchResult.failed` with a reason and is not stored; the rest of the batch is. Callers route
`failed` like rejections (the replay to its rejects, the stream worker to the dead-letter topic),
so one bad thread can neither stop a run nor leave raw events without their facts.

The store is the ClickHouse warehouse in every run, a `MemoryStore` in unit tests
(stream_jobs/core/store.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from schemas.agreements import Agreements
from schemas.events import (
    CALL_CLASSES,
    MAIL_CLASSES,
    OUT_OF_RANGE,
    CallEvent,
    Event,
    MailEvent,
    event_key,
    in_time_range,
)
from stream_jobs.core.calls import CallFact, derive_call
from stream_jobs.core.mail import MailCase, derive_thread
from stream_jobs.core.ordering import preferred
from stream_jobs.core.provenance import derivation_inputs, fingerprint
from stream_jobs.core.store import RowKey, Store, interval_of, stored_instant

CALL_GRACE = timedelta(hours=6)
THREAD_GRACE = timedelta(days=2)


E = TypeVar("E", CallEvent, MailEvent)


@dataclass
class _Entities(Generic[E]):
    """Entity key -> its distinct events ((source, id) -> event) and its latest event time."""

    grace: timedelta
    events: dict[str, dict[tuple[str, str], E]] = field(default_factory=dict)
    last: dict[str, datetime] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)  # the last fact(s), when changes are tracked
    # The row keys (seq, instant) under which the store may hold the entity's facts: read from it
    # on reload, then every key written since. A key no longer derived is withdrawn.
    written: dict[str, set[RowKey]] = field(default_factory=dict)

    def add(self, key: str, events: Sequence[E], conflicts: list[tuple[Event, Event]]) -> None:
        """Hold the events; a conflicting duplicate (same source and id, other content) keeps the
        `preferred` one and is appended to `conflicts` as (kept, other)."""
        held = self.events.setdefault(key, {})
        for ev in events:
            dedup = (ev.source, ev.id)
            old = held.get(dedup)
            if old is None:
                held[dedup] = ev
            elif old != ev:
                kept = held[dedup] = preferred(old, ev)
                conflicts.append((kept, ev if kept is old else old))
            if key not in self.last or ev.time > self.last[key]:
                self.last[key] = ev.time

    def rekey(self, key: str, rows: set[RowKey]) -> tuple[set[RowKey], set[RowKey]]:
        """Record the entity's facts derived now under `rows`: (the keys to withdraw, every key the
        store may hold of it, whose intervals are touched)."""
        written = self.written.get(key, set())
        self.written[key] = held = written | rows
        return written - rows, held

    def evict(self, watermark: datetime) -> None:
        horizon = watermark - self.grace
        for key in [k for k, t in self.last.items() if t < horizon]:
            self.drop(key)

    def drop(self, key: str) -> None:
        """Forget an entity; it is reloaded from the store when touched again."""
        self.events.pop(key, None)
        self.last.pop(key, None)
        self.derived.pop(key, None)
        self.written.pop(key, None)


@dataclass
class BatchResult:
    events: int = 0
    calls: int = 0
    cases: int = 0
    # With track_changes: each touched call's fact before and after this batch, and each
    # touched thread's cases before and after (what the live metrics count transitions of).
    call_changes: list[tuple[CallFact | None, CallFact]] = field(default_factory=list)
    case_changes: list[tuple[list[MailCase], list[MailCase]]] = field(default_factory=list)
    # Events of the batch that were not stored, each with the reason: those of an entity whose
    # derivation raised, and those with a time outside the accepted range.
    failed: list[tuple[Event, str]] = field(default_factory=list)
    # Conflicting duplicates met (kept, other): same source and id, different content
    # (spec/events.md). Stored with `Store.record_conflicts`, which counts each once.
    conflicts: list[tuple[Event, Event]] = field(default_factory=list)


@dataclass
class _Derived:
    """What a derivation gives to store: the facts, the rows withdrawn, the intervals touched."""

    facts: list[CallFact] = field(default_factory=list)
    stale_contacts: list[tuple[str, int, datetime]] = field(default_factory=list)
    cases: list[MailCase] = field(default_factory=list)
    stale_cases: list[tuple[str, str, int, datetime]] = field(default_factory=list)
    call_intervals: set[datetime] = field(default_factory=set)
    case_intervals: set[datetime] = field(default_factory=set)


class Deriver:
    def __init__(self, store: Store, agreements: Agreements, *, track_changes: bool = False) -> None:
        self.store = store
        self.agreements = agreements
        self.track_changes = track_changes
        self.calls: _Entities[CallEvent] = _Entities(CALL_GRACE)
        self.threads: _Entities[MailEvent] = _Entities(THREAD_GRACE)
        self.watermark: datetime | None = None
        # Every fact written is marked with the agreements that derived it, so a report run with
        # other agreements can say which measures they change (dashboards/report.py).
        self.inputs = derivation_inputs(agreements)
        self.fingerprint = fingerprint(self.inputs)
        self._recorded = False

    def forget(self) -> None:
        """Drop what memory holds. After a Kafka rebalance another worker may have written
        events of our entities; they are reloaded from the store when touched again."""
        self.calls = _Entities(CALL_GRACE)
        self.threads = _Entities(THREAD_GRACE)
        self._recorded = False  # the record may have been lost with the refused batch

    def apply(self, events: Sequence[Event]) -> BatchResult:
        """Derive every call and thread the batch touches, then store the batch and the facts.

        What cannot be derived is returned in `failed` and not stored (see the module doc)."""
        result = BatchResult()
        if not events:
            return result
        calls: dict[str, list[CallEvent]] = defaultdict(list)
        threads: dict[str, list[MailEvent]] = defaultdict(list)
        for ev in events:
            if not in_time_range(ev.time):
                result.failed.append((ev, f"time {ev.time.isoformat()} {OUT_OF_RANGE}"))
                continue
            cls = type(ev)  # a set lookup: isinstance() against a union is slow on hot paths
            if cls in CALL_CLASSES:
                calls[ev.data.call_id].append(ev)  # type: ignore[union-attr,arg-type]
            elif cls in MAIL_CLASSES:
                threads[event_key(ev)].append(ev)  # type: ignore[arg-type]

        # What the store holds of entities not in memory, before this batch is stored (so the
        # lookup finds only earlier events).
        new_calls = [k for k in calls if k not in self.calls.events]
        self._reload(new_calls, [k for k in threads if k not in self.threads.events], result.conflicts)
        derived = self._derive(calls, threads, result, track=self.track_changes)

        stored: Sequence[Event] = events
        # The version of a conflict that is not kept is not stored either: it would replace the
        # kept one in the events table (same source, id and day) and win after a restart. It is
        # kept in the conflicts' record instead.
        if result.failed or result.conflicts:
            gone = {id(ev) for ev, _ in result.failed} | {id(other) for _, other in result.conflicts}
            stored = [ev for ev in events if id(ev) not in gone]
        self._write(stored, derived, result.conflicts)

        if stored:  # a rejected time (year 9999) must not move the watermark and evict everything
            latest = max(ev.time for ev in stored)
            self.watermark = latest if self.watermark is None else max(self.watermark, latest)
            self.calls.evict(self.watermark)
            self.threads.evict(self.watermark)
        result.events = len(events) - len(result.failed)  # a conflict's other version is accepted, not stored
        return result

    def refold(self, call_ids: Sequence[str], thread_keys: Sequence[str]) -> BatchResult:
        """Derive these calls and threads again from every event the store holds of them, with
        this Deriver's agreements (after they changed), storing no event (they are stored).

        Keys the store holds no event of are passed over. An entity that cannot be derived keeps
        the facts it has, and its stored events are returned in `failed` with the reason. The
        conflicts met are those met when the events were stored: recording them again adds
        nothing (the store keeps each other version once) and completes the record of events
        stored before conflicts were recorded. No change is tracked: a refold changes no call's
        course, only how the agreements judge it, and the live state counts courses.

        Memory forgets the keys afterwards, so a caller going over a whole warehouse in chunks
        holds one chunk at a time; an entity touched again is reloaded, as after its eviction
        (memory holds nothing the store does not: the sink forgets all after a failed write)."""
        result = BatchResult()
        self._reload(call_ids, thread_keys, result.conflicts)
        calls = {k: list(self.calls.events[k].values()) for k in call_ids if k in self.calls.events}
        threads = {k: list(self.threads.events[k].values()) for k in thread_keys if k in self.threads.events}
        self._write((), self._derive(calls, threads, result, track=False), result.conflicts)
        for key in call_ids:
            self.calls.drop(key)
        for key in thread_keys:
            self.threads.drop(key)
        return result

    def _reload(
        self, call_ids: Sequence[str], thread_keys: Sequence[str], conflicts: list[tuple[Event, Event]]
    ) -> None:
        """Hold every event the store has of these calls and threads (however old), and the keys
        of the facts it holds of them. An event stored by an earlier version with a time out of
        range (mail from 1989) is left out: it can never be derived, and would fail every later
        event of its thread."""
        reloaded = self.store.stored_events("call", call_ids)
        for key, known in reloaded.items():
            self.calls.add(key, [ev for ev in known if isinstance(ev, CallEvent) and in_time_range(ev.time)], conflicts)
        if reloaded:  # an entity with no stored event has no stored fact
            self.calls.written.update(self.store.contact_keys(list(reloaded)))
        reloaded = self.store.stored_events("mail", thread_keys)
        for key, known in reloaded.items():
            self.threads.add(
                key, [ev for ev in known if isinstance(ev, MailEvent) and in_time_range(ev.time)], conflicts
            )
        if reloaded:
            self.threads.written.update(self.store.case_keys(list(reloaded)))

    def _derive(
        self,
        calls: dict[str, list[CallEvent]],
        threads: dict[str, list[MailEvent]],
        result: BatchResult,
        *,
        track: bool,
    ) -> _Derived:
        """Fold each call and thread with its new events (memory holds the earlier ones): the facts,
        the rows no longer derived, the intervals touched. Counted in `result`, with the changes
        when `track`; an entity that raises is dropped, its new events `failed`."""
        out = _Derived()
        for key, call_events in calls.items():
            try:
                before = self._call(key) if track else None
                self.calls.add(key, call_events, result.conflicts)
                fact = derive_call(key, self.calls.events[key].values(), self.agreements)
            except Exception as exc:  # a bug or an event the fold cannot take: this call only
                self.calls.drop(key)
                result.failed += [(ev, _not_derived(exc)) for ev in call_events]
                continue
            out.facts.append(fact)
            # A late event can merge what read as two contacts (same-instant events completed by a
            # later batch) or move a contact's first queued time, and with it the row's key: the
            # rows under keys no longer derived are withdrawn. `written` only grows while the call
            # is in memory, so a withdrawal whose write failed is written again.
            stale, held = self.calls.rekey(key, {(c.seq, stored_instant(c.queued_at)) for c in fact.contacts})
            out.stale_contacts += [(key, seq, at) for seq, at in stale]
            out.call_intervals.update(interval_of(at) for _, at in held)
            if track:
                self.calls.derived[key] = fact
                result.call_changes.append((before, fact))

        for key, mail_events in threads.items():
            try:
                before_cases = self._cases(key) if track else []
                self.threads.add(key, mail_events, result.conflicts)
                after = self._derive_thread(key)
            except Exception as exc:
                self.threads.drop(key)
                result.failed += [(ev, _not_derived(exc)) for ev in mail_events]
                continue
            out.cases.extend(after)
            mailbox, _, thread_id = key.partition("/")
            stale, held = self.threads.rekey(key, {(c.seq, stored_instant(c.opened_at)) for c in after})
            out.stale_cases += [(mailbox, thread_id, seq, at) for seq, at in stale]
            out.case_intervals.update(interval_of(at) for _, at in held)
            if track:
                self.threads.derived[key] = after
                result.case_changes.append((before_cases, after))
        result.calls, result.cases = len(out.facts), len(out.cases)
        return out

    def _write(self, events: Sequence[Event], derived: _Derived, conflicts: list[tuple[Event, Event]]) -> None:
        if not self._recorded:
            self.store.record_agreements(self.fingerprint, self.inputs)
            self._recorded = True
        self.store.insert_events(events)
        self.store.upsert_calls(derived.facts, derived_with=self.fingerprint)
        if derived.stale_contacts:
            self.store.drop_contacts(derived.stale_contacts)
        self.store.upsert_cases(derived.cases, derived_with=self.fingerprint)
        if derived.stale_cases:
            self.store.drop_cases(derived.stale_cases)
        if conflicts:
            self.store.record_conflicts(conflicts)
        # After the facts: the aggregates are recomputed from what the store now holds.
        if derived.call_intervals or derived.case_intervals:
            self.store.refresh_intervals(sorted(derived.call_intervals), sorted(derived.case_intervals))

    def _call(self, key: str) -> CallFact | None:
        """The fact as last derived (what memory and the store held before this batch)."""
        if key in self.calls.derived:
            fact: CallFact = self.calls.derived[key]
            return fact
        held = self.calls.events.get(key)
        return derive_call(key, held.values(), self.agreements) if held else None

    def _cases(self, key: str) -> list[MailCase]:
        """The thread's cases as last derived (before this batch)."""
        if key in self.threads.derived:
            cases: list[MailCase] = self.threads.derived[key]
            return cases
        return self._derive_thread(key)

    def _derive_thread(self, key: str) -> list[MailCase]:
        """Fold what memory holds of a thread (`mailbox/thread_id`)."""
        held = self.threads.events.get(key)
        if not held:
            return []
        mailbox_id, _, thread_id = key.partition("/")
        return derive_thread(thread_id, held.values(), self.agreements.mailboxes[mailbox_id])


def _not_derived(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    return f"could not be derived ({detail})"
