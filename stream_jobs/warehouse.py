"""The ClickHouse warehouse through clickhouse-connect: a directory is the embedded engine
(chDB, `chdb://` DSN), an `http(s)://` URL a server. Both run the same SQL.

Thin adapter: it stores events and facts and runs queries; it derives nothing. It is the
store (stream_jobs/core/store.py) of the Deriver, the stream sink and the live state.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec

from schemas.cluster import SCHEMA_MIGRATIONS_DDL, cluster_statements, statements
from schemas.errors import WarehouseError
from schemas.events import (
    CALL_TYPES,
    EVENT_TYPES,
    MAIL_TYPES,
    Event,
    decode,
    encode,
    event_key,
    type_name,
    type_name_of,
)
from stream_jobs.core.calls import CallFact
from stream_jobs.core.mail import MailCase
from stream_jobs.core.ordering import digest
from stream_jobs.core.store import RowKey, as_utc
from stream_jobs.holder import Holder, held_by
from stream_jobs.intervals import refresh_statements

if TYPE_CHECKING:
    from stream_jobs.core.store import Store

log = logging.getLogger(__name__)
DEFAULT_DATABASE = "availability"
# ClickHouse refuses a query longer than max_query_size (256 KiB by default), literals included.
# Key lists travel as literals of at most this many bytes, so a query with one stays well below.
MAX_KEYS_LITERAL_BYTES = 128 * 1024
EVENT_COLUMNS = ["kind", "type", "source", "id", "time", "key", "payload"]
_json = msgspec.json.Encoder()
CONTACT_COLUMNS = [
    "call_id", "seq", "internal", "queue", "first_queued_at", "outcome", "left_at", "queue_open", "wait_seconds",
    "short_abandon", "in_service_level", "levels_met", "agent", "talk_seconds", "transferred_from", "caller_ref",
    "offered_at", "entrance", "ended_at", "events", "derived_with",
]  # fmt: skip
CONFLICT_COLUMNS = ["source", "id", "type", "time", "other_digest", "other"]
POSITION_COLUMNS = ["topic", "partition", "next_offset"]
NO_WAREHOUSE = "holds no warehouse (`availability process`, `stream` or `demo` makes one)"
_CODE = re.compile(r"\bCode: (\d+)")
# ClickHouse's error codes for input it cannot take: CANNOT_PARSE_TEXT (6), CANNOT_PARSE_QUOTED_STRING
# (26), CANNOT_PARSE_INPUT_ASSERTION_FAILED (27), ATTEMPT_TO_READ_AFTER_EOF (32), CANNOT_PARSE_DATE (38),
# CANNOT_PARSE_DATETIME (41), TYPE_MISMATCH (53), SYNTAX_ERROR (62, also "max query size exceeded"),
# ARGUMENT_OUT_OF_BOUND (69), CANNOT_CONVERT_TYPE (70), CANNOT_PARSE_NUMBER (72), INCORRECT_DATA
# (117), TOO_LARGE_STRING_SIZE (131), VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE (321).
_DATA_ERRORS = frozenset({6, 26, 27, 32, 38, 41, 53, 62, 69, 70, 72, 117, 131, 321})
# What the live state restores from (`waiting_calls`, `open_cases`, `agent_states`); {lo} and
# {hi} are epoch ms, both included.
WAITING_SQL = """
SELECT call_id, queue, first_queued_at FROM call_contacts FINAL
WHERE outcome = 'waiting'
  AND first_queued_at >= fromUnixTimestamp64Milli({lo}, 'UTC')
  AND first_queued_at <= fromUnixTimestamp64Milli({hi}, 'UTC')
"""
ARRIVALS_SQL = """
SELECT queue, interval_start, offered + out_of_hours FROM queue_intervals FINAL
WHERE interval_start >= toDateTime({lo}, 'UTC') AND interval_start < toDateTime({hi}, 'UTC')
  AND offered + out_of_hours > 0
