"""Applies batches of canonical events to the warehouse: raw events, then re-derived facts.

Shared by the in-process replay (`availability process`) and the stream worker, so both give
the same facts. For each call or mail thread touched by a batch, the pure derivation folds
*all* known events of that entity: those held in memory plus, for an entity not in memory,
those already stored (an earlier run, a restart, an event that arrives after its entity was
evicted). That is what makes the result independent of order, duplicates, restarts and how
events are split across files or batches.

Memory stays flat: entities whose last event is older than the watermark (the latest event
time seen) minus a grace period are evicted; they are reloaded from the warehouse if needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from availability.warehouse import Warehouse
from schemas.agreements import Agreements
from schemas.events import CALL_CLASSES, MAIL_CLASSES, CallEvent, Event, MailEvent, event_key
from stream_jobs.calls import CallFact, derive_call
from stream_jobs.mail import MailCase, derive_thread

# A call's events all lie within this of each other (CallGuide has no day-long calls).
CALL_SPAN = timedelta(days=1)
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

    def add(self, key: str, events: Sequence[E]) -> None:
        held = self.events.setdefault(key, {})
        for ev in events:
            held[(ev.source, ev.id)] = ev
            if key not in self.last or ev.time > self.last[key]:
                self.last[key] = ev.time

    def evict(self, watermark: datetime) -> None:
        horizon = watermark - self.grace
        for key in [k for k, t in self.last.items() if t < horizon]:
            del self.events[key], self.last[key]
            self.derived.pop(key, None)


@dataclass
class BatchResult:
    events: int = 0
    calls: int = 0
    cases: int = 0
    # With track_changes: each touched call's fact before and after this batch, and each
    # touched thread's cases before and after (what the live metrics count transitions of).
    call_changes: list[tuple[CallFact | None, CallFact]] = field(default_factory=list)
    case_changes: list[tuple[list[MailCase], list[MailCase]]] = field(default_factory=list)


class Deriver:
    def __init__(self, warehouse: Warehouse, agreements: Agreements, *, track_changes: bool = False) -> None:
        self.warehouse = warehouse
        self.agreements = agreements
        self.track_changes = track_changes
        self.calls: _Entities[CallEvent] = _Entities(CALL_GRACE)
        self.threads: _Entities[MailEvent] = _Entities(THREAD_GRACE)
        self.watermark: datetime | None = None

    def forget(self) -> None:
        """Drop what memory holds. After a Kafka rebalance another worker may have written
        events of our entities; they are reloaded from the warehouse when touched again."""
        self.calls = _Entities(CALL_GRACE)
        self.threads = _Entities(THREAD_GRACE)

    def apply(self, events: Sequence[Event]) -> BatchResult:
        """Store the batch and upsert the facts of every call and thread it touches."""
        calls: dict[str, list[CallEvent]] = defaultdict(list)
        threads: dict[str, list[MailEvent]] = defaultdict(list)
        for ev in events:
            cls = type(ev)  # a set lookup: isinstance() against a union is slow on hot paths
            if cls in CALL_CLASSES:
                calls[ev.data.call_id].append(ev)  # type: ignore[union-attr,arg-type]
            elif cls in MAIL_CLASSES:
                threads[event_key(ev)].append(ev)  # type: ignore[arg-type]
        if not events:
            return BatchResult()

        # Load what the warehouse already knows of entities not in memory, before this batch
        # is stored (so the lookup finds only earlier events, usually none).
        new_calls = [k for k in calls if k not in self.calls.events]
        if new_calls:
            times = [ev.time for k in new_calls for ev in calls[k]]
            stored = self.warehouse.stored_events("call", new_calls, min(times) - CALL_SPAN, max(times) + CALL_SPAN)
            for key, known in stored.items():
                self.calls.add(key, [ev for ev in known if isinstance(ev, CallEvent)])
        new_threads = [k for k in threads if k not in self.threads.events]
        for key, known in self.warehouse.stored_events("mail", new_threads).items():
            self.threads.add(key, [ev for ev in known if isinstance(ev, MailEvent)])

        self.warehouse.insert_events(events)
        result = BatchResult(events=len(events))
        track = self.track_changes

        facts = []
        for key, call_events in calls.items():
            before = self._call(key) if track else None
            self.calls.add(key, call_events)
            fact = derive_call(key, self.calls.events[key].values(), self.agreements)
            facts.append(fact)
            if track:
                self.calls.derived[key] = fact
                result.call_changes.append((before, fact))
        self.warehouse.upsert_calls(facts)

        cases = []
        for key, mail_events in threads.items():
            before_cases = self._cases(key) if track else []
            self.threads.add(key, mail_events)
            after = self._derive_thread(key)
            cases.extend(after)
            if track:
                self.threads.derived[key] = after
                result.case_changes.append((before_cases, after))
        self.warehouse.upsert_cases(cases)

        latest = max(ev.time for ev in events)
        self.watermark = latest if self.watermark is None else max(self.watermark, latest)
        self.calls.evict(self.watermark)
        self.threads.evict(self.watermark)
        result.calls, result.cases = len(facts), len(cases)
        return result

    def _call(self, key: str) -> CallFact | None:
        """The fact as last derived (what memory and the warehouse held before this batch)."""
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
