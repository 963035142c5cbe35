"""ClickHouse's HTTP interface, read-only, over the embedded warehouse the worker holds.

One process owns a chDB directory, so while `availability stream` runs, reports and Grafana's
ClickHouse panels read through it. It answers the subset of the HTTP interface that clients use
(clickhouse-connect, clickhouse-go, curl): the query by GET or POST (`query` parameter and/or
the body), `default_format` or a `FORMAT` clause, `database`, `param_*` query parameters,
settings as URL parameters, the user and password (basic auth, `X-ClickHouse-User`/`-Key`, or
`user`/`password` parameters), and ClickHouse's own exception text, `X-ClickHouse-Exception-Code`
and HTTP status per code.

Read-only is the engine's: each query runs on a fresh chDB handle whose settings end with
`readonly = 1`, so writes, DDL, SYSTEM, file() and url(), and any later change of a setting are
refused by ClickHouse itself. The one write the embedded engine still allows under it is `INTO
OUTFILE` (a ClickHouse server refuses it over HTTP); it is refused the same way, found by the
engine's parser (`formatQuery`), not by matching the query's text.

A heavy panel cannot starve ingestion: at most `max_concurrent` queries run at once (others
wait `queue_seconds`, then get TOO_MANY_SIMULTANEOUS_QUERIES), each capped by the engine's
`max_execution_time`, `max_threads`, `max_memory_usage` and `max_result_bytes`, which a client
can lower but not raise. The server runs its own event loop on its own thread, so it answers
while the worker's loop is busy with a batch.

clickhouse-go (Grafana's driver) first asks `SELECT displayName(), version(), revision(),
timezone()` and then decodes every Native answer in the layout of the `revision()` it got. chDB
writes Native in the layout of revision 0 (no block info, no serialization byte), so that one
question is answered here, in the layout the driver asked for (`client_protocol_version`), with
revision 0: from then on the driver reads chDB's Native as it comes. For a result without rows
chDB writes no Native block at all; the header block a server sends is made here.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from stream_jobs.worker.loop_thread import LoopThread

log = logging.getLogger(__name__)

# URL parameters that are part of the HTTP protocol, not settings for the engine.
TRANSPORT = frozenset(
    {
        "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
        "session_check", "buffer_size", "wait_end_of_query", "quota_key", "enable_http_compression",
        "http_zlib_compression_level", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "client_protocol_version", "role", "stacktrace", "add_http_cors_header", "readonly",
        "cancel_http_readonly_queries_on_client_close", "http_wait_end_of_query", "http_response_buffer_size",
    }
)  # fmt: skip
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_CODE = re.compile(r"Code: (\d+)")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
HELLO = "select displayname(), version(), revision(), timezone()"  # clickhouse-go's, lower-cased
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"  # is_overflows 0, bucket_num -1, end
_CUSTOM_SERIALIZATION = 54454  # from this revision on, a byte after each column's type
# ClickHouse's HTTP status per exception (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
_STATUS = {
    401: {"REQUIRED_PASSWORD"},
    403: {"UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"},
    400: {
        "BAD_ARGUMENTS",
        "CANNOT_COMPILE_REGEXP",
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_ESCAPE_SEQUENCE",
        "CANNOT_PARSE_QUOTED_STRING",
        "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
        "CANNOT_PARSE_IPV4",
        "CANNOT_PARSE_IPV6",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_UUID",
        "DUPLICATE_COLUMN",
        "ILLEGAL_COLUMN",
        "UNKNOWN_ELEMENT_IN_AST",
        "UNKNOWN_TYPE_OF_AST_NODE",
        "THERE_IS_NO_COLUMN",
        "TOO_DEEP_AST",
        "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE",
        "SYNTAX_ERROR",
        "INCORRECT_DATA",
        "TYPE_MISMATCH",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    },
    404: {
        "UNKNOWN_TABLE",
        "UNKNOWN_FUNCTION",
        "UNKNOWN_IDENTIFIER",
        "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE",
        "UNKNOWN_SETTING",
        "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION",
        "UNKNOWN_FORMAT",
        "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY",
        "UNKNOWN_ROLE",
    },
    413: {"QUERY_IS_TOO_LARGE"},
    501: {"NOT_IMPLEMENTED"},
    503: {"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"},
    411: {"HTTP_LENGTH_REQUIRED"},
    408: {"TIMEOUT_EXCEEDED"},
    415: {"UNSUPPORTED_MEDIA_TYPE"},
}
STATUS_OF = {name: status for status, names in _STATUS.items() for name in names}
# The codes this server raises itself (checked against the engine's errorCodeToName in the tests).
CODES = {
    "NOT_IMPLEMENTED": 48,
    "UNKNOWN_SETTING": 115,
    "TOO_MANY_SIMULTANEOUS_QUERIES": 202,
    "QUERY_IS_TOO_LARGE": 229,
    "INTO_OUTFILE_NOT_ALLOWED": 358,
    "AUTHENTICATION_FAILED": 516,
    "STD_EXCEPTION": 1001,
}
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "XML": "application/xml; charset=UTF-8",
}


@dataclass(frozen=True)
class SqlLimits:
    """What one client can take from the worker's machine."""

    max_concurrent: int = 2  # queries running at once; ingestion keeps the rest of the machine
    queue_seconds: float = 10.0  # how long a query waits for a slot before it is refused
    max_seconds: float = 60.0  # the engine's max_execution_time
    max_threads: int = max(1, (os.cpu_count() or 2) // 2)
    max_memory_bytes: int = 4 * 1024**3
    max_result_bytes: int = 512 * 1024**2
    max_query_bytes: int = 1024**2  # the query's text (URL parameter and body together)

    def clamp(self, settings: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The client's settings, then the limits (a client's lower value is kept)."""
        caps = {
            "max_execution_time": self.max_seconds,
            "max_threads": self.max_threads,
            "max_memory_usage": self.max_memory_bytes,
            "max_result_bytes": self.max_result_bytes,
        }
        out = []
        for name, value in settings:
            if name in caps:
                try:
                    asked = float(value)
                except ValueError:
                    out.append((name, value))  # the engine says what is wrong with it
                    continue
                if 0 < asked < caps[name]:  # 0 means "no limit" to ClickHouse
                    caps[name] = asked
                continue
            out.append((name, value))
        return out + [(name, _number(cap)) for name, cap in caps.items()]


@dataclass(frozen=True)
class Query:
    sql: str
    database: str
    format: str
    settings: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    query_id: str = ""


@dataclass(frozen=True)
class Answer:
    body: bytes
    format: str
    summary: dict[str, str]


class ClickHouseError(Exception):
    """An exception as ClickHouse reports it: its code, name and text."""

    def __init__(self, code: int, name: str, text: str) -> None:
        super().__init__(text)
        self.code, self.name, self.text = code, name, text

    @classmethod
    def ours(cls, name: str, message: str) -> ClickHouseError:
        code = CODES[name]
        return cls(code, name, f"Code: {code}. DB::Exception: {message}. ({name})")

    @classmethod
    def of_engine(cls, exc: BaseException) -> ClickHouseError:
        text = str(exc).strip()
        code = _CODE.search(text)
        names = _NAME.findall(text)
        return cls(int(code.group(1)) if code else 1000, names[-1] if names else "", text)

    @property
    def status(self) -> int:
        return STATUS_OF.get(self.name, 500)


class SqlEngine:
    """Runs one query, read-only, on a fresh handle to the embedded engine of `path`.

    chDB allows any number of handles to the engine a process hosts; a handle's settings are its
    own, so `readonly` set on one never reaches the worker's writer."""

    def __init__(self, path: str, limits: SqlLimits) -> None:
        self.path, self.limits = path, limits
        self.timezone = "UTC"  # the engine's, read by `check()` (X-ClickHouse-Timezone)
        self.version = ""

    def check(self) -> None:
        """Open a handle once, so a problem shows when the worker starts, not at the first query."""
        conn = _connect(self.path)
        try:
            answer = bytes(conn.query("SELECT timezone(), version()", "TSVRaw").bytes()).decode()
            self.timezone, self.version = answer.strip().split("\t")
        finally:
            conn.close()

    def run(self, q: Query) -> Answer:
        started = time.perf_counter_ns()
        try:
            conn = _connect(self.path)
        except Exception as exc:
            raise ClickHouseError.of_engine(exc) from None
        try:
            for name, value in self.limits.clamp(q.settings):
                conn.query(f"SET {name} = {_literal(value)}")
            conn.query(f"USE {_identifier(q.database)}")
            conn.query("SET readonly = 1")
            self._refuse_outfile(conn, q)
            result = conn.query(q.sql, q.format, params=q.params or None)
            body = bytes(result.bytes() or b"")
            if not body and _format_of(q) == "Native":
                body = _native_header(conn, q)
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": "0",
                "written_bytes": "0",
                "result_bytes": str(len(body)),
                "elapsed_ns": str(time.perf_counter_ns() - started),
            }
        except ClickHouseError:
            raise
        except Exception as exc:  # chDB raises the engine's exception text
            raise ClickHouseError.of_engine(exc) from None
        finally:
            conn.close()
        return Answer(body, _format_of(q), summary)

    @staticmethod
    def _refuse_outfile(conn: Any, q: Query) -> None:
        """clickhouse-local writes `INTO OUTFILE` even read-only; a server refuses it over HTTP."""
        try:
            formatted = bytes(conn.query("SELECT formatQuery({q:String})", "TSVRaw", params={"q": q.sql}).bytes())
        except Exception:
            return  # a query the parser cannot take fails the same way when it runs, writing nothing
        if b"\nINTO OUTFILE '" in formatted:  # the formatter puts the clause on its own line
            raise ClickHouseError.ours("INTO_OUTFILE_NOT_ALLOWED", "INTO OUTFILE is not allowed")