"""
OPEN_CASES_SQL = """
SELECT mailbox, thread_id, seq, opened_at, opened_clock, priority, target_seconds, working_day_deadline, messages,
       nullIf(sender_ref, '') AS sender_ref
FROM mail_cases FINAL
WHERE end = ''
  AND opened_at >= fromUnixTimestamp64Milli({lo}, 'UTC') AND opened_at <= fromUnixTimestamp64Milli({hi}, 'UTC')
"""
AGENTS_SQL = """
SELECT key, argMax(payload, (time, id)) FROM events
WHERE kind = 'agent'
  AND time >= fromUnixTimestamp64Milli({lo}, 'UTC') AND time <= fromUnixTimestamp64Milli({hi}, 'UTC')
GROUP BY key
"""
AGENT_EVENTS_SQL = """
SELECT key, payload FROM events
WHERE kind = 'agent'
  AND time >= fromUnixTimestamp64Milli({lo}, 'UTC') AND time < fromUnixTimestamp64Milli({hi}, 'UTC')
ORDER BY time, id
"""
# The keys of the rows held of some calls or threads ({keys}), withdrawn ones too (no FINAL): the
# Deriver recomputes their intervals as well, so a batch done again after a failed write, which
# finds a row already withdrawn, still recomputes the interval it left. A contact's first queued time
# (a case's opening) is the time of one of its entity's stored events, so only the span of those
# events is read of the facts' sort key, in whole UTC days: a version of an event that another
# replaced in `events` (a conflicting duplicate: same source and id, its day in the key) had a
# time on the same day, and a fact derived from it is found too. The span includes events that
# no longer decode. For a few entities (the stream's reloads) that is a few days of facts; for a
# chunk of keys spread over years (`rederive` without a month) it is those years.
CONTACT_KEYS_SQL = """
WITH
    {keys} AS wanted,
    (SELECT (min(toDate(time)), max(toDate(time))) FROM events WHERE kind = 'call' AND key IN wanted) AS span
SELECT DISTINCT call_id, seq, first_queued_at FROM call_contacts
WHERE toDate(first_queued_at) >= span.1 AND toDate(first_queued_at) <= span.2 AND call_id IN wanted
"""
CASE_KEYS_SQL = """
WITH
    {keys} AS wanted,
    (SELECT (min(toDate(time)), max(toDate(time))) FROM events WHERE kind = 'mail' AND key IN wanted) AS span
SELECT DISTINCT concat(mailbox, '/', thread_id) AS entity, seq, opened_at FROM mail_cases
WHERE toDate(opened_at) >= span.1 AND toDate(opened_at) <= span.2 AND entity IN wanted
"""
CASE_COLUMNS = [
    "mailbox", "thread_id", "seq", "opened_at", "opened_clock", "ended_at", "end", "close_reason",
    "lead_seconds", "priority", "target_seconds", "working_day_deadline", "messages", "sender_ref", "derived_with",
]  # fmt: skip


class AggregatesFailed(WarehouseError):
    """A recompute of interval aggregates failed: the store's state, never an event's fault (the
    batch waits and is done again; its intervals stay due)."""


class WarehouseHeld(WarehouseError):
    """Another process holds the embedded warehouse; the message says which and what to use instead."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


def kind_of(type_: str) -> str:
    return "call" if type_ in CALL_TYPES else "mail" if type_ in MAIL_TYPES else "agent"


_KIND_TYPE = {cls: (kind_of(name), name) for cls, name in ((c, type_name_of(c)) for c in EVENT_TYPES)}


def ms(t: datetime) -> int:
    """Epoch milliseconds: how instants are passed to SQL (`fromUnixTimestamp64Milli`)."""
    return round(t.timestamp() * 1000)


