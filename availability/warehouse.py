"""The ClickHouse warehouse through clickhouse-connect: a directory is the embedded engine
(chDB, `chdb://` DSN), an `http(s)://` URL a server. Both run the same SQL.

Thin adapter: it stores events and facts and runs queries; it derives nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from availability.errors import WarehouseError
from schemas.events import CALL_TYPES, EVENT_TYPES, MAIL_TYPES, Event, decode, encode, event_key, type_name_of
from stream_jobs.calls import CallFact
from stream_jobs.mail import MailCase

DEFAULT_DATABASE = "availability"
EVENT_COLUMNS = ["kind", "type", "source", "id", "time", "key", "payload"]
_json = msgspec.json.Encoder()
CALL_COLUMNS = [
    "call_id", "offered_at", "entrance", "caller_ref", "queue", "first_queued_at", "outcome", "queue_open",
    "wait_seconds", "short_abandon", "in_service_level", "agent", "talk_seconds", "transferred_from", "ended_at",
    "internal_queue", "internal_queued_at", "internal_outcome", "internal_wait", "events",
]  # fmt: skip
CASE_COLUMNS = [
    "mailbox", "thread_id", "seq", "opened_at", "opened_clock", "ended_at", "end", "close_reason",
    "lead_seconds", "priority", "target_seconds", "messages", "sender_ref",
]  # fmt: skip


def kind_of(type_: str) -> str:
    return "call" if type_ in CALL_TYPES else "mail" if type_ in MAIL_TYPES else "agent"


_KIND_TYPE = {cls: (kind_of(name), name) for cls, name in ((c, type_name_of(c)) for c in EVENT_TYPES)}


def ms(t: datetime) -> int:
    """Epoch milliseconds: how instants are passed to SQL (`fromUnixTimestamp64Milli`)."""
    return round(t.timestamp() * 1000)


class Warehouse:
    """Writes go to one background thread, in order, so ClickHouse parses and stores a batch
    while Python derives the next (the engine releases the GIL). Every read first waits for
    the writes before it, and `flush()` is the point where all writes are acknowledged."""

    def __init__(self, client: Any, target: str) -> None:
        self.client = client
        self.target = target
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-writer")
        self._pending: list[Future[None]] = []

    # -- connection -------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str, database: str | None = None) -> Warehouse:
        """Open (creating and migrating if needed) the warehouse at a directory or server URL."""
        import clickhouse_connect

        try:
            if target.startswith(("http://", "https://")):
                url = urlsplit(target)
                db = database or url.path.strip("/") or DEFAULT_DATABASE
                client = clickhouse_connect.get_client(dsn=urlunsplit(url._replace(path="")))
            else:
                path = Path(target).expanduser().resolve()
                if path.exists() and not path.is_dir():
                    raise WarehouseError(f"--warehouse {target}: not a directory")
                path.mkdir(parents=True, exist_ok=True)
                db = database or DEFAULT_DATABASE
                client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            client.database = db
        except WarehouseError:
            raise
        except Exception as exc:  # driver errors differ by backend; the user needs one line
            raise WarehouseError(f"--warehouse {target}: cannot open ({_first_line(exc)})") from None
        warehouse = cls(client, target)
        warehouse.migrate()
        return warehouse

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown()
            self.client.close()

    def flush(self) -> None:
        """Wait until every write so far is stored; raises the first write's error, if any."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def migrate(self) -> list[str]:
        """Apply the DDL files in schemas/ddl not yet recorded; returns the names applied."""
        self.client.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime DEFAULT now())"
            " ENGINE = MergeTree ORDER BY name"
        )
        done = {r[0] for r in self.client.query("SELECT name FROM schema_migrations").result_rows}
        applied = []
        ddl = resources.files("schemas") / "ddl"
        for name in sorted(f.name for f in ddl.iterdir() if f.name.endswith(".sql")):
            if name in done:
                continue
            for statement in _statements((ddl / name).read_text(encoding="utf-8")):
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

    def upsert_calls(self, facts: Iterable[CallFact]) -> None:
        self._insert_rows("call_facts", CALL_COLUMNS, [_call_row(f) for f in facts])

    def upsert_cases(self, cases: Iterable[MailCase]) -> None:
        self._insert_rows("mail_cases", CASE_COLUMNS, [_case_row(c) for c in cases])

    def _insert_rows(self, table: str, names: list[str], rows: list[list[Any]]) -> None:
        self._insert_columns(table, names, [list(col) for col in zip(*rows, strict=True)] if rows else [])

    def _insert_columns(self, table: str, names: list[str], columns: list[list[Any]]) -> None:
        """One JSONCompactColumns block, encoded by msgspec and parsed by ClickHouse: several
        times faster than row-by-row conversion in Python. Instants travel as RFC 3339 text
        with their offset, which `best_effort` parsing turns into the right UTC instant."""
        if columns and columns[0]:
            block = _json.encode(columns)
            self._pending.append(
                self._writer.submit(
                    self.client.raw_insert,
                    table,
                    names,
                    insert_block=block,
                    fmt="JSONCompactColumns",
                    settings={"date_time_input_format": "best_effort"},
                )
            )

    # -- reads ------------------------------------------------------------------------------

    def stored_events(
        self, kind: str, keys: Iterable[str], since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[Event]]:
        """The stored events of these keys (optionally within a time window), decoded."""
        keys = list(keys)
        out: dict[str, list[Event]] = defaultdict(list)
        if not keys:
            return out
        # The keys travel as one JSON string literal, with no driver-side binding: binding
        # thousands of strings costs more in the driver than the query in ClickHouse, and a
        # key could hold a brace that binding would mistake for a placeholder.
        where = (
            f"kind = {_sql_string(kind.encode())}"
            f" AND key IN JSONExtract({_sql_string(_json.encode(keys))}, 'Array(String)')"
        )
        if since is not None and until is not None:
            where += (
                f" AND time >= fromUnixTimestamp64Milli({ms(since)}, 'UTC')"
                f" AND time <= fromUnixTimestamp64Milli({ms(until)}, 'UTC')"
            )
        self.flush()
        result = self.client.query(f"SELECT key, payload FROM events WHERE {where}")
        for key, payload in result.result_rows:
            out[key].append(decode(payload))
        return out

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.flush()
        return list(self.client.query(sql, parameters=parameters or {}).result_rows)

    def records(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as column name -> value."""
        self.flush()
        result = self.client.query(sql, parameters=parameters or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _call_row(f: CallFact) -> list[Any]:
    c = f.contact
    return [
        f.call_id, f.offered_at, f.entrance or "", f.caller_ref or "",
        c.queue if c else "", c.queued_at if c else None, c.outcome if c else "", f.queue_open,
        c.wait_seconds if c else None, f.short_abandon, f.in_service_level, (c.agent if c else None) or "",
        f.talk_seconds, list(c.transferred_from) if c else [], f.ended_at,
        [i.queue for i in f.internal], [i.queued_at for i in f.internal],
        [i.outcome for i in f.internal], [i.wait_seconds for i in f.internal], f.events,
    ]  # fmt: skip


def _case_row(c: MailCase) -> list[Any]:
    return [
        c.mailbox, c.thread_id, c.seq, c.opened_at, c.opened_clock, c.ended_at, c.end,
        c.close_reason, c.lead_seconds, c.priority, c.target_seconds, c.messages, c.sender_ref or "",
    ]  # fmt: skip


def _sql_string(text: bytes) -> str:
    """A ClickHouse string literal for text without raw control characters (JSON, ids)."""
    return "'" + text.decode().replace("\\", "\\\\").replace("'", "\\'") + "'"


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