class SqlServer:
    """The HTTP side: parse the request as ClickHouse does, check the user, bound the queries."""

    def __init__(
        self,
        engine: SqlEngine,
        database: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8123,
        user: str = "default",
        password: str = "",
        observe: Callable[[str, float], None] = lambda outcome, seconds: None,
    ) -> None:
        self.engine, self.database = engine, database
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.observe = observe  # (outcome, seconds) per query, for /metrics
        self.display_name = socket.gethostname()
        self._pool = ThreadPoolExecutor(max_workers=engine.limits.max_concurrent, thread_name_prefix="sql-query")
        self._thread = LoopThread("sql-http")
        self._slots: asyncio.Semaphore | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen; returns once the port is bound (an error binding it is raised here)."""
        self.engine.check()
        self._thread.start(self._listen)

    async def _listen(self) -> web.AppRunner:
        self._slots = asyncio.Semaphore(self.engine.limits.max_concurrent)
        app = web.Application(client_max_size=self.engine.limits.max_query_bytes + 1)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)  # a query string may hold a password
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # tests: the port the system chose
            self.port = runner.addresses[0][1]
        return runner

    def stop(self) -> None:
        self._thread.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one request ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        try:
            if request.method not in ("GET", "POST", "HEAD"):
                raise ClickHouseError.ours("NOT_IMPLEMENTED", f"HTTP method {request.method} is not supported")
            body = await self._body(request)
            text = "\n".join(part for part in (request.query.get("query", ""), body) if part)
            if request.path in ("/ping", "/replicas_status") or not text.strip():
                return web.Response(text="Ok.\n")  # the health checks clients use, without a login
            self._authenticate(request)
            query = self._query(request, text, query_id)
            if " ".join(text.split()).lower() == HELLO and query.format == "Native":
                revision = int(request.query.get("client_protocol_version", "0") or 0)
                answer = Answer(self._hello(revision), "Native", {})
            else:
                answer = await self._run(query)
        except Exception as exc:  # a ClickHouse error, or a bug here: the client gets ClickHouse's shape either way
            if not isinstance(exc, ClickHouseError):
                log.exception("a SQL request failed")
                exc = ClickHouseError.ours("STD_EXCEPTION", f"{type(exc).__name__}: {exc}")
            self.observe("refused" if exc.status in (401, 403) else "failed", time.perf_counter() - started)
            return web.Response(
                status=exc.status,
                text=exc.text + "\n",
                headers={
                    "X-ClickHouse-Exception-Code": str(exc.code),
                    "X-ClickHouse-Query-Id": query_id,
                    "X-ClickHouse-Server-Display-Name": self.display_name,
                },
            )
        self.observe("answered", time.perf_counter() - started)
        response = web.Response(
            body=answer.body,
            headers={
                "Content-Type": _CONTENT_TYPES.get(answer.format, "application/octet-stream"),
                "X-ClickHouse-Format": answer.format,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": self.display_name,
                "X-ClickHouse-Timezone": self.engine.timezone,
                "X-ClickHouse-Summary": json.dumps(answer.summary, separators=(",", ":")),
            },
        )
        if request.query.get("enable_http_compression") == "1" and "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    def _hello(self, revision: int) -> bytes:
        """clickhouse-go's first question, in the Native layout of `revision`, saying revision 0."""
        columns = [
            ("displayName()", "String", _string(self.display_name)),
            ("version()", "String", _string(self.engine.version)),
            ("revision()", "UInt32", (0).to_bytes(4, "little")),
            ("timezone()", "String", _string(self.engine.timezone)),
        ]
        return _native_block(columns, rows=1, revision=revision)

    def _authenticate(self, request: web.Request) -> None:
        user, password = "default", ""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user = ""
        elif "X-ClickHouse-User" in request.headers or "X-ClickHouse-Key" in request.headers:
            user = request.headers.get("X-ClickHouse-User", "default")
            password = request.headers.get("X-ClickHouse-Key", "")
        elif "user" in request.query or "password" in request.query:
            user, password = request.query.get("user", "default"), request.query.get("password", "")
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        if not (same_user & hmac.compare_digest(password.encode(), self.password.encode())):
            raise ClickHouseError.ours(
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    async def _body(self, request: web.Request) -> str:
        if request.query.get("decompress") == "1" or request.query.get("compress") == "1":
            # ClickHouse's own block compression; clients use HTTP Content-Encoding, which aiohttp undoes.
            raise ClickHouseError.ours("NOT_IMPLEMENTED", "compress=1 and decompress=1 are not supported here")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ClickHouseError.ours(
                "QUERY_IS_TOO_LARGE", f"the query is longer than {self.engine.limits.max_query_bytes} bytes"
            ) from None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ClickHouseError.ours("NOT_IMPLEMENTED", "the query is not UTF-8") from None

    def _query(self, request: web.Request, text: str, query_id: str) -> Query:
        settings, params = [], {}
        for name, value in request.query.items():
            if name.startswith("param_"):
                params[name[6:]] = value
            elif name not in TRANSPORT:
                if not _SETTING.match(name):
                    raise ClickHouseError.ours("UNKNOWN_SETTING", f"Unknown setting '{name}'")
                settings.append((name, value))
        database = request.query.get("database") or request.headers.get("X-ClickHouse-Database") or self.database
        fmt = request.query.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated"
        return Query(text, database, fmt, settings, params, query_id)

    async def _run(self, query: Query) -> Answer:
        slots, loop = self._slots, asyncio.get_running_loop()
        assert slots is not None
        limits = self.engine.limits
        try:
            await asyncio.wait_for(slots.acquire(), limits.queue_seconds)
        except TimeoutError:
            raise ClickHouseError.ours(
                "TOO_MANY_SIMULTANEOUS_QUERIES",
                f"Too many simultaneous queries: {limits.max_concurrent} are running and this one waited "
                f"{limits.queue_seconds:g} s",
            ) from None
        try:
            return await loop.run_in_executor(self._pool, self.engine.run, query)
        finally:
            slots.release()


def _native_header(conn: Any, q: Query) -> bytes:
    """The header block a server sends for a result without rows (chDB sends nothing, and a
    client then sees no columns), in revision 0's layout: the query again, for names and types.
    Only an empty result pays for it."""
    sql = _TRAILING_FORMAT.sub("", q.sql)  # clickhouse-connect appends FORMAT Native to the query
    text = bytes(conn.query(sql, "JSONCompactEachRowWithNamesAndTypes", params=q.params or None).bytes())
    lines = text.splitlines()
    if len(lines) < 2:
        return b""  # a statement without a result (USE, SET)
    names, types = json.loads(lines[0]), json.loads(lines[1])
    return _native_block([(n, t, b"") for n, t in zip(names, types, strict=True)], rows=0, revision=0)


def _native_block(columns: list[tuple[str, str, bytes]], *, rows: int, revision: int) -> bytes:
    """One Native block of (name, type, encoded data) columns, in the layout of `revision`."""
    block = bytearray(_BLOCK_INFO if revision > 0 else b"")
    block += _varint(len(columns)) + _varint(rows)
    for name, type_name, data in columns:
        block += _string(name) + _string(type_name)
        if revision >= _CUSTOM_SERIALIZATION:
            block += b"\x00"
        block += data
    return bytes(block)


def _format_of(q: Query) -> str:
    """The output format: the query's own FORMAT clause, else the one asked for."""
    found = _TRAILING_FORMAT.search(q.sql)
    return found.group(1) if found else q.format


def _connect(path: str) -> Any:
    import chdb

    return chdb.connect(path)  # type: ignore[no-untyped-call]


def _literal(value: str) -> str:
    """A setting's value as a string literal; ClickHouse converts it to the setting's type."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return _varint(len(data)) + data


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