class Warehouse:
    """Writes go to one background thread, in order, so ClickHouse parses and stores a batch
    while Python derives the next (the engine releases the GIL). Every read first waits for
    the writes before it, and `flush()` is the point where all writes are acknowledged.

    After a write fails, the writes queued behind it are skipped until `flush()` reports the
    failure, so no fact is stored behind a refused event (the Deriver writes a batch's events
    before the facts derived from them); the caller redoes the batch, whose rows are idempotent.
    Writes are submitted from one thread, the one that flushes."""

    def __init__(self, client: Any, target: str) -> None:
        self.client = client
        self.target = target
        self.directory: Path | None = None  # an embedded warehouse's directory (its engine's path)
        self.cluster: str | None = None  # the ClickHouse cluster the migrator makes the tables on
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-writer")
        self._pending: list[Future[None]] = []
        self._failed = False  # a write since the last flush failed: skip the rest (writer thread)
        # Interval starts whose aggregates are to be recomputed at the next flush, per table.
        self._dirty: dict[str, set[datetime]] = {"queue_intervals": set(), "mailbox_intervals": set()}

    # -- connection -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, target: str, database: str | None = None, *, create: bool = True, cluster: str | None = None
    ) -> Warehouse:
        """Open (creating and migrating if needed) the warehouse at a directory or server URL.
        With `create=False` (a reader such as `report`) a directory or database that holds no
        warehouse is an error, not a new empty one. With `cluster` (a server URL) the migrator
        makes the tables on every server of that ClickHouse cluster (schemas/cluster.py).

        Every error is one line naming the target without its user and password."""
        import clickhouse_connect

        shown = redact(target)
        if cluster is not None and not target.startswith(("http://", "https://")):
            raise WarehouseError(f"--warehouse {shown}: a cluster needs a ClickHouse server URL, not a directory")
        try:
            if target.startswith(("http://", "https://")):
                url = urlsplit(target)
                db = database or url.path.strip("/") or DEFAULT_DATABASE
                with _quiet_driver():
                    client = clickhouse_connect.get_client(dsn=urlunsplit(url._replace(path="")))
            else:
                path = Path(target).expanduser().resolve()
                if path.exists() and not path.is_dir():
                    raise WarehouseError(f"--warehouse {shown}: not a directory")
                if not create and not (path / "metadata").is_dir():  # chDB keeps its catalogue there
                    raise WarehouseError(f"--warehouse {shown}: {NO_WAREHOUSE}")
                holder = held_by(path)
                if holder is not None:
                    raise WarehouseHeld(holder.line(shown), holder)
                _private_directory(path)
                db = database or DEFAULT_DATABASE
                client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            if create:
                for statement in _on(cluster, f"CREATE DATABASE IF NOT EXISTS `{db}`"):
                    client.command(statement)
            elif not client.command(f"EXISTS DATABASE `{db}`"):
                raise WarehouseError(f"--warehouse {shown}: {NO_WAREHOUSE} (no database {db})")
            client.database = db
        except WarehouseError:
            raise
        except Exception as exc:  # driver errors differ by backend; the user needs one line
            raise WarehouseError(f"--warehouse {shown}: {_open_problem(exc, target)}") from None
        warehouse = cls(client, target)
        warehouse.cluster = cluster
        if not target.startswith(("http://", "https://")):
            warehouse.directory = Path(target).expanduser().resolve()
        if create or warehouse.pending_migrations():  # a reader (a read-only user) migrates only if it must
            try:
                warehouse.migrate()
            except Exception as exc:
                if create:
                    raise
                raise WarehouseError(
                    f"--warehouse {shown}: its tables are older than this version and cannot be brought up to date "
                    f"here ({_first_line(exc)}); run `availability stream` or `process` on it once"
                ) from None
        return warehouse

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown()
            self.client.close()

    def flush(self) -> None:
        """Recompute the interval aggregates the writes so far touched, and wait until every write
        is stored; raises the first write's error, if any (the intervals are then recomputed at
        the next flush, after the batch is written again). The points where a run's writes must
        be complete flush: the worker before it commits offsets, the replay at its end, `close`,
        a read of the aggregates."""
        due = {table: set(intervals) for table, intervals in self._dirty.items() if intervals}
        for table, intervals in due.items():
            for sql in refresh_statements(table, intervals):
                self._pending.append(self._writer.submit(self._refresh, sql))
        self._wait()
        for table, intervals in due.items():
            self._dirty[table] -= intervals

    def _before_read(self, sql: str) -> None:
        if any(table in sql for table in self._dirty):
            self.flush()
        else:
            self._wait()

    def _wait(self) -> None:
        """Wait until every write so far is stored; raises the first write's error, if any."""
        pending = self._pending
        wait(pending)  # all done (those behind a failed write return at once); if interrupted, kept
        self._pending, self._failed = [], False
        for future in pending:
            future.result()  # the failed write's future is among them: its error is raised

    def answers(self) -> bool:
        """Whether the warehouse answers a trivial query once its writer is idle: a failed write
        with a warehouse that answers was refused for its data, not for being away."""
        with contextlib.suppress(Exception):
            self._writer.submit(lambda: None).result(timeout=60)
        try:
            self.client.query("SELECT 1")
        except Exception:
            return False
        return True

    @staticmethod
    def refused_for_data(exc: BaseException) -> bool:
        """Whether ClickHouse refused a write for what was in it (a value it cannot parse or
        store), as opposed to its own state (too many parts, memory, a read-only replica, a
        full disk), which passes and must be waited out, never blamed on the data."""
        if isinstance(exc, AggregatesFailed):  # a recompute holds no event: never the data's fault
            return False
        found = _CODE.search(str(exc))
        return found is not None and int(found.group(1)) in _DATA_ERRORS

    def describe(self, exc: BaseException) -> str:
        """A warehouse error as one short line, without the password of a server URL."""
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        for secret in _secrets(self.target):
            text = text.replace(secret, "***")
        return text

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def pending_migrations(self) -> list[str]:
        """The DDL files not yet applied (all of them to a warehouse without the record)."""
        try:
            done = {r[0] for r in self.client.query("SELECT name FROM schema_migrations").result_rows}
        except Exception:
            done = set()
        return [name for name in _ddl_names() if name not in done]

    def migrate(self) -> list[str]:
        """Apply the DDL files in schemas/ddl not yet recorded; returns the names applied."""
        for statement in _on(self.cluster, SCHEMA_MIGRATIONS_DDL):
            self.client.command(statement)
        done = {r[0] for r in self.client.query("SELECT name FROM schema_migrations").result_rows}
        applied = []
        ddl = resources.files("schemas") / "ddl"
        for name in _ddl_names():
            if name in done:
                continue
            for written in ddl_statements((ddl / name).read_text(encoding="utf-8")):
                for statement in _on(self.cluster, written):
                    self.client.command(statement)
            self.client.insert("schema_migrations", [[name]], column_names=["name"])
            applied.append(name)
        return applied

    # -- writes -----------------------------------------------------------------------------

    def insert_events(self, events: Sequence[Event]) -> None:
        cols: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
        kind, typ, source, ids, time, key, payload = cols
        for ev in events:  # the hottest loop of a replay: plain appends, no calls per column
            k, t = _KIND_TYPE[type(ev)]
            kind.append(k)
            typ.append(t)
            source.append(ev.source)
            ids.append(ev.id)
            time.append(ev.time)
            key.append(event_key(ev))
            payload.append(encode(ev).decode())
        self._insert_columns("events", EVENT_COLUMNS, cols)

    def upsert_calls(self, facts: Iterable[CallFact], *, derived_with: str) -> None:
        rows = [row for f in facts for row in _contact_rows(f, derived_with)]
        self._insert_rows("call_contacts", CONTACT_COLUMNS, rows)

    def drop_contacts(self, keys: Iterable[tuple[str, int, datetime]]) -> None:
        """A row marked deleted per (call id, seq, first queued): ReplacingMergeTree(derived_at,
        deleted) leaves the row out of FINAL reads, and a later row of the same key brings it back."""
        rows = [[c, s, at, 1] for c, s, at in keys]
        self._insert_rows("call_contacts", ["call_id", "seq", "first_queued_at", "deleted"], rows)

    def drop_cases(self, keys: Iterable[tuple[str, str, int, datetime]]) -> None:
        """As `drop_contacts`, per (mailbox, thread id, seq, opened)."""
        rows = [[m, t, s, at, 1] for m, t, s, at in keys]
        self._insert_rows("mail_cases", ["mailbox", "thread_id", "seq", "opened_at", "deleted"], rows)

    def refresh_intervals(self, calls: Iterable[datetime], cases: Iterable[datetime]) -> None:
        """Mark these intervals for a recompute of their aggregates (stream_jobs/intervals.py): done
        at the next `flush()`, after the facts written before it, once however many batches
        touched an interval (a replay flushes at its end, the worker after each batch)."""
        self._dirty["queue_intervals"].update(calls)
        self._dirty["mailbox_intervals"].update(cases)

    def record_conflicts(self, conflicts: Iterable[tuple[Event, Event]]) -> None:
        rows = [
            [other.source, other.id, type_name(kept), kept.time, digest(other), encode(other).decode()]
            for kept, other in conflicts
        ]
        self._insert_rows("event_conflicts", CONFLICT_COLUMNS, rows)

    def upsert_cases(self, cases: Iterable[MailCase], *, derived_with: str) -> None:
        self._insert_rows("mail_cases", CASE_COLUMNS, [_case_row(c, derived_with) for c in cases])

    def record_agreements(self, fingerprint: str, inputs: dict[str, Any]) -> None:
        self._insert_rows("agreements_seen", ["fingerprint", "inputs"], [[fingerprint, _json.encode(inputs).decode()]])

    def agreements_inputs(self, fingerprints: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The derivation inputs recorded under each fingerprint (those never recorded are left out)."""
        wanted = sorted(set(fingerprints))
        if not wanted:
            return {}
        rows = self.query(
            "SELECT fingerprint, any(inputs) FROM agreements_seen WHERE fingerprint IN {f:Array(String)} "
            "GROUP BY fingerprint",
            {"f": wanted},
        )
        return {f: msgspec.json.decode(text) for f, text in rows}

    def source_health(
        self,
    ) -> list[tuple[str, int, datetime | None, datetime | None, list[tuple[str, int, datetime]]]]:
        """Per source: distinct events stored, the newest event's time, when it last stored one, and
        its rejected inputs by reason with the last time (source_rejects); sources known only by
        their rejects too."""
        stored = {
            source: (events, newest, last)
            for source, events, newest, last in self.query(
                "SELECT source, uniqExact(id), max(time), max(ingested_at) FROM events GROUP BY source"
            )
        }
        rejects: dict[str, list[tuple[str, int, datetime]]] = {}
        for source, reason, n, last in self.query(
            "SELECT source, reason, count(), max(rejected_at) FROM source_rejects FINAL GROUP BY source, reason "
            "ORDER BY source, reason"
        ):
            rejects.setdefault(source, []).append((reason, n, last))
        return [
            (source, *stored.get(source, (0, None, None)), rejects.get(source, []))
            for source in sorted(set(stored) | set(rejects))
        ]

    def record_rejects(self, rejects: Iterable[tuple[str, str, str]]) -> None:
        """(source, origin, reason) of rejected inputs (schemas/ddl/008_source_rejects.sql)."""
        self._insert_rows("source_rejects", ["source", "origin", "reason"], [list(r) for r in rejects])

    def record_positions(self, positions: Iterable[tuple[str, int, int]]) -> None:
        """(topic, partition, next offset) whose messages the warehouse now holds
        (schemas/ddl/005_stream_positions.sql), written in order with the batch's rows."""
        self._insert_rows("stream_positions", POSITION_COLUMNS, [list(p) for p in positions])

    def _insert_rows(self, table: str, names: list[str], rows: list[list[Any]]) -> None:
        self._insert_columns(table, names, [list(col) for col in zip(*rows, strict=True)] if rows else [])

    def _insert_columns(self, table: str, names: list[str], columns: list[list[Any]]) -> None:
        """One JSONCompactColumns block, encoded by msgspec and parsed by ClickHouse: several
        times faster than row-by-row conversion in Python. Instants travel as RFC 3339 text
        with their offset, which `best_effort` parsing turns into the right UTC instant."""
        if columns and columns[0]:
            block = _json.encode(columns)
            self._pending.append(self._writer.submit(self._write, table, names, block))

    def _refresh(self, sql: str) -> None:
        """A recompute of interval aggregates, on the writer thread, in order (as `_write`)."""
        if self._failed:
            return
        try:
            self.client.command(sql)
        except Exception as exc:
            self._failed = True
            raise AggregatesFailed(f"recomputing the interval aggregates failed: {exc}") from exc
        except BaseException:
            self._failed = True
            raise

    def _write(self, table: str, names: list[str], block: bytes) -> None:
        """On the writer thread, in order."""
        if self._failed:
            return  # the batch is redone whole after flush() reported the failure
        try:
            self.client.raw_insert(
                table,
                names,
                insert_block=block,
                fmt="JSONCompactColumns",
                settings={"date_time_input_format": "best_effort"},
            )
        except BaseException:
            self._failed = True
            raise

    # -- reads ------------------------------------------------------------------------------

    def stored_events(self, kind: str, keys: Iterable[str]) -> dict[str, list[Event]]:
        """Every stored event of these keys, however old, decoded (in chunks: `_rows_by_keys`)."""
        out: dict[str, list[Event]] = defaultdict(list)
        sql = f"SELECT key, payload FROM events WHERE kind = {_sql_string(kind.encode())} AND key IN {{keys}}"
        for key, payload in self._rows_by_keys(sql, keys):
            try:
                out[key].append(decode(payload))
            except Exception as exc:  # stored by an older version under a looser contract
                log.warning("a stored %s event of %s no longer decodes and is left out (%s)", kind, key, exc)
        return out

    def contact_keys(self, call_ids: Iterable[str]) -> dict[str, set[RowKey]]:
        """The (seq, first queued) of each call's contacts (CONTACT_KEYS_SQL)."""
        return self._row_keys(CONTACT_KEYS_SQL, call_ids)

    def case_keys(self, thread_keys: Iterable[str]) -> dict[str, set[RowKey]]:
        """The (seq, opened) of each thread's cases (`mailbox/thread_id`; CASE_KEYS_SQL)."""
        return self._row_keys(CASE_KEYS_SQL, thread_keys)

    def _row_keys(self, sql: str, keys: Iterable[str]) -> dict[str, set[RowKey]]:
        out: dict[str, set[RowKey]] = {}
        for key, seq, at in self._rows_by_keys(sql, keys):
            out.setdefault(str(key), set()).add((int(seq), as_utc(at)))
        return out

    def _rows_by_keys(self, sql: str, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """The rows of `sql` for all the keys, its `{keys}` standing for them as Array(String).

        The keys travel as a JSON string literal, with no driver-side binding: binding thousands
        of strings costs more in the driver than the query in ClickHouse, and a key could hold a
        brace that binding would mistake for a placeholder. However many and long they are, they
        go in chunks of at most MAX_KEYS_LITERAL_BYTES, so no query exceeds max_query_size."""
        keys = list(keys)
        if not keys:
            return
        self._wait()  # the Deriver's reads need the events and facts written, not the aggregates
        for literal in key_literals(keys, MAX_KEYS_LITERAL_BYTES):
            query = sql.replace("{keys}", f"JSONExtract({literal}, 'Array(String)')")
            yield from self.client.query(query).result_rows

    def waiting_calls(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        """(call id, queue, first queued) of the calls still waiting, first queued in the window."""
        rows = self.query(WAITING_SQL.format(lo=ms(since), hi=ms(until)))
        return [(str(call_id), str(queue), as_utc(at)) for call_id, queue, at in rows]

    def open_cases(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The open cases opened in the window, as OPEN_CASE_FIELDS (stream_jobs/core/store.py) -> value."""
        rows = self.records(OPEN_CASES_SQL.format(lo=ms(since), hi=ms(until)))
        return [row | {"opened_at": as_utc(row["opened_at"])} for row in rows]

    def arrivals(self, since: datetime, until: datetime) -> list[tuple[str, datetime, int]]:
        """(queue, interval start, ordinary contacts first queued) of the intervals in [since, until)."""
        lo, hi = math.ceil(since.timestamp()), math.ceil(until.timestamp())
        rows = self.query(ARRIVALS_SQL.format(lo=lo, hi=hi))
        return [(str(queue), as_utc(at), int(n)) for queue, at, n in rows]

    def agent_states(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(agent, JSON payload) of each agent's latest state event (by time, then id) in the window."""
        rows = self.query(AGENTS_SQL.format(lo=ms(since), hi=ms(until)))
        return [(str(agent), str(payload)) for agent, payload in rows]

    def agent_events(self, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(agent, JSON payload) of every agent state event in [since, until), by time, then id
        (a copy not yet merged away may come twice: the live state takes an event once)."""
        rows = self.query(AGENT_EVENTS_SQL.format(lo=ms(since), hi=ms(until)))
        return [(str(agent), str(payload)) for agent, payload in rows]

    # -- loads: a `process` run marks its start and its end, so a report can tell a partial one ---

    def start_load(self, files: Sequence[str], command: str = "process") -> str:
        """Record that a load of these files starts now; returns its id for `finish_load`."""
        load_id = uuid.uuid4().hex
        self.flush()
        self.client.insert(
            "loads",
            [[load_id, datetime.now(UTC), list(files), command, 0]],
            column_names=["load_id", "started_at", "files", "command", "finished"],
        )
        return load_id

    def finish_load(self, load_id: str) -> None:
        """Record that the load stored everything (call after the last write is acknowledged)."""
        self.flush()
        started = self.query(
            "SELECT started_at, files, command FROM loads FINAL WHERE load_id = {id:String}", {"id": load_id}
        )
        if not started:
            return
        at, files, command = started[0]
        self.client.insert(
            "loads",
            [[load_id, at, files, command, 1, datetime.now(UTC)]],
            column_names=["load_id", "started_at", "files", "command", "finished", "finished_at"],
        )

    def incomplete_loads(self) -> list[dict[str, Any]]:
        """Loads that started and never finished, oldest first, except those whose files a later
        load went over completely: [{"started_at": datetime, "files": [...]}]."""
        rows = self.query("SELECT started_at, files, finished FROM loads FINAL ORDER BY started_at")
        out = []
        for i, (at, files, finished) in enumerate(rows):
            if finished:
                continue
            redone = any(done and later >= at and set(files) <= set(again) for later, again, done in rows[i + 1 :])
            if not redone:
                out.append({"started_at": as_utc(at), "files": list(files)})
        return out

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of a query that sees every write so far (and, when it reads the interval
        aggregates, their recomputes: `flush`; a read of the facts waits for the writes only)."""
        self._before_read(sql)
        return list(self.client.query(sql, parameters=parameters or {}).result_rows)

    def records(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as column name -> value (as `query`)."""
        self._before_read(sql)
        result = self.client.query(sql, parameters=parameters or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


if TYPE_CHECKING:

    def _a_store(warehouse: Warehouse) -> Store:  # mypy checks that the warehouse keeps the store protocol
        return warehouse


def key_literals(keys: Sequence[str], limit: int) -> Iterator[str]:
    """The keys as ClickHouse string literals holding a JSON array, each at most `limit` bytes
    (a single key longer than that goes alone)."""
    chunk: list[str] = []
    size = 4  # the quotes of the literal and the brackets of the array
    for key in keys:
        # The key's bytes in the literal: JSON-encoded, then quotes and backslashes escaped.
        encoded = _json.encode(key)
        n = len(encoded) + encoded.count(b"\\") + encoded.count(b"'") + 1
        if chunk and size + n > limit:
            yield _sql_string(_json.encode(chunk))
            chunk, size = [], 4
        chunk.append(key)
        size += n
    if chunk:
        yield _sql_string(_json.encode(chunk))


def _contact_rows(f: CallFact, derived_with: str) -> list[list[Any]]:
    return [
        [
            f.call_id, c.seq, c.internal, c.queue, c.queued_at, c.outcome, c.left_at, c.queue_open, c.wait_seconds,
            c.short_abandon, c.in_service_level, list(c.levels_met), c.agent or "", f.talk_seconds(c),
            list(c.transferred_from), f.caller_ref or "", f.offered_at, f.entrance or "", f.ended_at, f.events,
            derived_with,
        ]
        for c in f.contacts
    ]  # fmt: skip


def _case_row(c: MailCase, derived_with: str) -> list[Any]:
    return [
        c.mailbox, c.thread_id, c.seq, c.opened_at, c.opened_clock, c.ended_at, c.end,
        c.close_reason, c.lead_seconds, c.priority, c.target_seconds, c.working_day_deadline, c.messages,
        c.sender_ref or "", derived_with,
    ]  # fmt: skip


def _sql_string(text: bytes) -> str:
    """A ClickHouse string literal for text without raw control characters (JSON, ids)."""
    return "'" + text.decode().replace("\\", "\\\\").replace("'", "\\'") + "'"


def _on(cluster: str | None, statement: str) -> list[str]:
    """A DDL statement as written for one server, or what does the same on every server of a cluster."""
    return [statement] if cluster is None else cluster_statements(statement, cluster)


def _ddl_names() -> list[str]:
    return sorted(f.name for f in (resources.files("schemas") / "ddl").iterdir() if f.name.endswith(".sql"))


def ddl_statements(sql: str) -> list[str]:
    """The statements of a DDL file, without its comments (the cluster transform reads them alike)."""
    return statements(sql)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the target in messages, and what went wrong opening it ---------------------------------------


def redact(target: str) -> str:
    """The target as it may be shown: a URL without its user and password."""
    if not target.startswith(("http://", "https://")):
        return target
    url = urlsplit(target)
    if "@" not in url.netloc:
        return target
    return urlunsplit(url._replace(netloc="***@" + url.netloc.rpartition("@")[2]))


def _secrets(target: str) -> list[str]:
    """The password of a URL target as it may appear in a driver's message (as written and
    percent-decoded), longest first."""
    if not target.startswith(("http://", "https://")):
        return []
    password = urlsplit(target).password
    return sorted({s for s in (password, unquote(password or "")) if s}, key=len, reverse=True)


def _open_problem(exc: BaseException, target: str) -> str:
    """What went wrong opening the target, as a short phrase without secrets."""
    cause = _os_error(exc)
    if cause is not None and target.startswith(("http://", "https://")):
        reason = cause.strerror or (str(cause.args[-1]) if cause.args else type(cause).__name__)
        if isinstance(cause, TimeoutError) and not cause.strerror:
            reason = "timed out"
        text = f"cannot connect ({reason})"
    else:
        text = f"cannot open ({_first_line(exc)})"
    for secret in _secrets(target):
        text = text.replace(secret, "***")
    return text.replace(target, redact(target))


def _os_error(exc: BaseException) -> OSError | None:
    """The operating system's error at the root of a driver exception (refused, unknown host)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e).__module__ in ("builtins", "socket") and isinstance(e, OSError):
            return e
        reason = getattr(e, "reason", None)
        todo += [e.__cause__, e.__context__, reason if isinstance(reason, BaseException) else None]
    return None


@contextmanager
def _quiet_driver() -> Iterator[None]:
    """clickhouse-connect logs "Unexpected Http Driver Exception" on stderr before it raises;
    the error it raises becomes our one line, so the log line is noise while connecting."""
    logger = logging.getLogger("clickhouse_connect")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- the embedded engine --------------------------------------------------------------------------


def _private_directory(path: Path) -> None:
    """The warehouse holds personal data (pseudonymised, but linkable): owner-only, 0700.

    A new directory is made so; an existing one is tightened only if it is empty or already a
    warehouse (an earlier version made them world-readable), never a directory of other files."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
        return
    entries = {p.name for p in path.iterdir()}
    ours = not entries or {"metadata", "store"} & entries
    if ours and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
