"""What the Deriver, the stream sink and the live state need of a store, and one in memory.

The ClickHouse warehouse (stream_jobs/warehouse.py) is the store of every run; `MemoryStore`
holds the same tables in dicts, with what the Deriver reads back behaving as the warehouse's
(`stored_events` returns every event stored of a key; a call's contacts and a thread's cases
are replaced by their key, as ReplacingMergeTree reads with FINAL), so the core is tested without any server.

Instants a store returns are timezone-aware UTC. A read's window `since`..`until` includes
both ends.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from schemas.events import CALL_CLASSES, MAIL_CLASSES, Event, encode, event_key
from stream_jobs.core.calls import WAITING, CallFact, Contact
from stream_jobs.core.mail import OPEN, MailCase
from stream_jobs.core.ordering import conflict_key

# The columns of an open case as `Store.open_cases` returns them: what `MailCase` needs besides
# its end (an open case has none).
OPEN_CASE_FIELDS = (
    "mailbox", "thread_id", "seq", "opened_at", "opened_clock", "priority", "target_seconds", "working_day_deadline",
    "messages", "sender_ref",
)  # fmt: skip


# A fact's row key within its entity: (seq, the instant that fixes its period), the instant as
# the warehouse stores it (DateTime64(3): whole milliseconds, truncated).
RowKey = tuple[int, datetime]
INTERVAL = timedelta(minutes=15)  # the interval aggregates' width


def stored_instant(t: datetime) -> datetime:
    """The instant as a DateTime64(3) column holds it: UTC, truncated to the millisecond."""
    t = as_utc(t)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def interval_of(t: datetime) -> datetime:
    """The start of the 15-minute interval (UTC) holding the instant."""
    t = as_utc(t)
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


class Store(Protocol):
    # -- what the Deriver writes and reads back ----------------------------------------------

    def stored_events(self, kind: str, keys: Iterable[str]) -> dict[str, list[Event]]:
        """Every stored event of these keys (`call`: call ids, `mail`: `mailbox/thread_id`),
        however old; an event that no longer decodes is left out."""
        ...

    def insert_events(self, events: Sequence[Event]) -> None: ...

    def upsert_calls(self, facts: Iterable[CallFact], *, derived_with: str) -> None:
        """Store the facts' contacts, each replacing the one stored of its (first queued, call,
        seq), marked as derived with the agreements of fingerprint `derived_with`
        (`record_agreements`)."""
        ...

    def contact_keys(self, call_ids: Iterable[str]) -> dict[str, set[RowKey]]:
        """The (seq, first queued) under which the store holds or held each call's contacts,
        withdrawn ones too (a call without any is left out): the Deriver recomputes the intervals
        of all of them, so a batch done again after a failed write recomputes an interval a row
        already withdrawn left."""
        ...

    def drop_contacts(self, keys: Iterable[tuple[str, int, datetime]]) -> None:
        """Withdraw the rows (call id, seq, first queued) a call no longer has: a late event can
        merge two contacts into one, or move a contact's first queued time (and so its row)."""
        ...

    def upsert_cases(self, cases: Iterable[MailCase], *, derived_with: str) -> None:
        """Store the cases, each replacing the one stored of its (opened, mailbox, thread, seq),
        marked as for `upsert_calls`."""
        ...

    def case_keys(self, thread_keys: Iterable[str]) -> dict[str, set[RowKey]]:
        """The (seq, opened) under which the store holds each thread's cases (`mailbox/thread_id`)."""
        ...

    def drop_cases(self, keys: Iterable[tuple[str, str, int, datetime]]) -> None:
        """Withdraw the rows (mailbox, thread id, seq, opened) a thread no longer has."""
        ...

    def refresh_intervals(self, calls: Iterable[datetime], cases: Iterable[datetime]) -> None:
        """Recompute the interval aggregates of these 15-minute intervals (their starts, UTC)
        from the facts stored so far: of contacts first queued, and of cases opened, in them."""
        ...

    def record_agreements(self, fingerprint: str, inputs: dict[str, Any]) -> None:
        """Keep the derivation inputs (schemas/agreements.py) that facts are marked with."""
        ...

    def record_conflicts(self, conflicts: Iterable[tuple[Event, Event]]) -> None:
        """Record conflicting duplicates (kept, other): each distinct other version once, however
        often it is met again (a redelivery, a restart, a reload)."""
        ...

    def record_rejects(self, rejects: Iterable[tuple[str, str, str]]) -> None:
        """(source, origin, reason) of rejected inputs, for source health: each origin (a file's
        line, a topic's offset) once, however often it is rejected again."""
        ...

    # -- what the stream sink adds --------------------------------------------------------------

    def record_positions(self, positions: Iterable[tuple[str, int, int]]) -> None:
        """(topic, partition, next offset) whose messages the store now holds."""
        ...

    def flush(self) -> None:
        """Return once every write so far is stored; raises the first write's error, if any."""
        ...

    def answers(self) -> bool:
        """Whether the store answers at all (a failed write with a store that answers was
        refused for its data or the store's own state, not for being away)."""
        ...

    def refused_for_data(self, exc: BaseException) -> bool:
        """Whether a write failed for what was in it (then the event is to blame), as opposed to
        the store's own state (then the batch must wait)."""
        ...

    def describe(self, exc: BaseException) -> str:
        """A store's error as one short line, without secrets."""
        ...

    # -- what the live state restores from (LiveState.restore) --------------------------------

    def waiting_calls(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        """(call id, queue, first queued) of the contacts still waiting, first queued in the window."""
        ...

    def open_cases(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The open cases opened in the window, as OPEN_CASE_FIELDS -> value (sender_ref None
        when there is none)."""
        ...

    def arrivals(self, since: datetime, until: datetime) -> list[tuple[str, datetime, int]]:
        """(queue, 15-minute interval start, ordinary contacts first queued in it, open or not)
        for the intervals starting in [since, until): the outlook's earlier weeks."""
        ...

    def agent_states(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(agent, JSON payload) of each agent's latest state event (by time, then id) in the window."""
        ...

    def agent_events(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(agent, JSON payload) of every agent state event in [since, until), by time, then id."""
        ...


class RefusedData(ValueError):
    """A write `MemoryStore` refuses for what is in it (tests make one refuse)."""


def _kind(ev: Event) -> str:
    cls = type(ev)
    return "call" if cls in CALL_CLASSES else "mail" if cls in MAIL_CLASSES else "agent"


def as_utc(t: datetime) -> datetime:
    """An instant as aware UTC (a naive one, as ClickHouse returns them, is UTC already)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class MemoryStore:
    """The warehouse's tables in dicts, for tests: each write is stored at once (`flush` has
    nothing to wait for) and the store always answers."""

    def __init__(self) -> None:
        # (kind, key) -> (source, id, UTC day) -> event: the events table's sorting key, under
        # which a repeat replaces the row stored before.
        self.events: dict[tuple[str, str], dict[tuple[str, str, date], Event]] = defaultdict(dict)
        self.calls: dict[str, CallFact] = {}
        # The rows of call_contacts and mail_cases under the warehouse's keys, (first queued, call
        # id, seq) and (opened, mailbox, thread id, seq): a row written under another key than
        # the one stored is a second row, as in the warehouse (`contacts`, `cases` say so).
        self.contact_rows: dict[tuple[datetime, str, int], Contact] = {}
        self.case_rows: dict[tuple[datetime, str, str, int], MailCase] = {}
        self.conflicts: set[tuple[str, str, str]] = set()  # (source, id, digest of the other version)
        self.intervals: set[datetime] = set()  # every interval start refreshed (calls and cases)
        self.withdrawn: set[tuple[Any, ...]] = set()  # the keys of the rows withdrawn, as the warehouse keeps them
        self.positions: dict[tuple[str, int], int] = {}  # the highest next offset per partition
        self.rejects: dict[tuple[str, str], str] = {}  # (source, origin) -> reason
        self.derived_with: dict[str, str] = {}  # call id or `mailbox/thread` -> agreements fingerprint
        self.agreements: dict[str, dict[str, Any]] = {}  # fingerprint -> derivation inputs
        self.flushes = 0

    def stored_events(self, kind: str, keys: Iterable[str]) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = {}
        for key in keys:
            held = self.events.get((kind, key))
            if held:
                out[key] = list(held.values())
        return out

    def insert_events(self, events: Sequence[Event]) -> None:
        for ev in events:
            self.events[(_kind(ev), event_key(ev))][(ev.source, ev.id, as_utc(ev.time).date())] = ev

    @property
    def contacts(self) -> dict[tuple[str, int], Contact]:
        """The contacts a FINAL read gives, by (call id, seq); two rows of one contact (a key
        moved without the old row withdrawn) are a bug, and fail here."""
        return _live({(call_id, seq): c for (_, call_id, seq), c in self.contact_rows.items()}, self.contact_rows)

    @property
    def cases(self) -> dict[tuple[str, str, int], MailCase]:
        """The cases a FINAL read gives, by (mailbox, thread id, seq), as `contacts`."""
        return _live({(m, t, seq): c for (_, m, t, seq), c in self.case_rows.items()}, self.case_rows)

    def upsert_calls(self, facts: Iterable[CallFact], *, derived_with: str) -> None:
        for fact in facts:
            self.calls[fact.call_id] = fact
            self.derived_with[fact.call_id] = derived_with
            for c in fact.contacts:
                self.contact_rows[(stored_instant(c.queued_at), fact.call_id, c.seq)] = c

    def contact_keys(self, call_ids: Iterable[str]) -> dict[str, set[RowKey]]:
        wanted = set(call_ids)
        keys: dict[str, set[RowKey]] = {}
        for at, call_id, seq in [*self.contact_rows, *(k[1:] for k in self.withdrawn if k[0] == "call")]:
            if call_id in wanted:
                keys.setdefault(call_id, set()).add((seq, at))
        return keys

    def drop_contacts(self, keys: Iterable[tuple[str, int, datetime]]) -> None:
        for call_id, seq, at in keys:
            self.contact_rows.pop((at, call_id, seq), None)
            self.withdrawn.add(("call", at, call_id, seq))

    def upsert_cases(self, cases: Iterable[MailCase], *, derived_with: str) -> None:
        for case in cases:
            self.case_rows[(stored_instant(case.opened_at), case.mailbox, case.thread_id, case.seq)] = case
            self.derived_with[f"{case.mailbox}/{case.thread_id}"] = derived_with

    def case_keys(self, thread_keys: Iterable[str]) -> dict[str, set[RowKey]]:
        wanted = set(thread_keys)
        keys: dict[str, set[RowKey]] = {}
        for at, mailbox, thread_id, seq in [*self.case_rows, *(k[1:] for k in self.withdrawn if k[0] == "mail")]:
            key = f"{mailbox}/{thread_id}"
            if key in wanted:
                keys.setdefault(key, set()).add((seq, at))
        return keys

    def drop_cases(self, keys: Iterable[tuple[str, str, int, datetime]]) -> None:
        for mailbox, thread_id, seq, at in keys:
            self.case_rows.pop((at, mailbox, thread_id, seq), None)
            self.withdrawn.add(("mail", at, mailbox, thread_id, seq))

    def refresh_intervals(self, calls: Iterable[datetime], cases: Iterable[datetime]) -> None:
        self.intervals.update(calls)
        self.intervals.update(cases)

    def record_agreements(self, fingerprint: str, inputs: dict[str, Any]) -> None:
        self.agreements[fingerprint] = inputs

    def record_conflicts(self, conflicts: Iterable[tuple[Event, Event]]) -> None:
        self.conflicts.update(conflict_key(other) for _, other in conflicts)

    def record_rejects(self, rejects: Iterable[tuple[str, str, str]]) -> None:
        self.rejects.update(((source, origin), reason) for source, origin, reason in rejects)

    def record_positions(self, positions: Iterable[tuple[str, int, int]]) -> None:
        for topic, partition, next_offset in positions:
            tp = (topic, partition)
            self.positions[tp] = max(next_offset, self.positions.get(tp, next_offset))

    def flush(self) -> None:
        self.flushes += 1

    def answers(self) -> bool:
        return True

    def refused_for_data(self, exc: BaseException) -> bool:
        return isinstance(exc, RefusedData)

    def describe(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"

    def waiting_calls(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        return [
            (call_id, c.queue, as_utc(c.queued_at))
            for (call_id, _), c in self.contacts.items()
            if c.outcome == WAITING and since <= c.queued_at <= until
        ]

    def open_cases(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [
            {name: getattr(c, name) for name in OPEN_CASE_FIELDS}
            | {"opened_at": as_utc(c.opened_at), "sender_ref": c.sender_ref or None}
            for c in self.cases.values()
            if c.end == OPEN and since <= c.opened_at <= until
        ]

    def arrivals(self, since: datetime, until: datetime) -> list[tuple[str, datetime, int]]:
        counts = Counter((c.queue, interval_of(c.queued_at)) for c in self.contacts.values() if not c.internal)
        return [(q, at, n) for (q, at), n in counts.items() if since <= at < until]

    def agent_states(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        latest: dict[str, Event] = {}
        for (kind, agent), held in self.events.items():
            for ev in held.values():
                if kind == "agent" and since <= ev.time <= until:
                    best = latest.get(agent)
                    if best is None or (ev.time, ev.id) > (best.time, best.id):
                        latest[agent] = ev
        return [(agent, encode(ev).decode()) for agent, ev in latest.items()]

    def agent_events(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        held = [
            (ev.time, ev.id, agent, ev)
            for (kind, agent), events in self.events.items()
            if kind == "agent"
            for ev in events.values()
            if since <= ev.time < until
        ]
        return [(agent, encode(ev).decode()) for _, _, agent, ev in sorted(held, key=lambda row: row[:2])]


K = TypeVar("K")
V = TypeVar("V")


def _live(by_entity: dict[K, V], rows: dict[Any, V]) -> dict[K, V]:
    if len(by_entity) != len(rows):
        raise AssertionError(f"{len(rows) - len(by_entity)} row(s) stored under a second key (one not withdrawn)")
    return by_entity


if TYPE_CHECKING:
    _checked: Store = MemoryStore()  # mypy checks that the memory store keeps the protocol
