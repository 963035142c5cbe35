"""The ClickHouse warehouse through clickhouse-connect: a directory is the embedded engine
(chDB, `chdb://` DSN), an `http(s)://` URL a server. Both run the same SQL.

Thin adapter: it stores events and facts and runs queries; it derives nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from availability.errors import WarehouseError
from schemas.events import CALL_TYPES, MAIL_TYPES, Event, decode, encode, event_key, type_name
from stream_jobs.calls import CallFact
from stream_jobs.mail import MailCase

DEFAULT_DATABASE = "availability"
EVENT_COLUMNS = ["kind", "type", "source", "id", "time", "key", "payload"]
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


def ms(t: datetime) -> int:
    """Epoch milliseconds: how instants are passed to SQL (`fromUnixTimestamp64Milli`)."""
    return round(t.timestamp() * 1000)


class Warehouse:
    def __init__(self, client: Any, target: str) -> None:
        self.client = client
        self.target = target

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
        self.client.close()

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
        if not events:
            return
        cols: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
        kind, typ, source, ids, time, key, payload = cols
        for ev in events:
            t = type_name(ev)
            kind.append(kind_of(t))
            typ.append(t)
            source.append(ev.source)
            ids.append(ev.id)
            time.append(ev.time)
            key.append(event_key(ev))
            payload.append(encode(ev))
        self.client.insert("events", cols, column_names=EVENT_COLUMNS, column_oriented=True)

    def upsert_calls(self, facts: Iterable[CallFact]) -> None:
        rows = [_call_row(f) for f in facts]
        if rows:
            self.client.insert("call_facts", rows, column_names=CALL_COLUMNS)

    def upsert_cases(self, cases: Iterable[MailCase]) -> None:
        rows = [_case_row(c) for c in cases]
        if rows:
            self.client.insert("mail_cases", rows, column_names=CASE_COLUMNS)

    # -- reads ------------------------------------------------------------------------------

    def stored_events(
        self, kind: str, keys: Iterable[str], since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[Event]]:
        """The stored events of these keys (optionally within a time window), decoded."""
        keys = list(keys)
        out: dict[str, list[Event]] = defaultdict(list)
        if not keys:
            return out
        where = "kind = {kind:String} AND key IN {keys:Array(String)}"
        params: dict[str, Any] = {"kind": kind, "keys": keys}
        if since is not None and until is not None:
            where += (
                " AND time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
                " AND time <= fromUnixTimestamp64Milli({until:Int64}, 'UTC')"
            )
            params |= {"since": ms(since), "until": ms(until)}
        result = self.client.query(f"SELECT key, payload FROM events WHERE {where}", parameters=params)
        for key, payload in result.result_rows:
            out[key].append(decode(payload))
        return out

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.client.query(sql, parameters=parameters or {}).result_rows)


def _call_row(f: CallFact) -> list[Any]:
    c = f.contact
    return [
        f.call_id, f.offered_at, f.entrance or "", f.caller_ref or "",
        c.queue if c else "", c.queued_at if c else None, c.outcome if c else "", f.queue_open,
        c.wait_seconds if c else None, f.short_abandon, f.in_service_level, (c.agent if c else None) or "",
        f.talk_seconds, list(c.transferred_from) if c else [], f.ended_at,
        [i.queue for i in f.internal], [i.queued_at for i in f.internal], [i.outcome for i in f.internal],
        [i.wait_seconds for i in f.internal], f.events,
    ]  # fmt: skip


def _case_row(c: MailCase) -> list[Any]:
    return [
        c.mailbox, c.thread_id, c.seq, c.opened_at, c.opened_clock, c.ended_at, c.end, c.close_reason,
        c.lead_seconds, c.priority, c.target_seconds, c.messages, c.sender_ref or "",
    ]  # fmt: skip


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
