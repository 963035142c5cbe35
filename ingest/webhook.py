"""The CallGuide webhook: CloudEvents over HTTP -> the ingest boundary -> Kafka.

    POST /events    one CloudEvent (application/cloudevents+json or application/json, structured
                    mode) or a batch (application/cloudevents-batch+json: a JSON array of them)
    GET  /healthz   200 {"status": "ok"} while the publisher is connected to Kafka, else
                    503 {"status": "degraded", "kafka": "unreachable"} (it never sends to Kafka)
    GET  /metrics   Prometheus text (a registry of this app, not the process-global one)

Answers to POST /events, in the order they are checked:

    401  no or wrong `Authorization: Bearer <token>` (with `WWW-Authenticate: Bearer ...`); also a
         header that is not ASCII or not even UTF-8: it cannot be the token
    415  another content type
    413  body larger than `max_body_bytes` (default 16 MiB: a 10 000-event batch is ~2.5 MB)
    408  the body did not arrive in time: `body_timeout` (10 s) plus 1 s per `min_body_rate`
         bytes received (1 MiB/s); the connection is closed
    400  the body as a whole is unusable: not JSON at all, nested too deeply to split (5 000
         levels), or a batch that is not a JSON array. No item can be named, so there is no
         per-item list: {"error": "...", "accepted": 0}
    422  at least one item was rejected by the boundary (spec/events.md, "Bad input"; invalid
         UTF-8 inside an item is such a reason), or is larger than `max_event_bytes` (the
         contract's MAX_EVENT_BYTES, 64 KiB): {"rejected": [{"index": i, "reason": "..."}, ...],
         "accepted": 0} listing every rejected item. All or nothing: then not one item of the
         request is published, so the sender can fix and resend the whole request.
    503  Kafka did not acknowledge (or is not connected): {"error": "...", "accepted": 0} and
         `Retry-After: <seconds>`. Some of the items may still reach Kafka later (at least once);
         a retry is safe because events are de-duplicated downstream by (source, id).
    202  {"accepted": n}, sent only after the broker acknowledged all n (acks=all). An empty
         batch is accepted as {"accepted": 0} without touching Kafka.

Personal data (caller, sender, subject) is pseudonymised by the boundary before anything is
published, and never logged or counted: logs and metrics hold counts, statuses and the
boundary's reasons (which name fields, types and unknown queues/mailboxes, never values of
personal fields). Rejected items are not written to the dead-letter topic: the sender gets
each reason back and keeps the items, and a raw item may hold a caller number.

Secrets stay out of the log: the access log (`AccessLogger`) writes method, path without the
query string, status, size and time, never headers, the query or the client's address; a
malformed request is logged as one line naming the error class, not aiohttp's quote of the
offending request line or header (which can hold a token). A client that closes its
connection early is not an error and writes nothing.

Slow or idle clients cannot hold the server (`ServerLimits`, used by `listening` and `serve`):
a connection must deliver a complete request head within `header_timeout` (10 s) of
connecting or of its previous response (this is also the keep-alive idle time), the body is
bounded as above (408), a body the handler did not read is drained for at most
`lingering_time` (5 s), and beyond `max_connections` (512) open connections a new one is
answered `503` with `Retry-After` and closed.

`create_app` serves any publisher (tests, other sources); `serve` is `availability ingest
webhook`: it starts while Kafka is down, answers 503 until Kafka is back and reconnects by
itself (`ReconnectingPublisher`, in ingest/kafka/reconnecting.py), and rate-limits the Kafka
client's log records (`ingest.log_limit.limit_repeats`) so an outage writes a line a minute,
not 150 a second.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_server import Server
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingest.boundary import Boundary, Rejection, reason_of
from ingest.kafka.publisher import PublishError
from ingest.kafka.reconnecting import ReconnectingPublisher
from ingest.log_limit import limit_repeats, plain_logging
from schemas.errors import AvailabilityError
from schemas.events import MAX_EVENT_BYTES, Event

log = logging.getLogger("availability.webhook")

SINGLE_TYPES = frozenset({"application/cloudevents+json", "application/json"})
BATCH_TYPE = "application/cloudevents-batch+json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# One event is a few hundred bytes. A huge one would exceed Kafka's message size limit (1 MiB)
# and fail on every retry, so it is rejected up front instead of answered with 503 for ever.
# The same limit as every other path (schemas/events.py).
DEFAULT_MAX_EVENT_BYTES = MAX_EVENT_BYTES
# A body must arrive within DEFAULT_BODY_TIMEOUT s plus 1 s per DEFAULT_MIN_BODY_RATE bytes
# received: a 16 MiB batch may take 26 s, a client that trickles bytes is cut off after ~10 s.
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MIN_BODY_RATE = 1024 * 1024
_CLIENT_CLOSED = 499  # nginx's "client closed request": counted, never sent
_LOGGED_REASONS = 5  # per request; the response lists them all
_PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookError(AvailabilityError):
    """The webhook cannot be set up as asked (no token, address in use)."""


class Publisher(Protocol):
    """What the webhook needs of Kafka: KafkaPublisher and ReconnectingPublisher (ingest/kafka)
    fit it, and so does the in-memory one of the unit tests (tests/unit/test_webhook.py).

    A publisher may also have a `connected` property (ReconnectingPublisher has): /healthz
    answers 503 while it is false. One without it is taken as connected."""

    def publish(self, events: Iterable[Event], timeout: float = ...) -> int:
        """Return the number of events once the broker acknowledged every one; raise PublishError
        otherwise (its `retry_after` becomes the 503's Retry-After)."""
        ...


@dataclass(frozen=True)
class ServerLimits:
    """What a connection may cost `serve` (the body's time limit is `create_app`'s)."""

    header_timeout: float = 10.0  # connect (or previous response) -> complete request head; keep-alive idle
    lingering_time: float = 5.0  # draining a body the handler did not read (after 401, 413, ...)
    max_connections: int = 512  # open connections; the next one gets 503 and is closed
    shutdown_timeout: float = 30.0  # SIGTERM: running requests may finish within this


def check_token(token: str | None, allow_anonymous: bool) -> None:
    """A webhook without a token must be asked for, and a token must not be blank."""
    if token is not None and not token.strip():
        raise WebhookError("the webhook token is empty: set AVAILABILITY_WEBHOOK_TOKEN to a secret")
    if token is None and not allow_anonymous:
        raise WebhookError(
            "no webhook token: set AVAILABILITY_WEBHOOK_TOKEN, or allow anonymous posts explicitly "
            "(--allow-anonymous, development only)"
        )


def create_app(
    boundary: Boundary,
    publisher: Publisher,
    *,
    token: str | None,
    allow_anonymous: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    publish_timeout: float = 10.0,
    publish_threads: int = 4,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    min_body_rate: float = DEFAULT_MIN_BODY_RATE,
) -> web.Application:
    """The webhook as an aiohttp application. The caller owns (and closes) `publisher`.

    `token=None` serves without authentication, which must be asked for with
    `allow_anonymous=True`; otherwise building the app fails with WebhookError.
    """
    check_token(token, allow_anonymous)
    webhook = _Webhook(
        boundary,
        publisher,
        token,
        max_body_bytes,
        max_event_bytes,
        publish_timeout,
        publish_threads,
        body_timeout,
        min_body_rate,
    )
    app = web.Application(client_max_size=max_body_bytes)
    app[METRICS] = webhook.registry
    app.router.add_post("/events", webhook.events)
    app.router.add_get("/healthz", webhook.healthz)
    app.router.add_get("/metrics", webhook.metrics)
    app.on_cleanup.append(webhook.cleanup)
    return app


# The app's own metrics registry (its /metrics), for a status line that says what they say.
METRICS = web.AppKey("metrics", CollectorRegistry)


class _Webhook:
    def __init__(
        self,
        boundary: Boundary,
        publisher: Publisher,
        token: str | None,
        max_body_bytes: int,
        max_event_bytes: int,
        publish_timeout: float,
        publish_threads: int,
        body_timeout: float,
        min_body_rate: float,
    ) -> None:
        self.boundary = boundary
        self.publisher = publisher
        self.token = token.encode() if token is not None else None
        self.max_body_bytes = max_body_bytes
        self.max_event_bytes = max_event_bytes
        self.publish_timeout = publish_timeout
        self.body_timeout = body_timeout
        self.min_body_rate = min_body_rate
        # kafka-python blocks until the broker acknowledged: a few threads keep the loop free.
        self.pool = ThreadPoolExecutor(max_workers=publish_threads, thread_name_prefix="webhook-publish")
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_total = Counter(
            "availability_webhook_events",
            "Events received by the webhook, by outcome (rejected: invalid items of 422 answers)",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("accepted", "rejected"):
            self.events_total.labels(outcome)
        self.requests_total = Counter(
            "availability_webhook_requests", "POST /events requests by HTTP status", ["status"], registry=self.registry
        )
        self.publish_seconds = Histogram(
            "availability_webhook_publish_seconds",
            "Time from handing a request's events to Kafka until the broker acknowledged (or failed)",
            buckets=_PUBLISH_BUCKETS,
            registry=self.registry,
        )

    # -- routes -------------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        status = 500
        try:
            response = await self._events(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except ConnectionError:  # the client went away (mid-body, or before the answer): no one to tell
            status = _CLIENT_CLOSED
            return web.Response(status=_CLIENT_CLOSED)  # for the access log; it cannot be sent
        finally:
            self.requests_total.labels(str(status)).inc()

    async def healthz(self, request: web.Request) -> web.Response:
        if getattr(self.publisher, "connected", True):
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "degraded", "kafka": "unreachable"}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def cleanup(self, app: web.Application) -> None:
        self.pool.shutdown(wait=True)

    # -- POST /events -------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            error = "" if request.headers.get("Authorization") is None else ', error="invalid_token"'
            return web.json_response(
                {"error": "a valid bearer token is required"},
                status=401,
                headers={"WWW-Authenticate": f'Bearer realm="availability"{error}'},
            )
        batch = request.content_type == BATCH_TYPE
        if not batch and request.content_type not in SINGLE_TYPES:
            return _error(
                415, f"content type must be {BATCH_TYPE} or one of {', '.join(sorted(SINGLE_TYPES))} (structured mode)"
            )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._too_large()
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body

        items = _split(body, batch)
        if isinstance(items, str):
            log.info("rejected a request body: %s", items)
            return _error(400, items)
        events, rejected = self._validate(items)
        if rejected:
            self.events_total.labels("rejected").inc(len(rejected))
            shown = "; ".join(f"[{i}] {reason}" for i, reason in rejected[:_LOGGED_REASONS])
            more = f" (and {len(rejected) - _LOGGED_REASONS} more)" if len(rejected) > _LOGGED_REASONS else ""
            log.info(
                "rejected a request: %d of %d events invalid, none published: %s%s",
                len(rejected),
                len(items),
                shown,
                more,
            )
            return web.json_response(
                {"rejected": [{"index": i, "reason": reason} for i, reason in rejected], "accepted": 0}, status=422
            )
        if not events:
            return web.json_response({"accepted": 0}, status=202)

        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            accepted = await loop.run_in_executor(
                self.pool, partial(self.publisher.publish, events, timeout=self.publish_timeout)
            )
        except PublishError as exc:
            log.warning("not accepted: %s; answering 503 (retry after %d s)", exc, exc.retry_after)
            return _error(503, str(exc), headers={"Retry-After": str(exc.retry_after)})
        finally:
            self.publish_seconds.observe(time.perf_counter() - started)
        self.events_total.labels("accepted").inc(accepted)
        return web.json_response({"accepted": accepted}, status=202)

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        """The whole body, or the answer when it is too large (413), too slow (408) or broken (400).

        The deadline is `body_timeout` from now plus 1 s per `min_body_rate` bytes received, so
        a large batch on a slow line is fine and a client trickling bytes is not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline + size / self.min_body_rate - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    chunk = await request.content.readany()
            except TimeoutError:
                return await self._timed_out(request)
            except web.RequestPayloadError:  # a broken chunked encoding or compression
                return _error(400, "the request body could not be read (broken transfer or content encoding)")
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body_bytes:
                return self._too_large()
            chunks.append(chunk)

    async def _timed_out(self, request: web.Request) -> web.Response:
        """408, sent now, and the connection closed: draining the rest would wait for the same client."""
        response = _error(408, f"the request body did not arrive within {self.body_timeout:g} s")
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()  # after the answer is flushed
        return response

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # aiohttp decodes header bytes as UTF-8 with surrogate escapes: encoding them back the
        # same way gives the bytes that were sent, whatever they are (a non-token never matches).
        return hmac.compare_digest(credentials.strip().encode("utf-8", "surrogateescape"), self.token)

    def _validate(self, items: list[bytes]) -> tuple[list[Event], list[tuple[int, str]]]:
        events: list[Event] = []
        rejected: list[tuple[int, str]] = []
        accept, limit = self.boundary.accept, self.max_event_bytes
        for index, raw in enumerate(items):
            if len(raw) > limit:
                rejected.append((index, f"event larger than {limit} bytes ({len(raw)})"))
                continue
            try:
                result = accept(raw)
            except Exception as exc:  # the boundary promises not to raise; an item must never give 500
                log.warning("the boundary raised on item %d: %s", index, type(exc).__name__)
                result = Rejection(_undecodable(exc))
            if isinstance(result, Rejection):
                rejected.append((index, result.reason))
            else:
                events.append(result)
        return events, rejected

    def _too_large(self) -> web.Response:
        return _error(413, f"body larger than {self.max_body_bytes} bytes; send smaller batches")


def _split(body: bytes, batch: bool) -> list[bytes] | str:
    """The items' JSON texts, or why the body as a whole is unusable.

    A batch is split without decoding its items: msgspec hands back each element's bytes
    (`Raw`), which the boundary then decodes and validates once.
    """
    try:
        if batch:
            return [bytes(raw) for raw in msgspec.json.decode(body, type=list[msgspec.Raw])]
        msgspec.json.decode(body, type=msgspec.Raw)  # syntax only; the boundary checks the event
        return [body]
    except msgspec.ValidationError:
        return "a batch must be a JSON array of CloudEvents"
    except msgspec.DecodeError as exc:
        return reason_of(exc)
    except (RecursionError, ValueError) as exc:
        return _undecodable(exc)


def _undecodable(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "not usable JSON (nested too deeply)"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
    return f"not usable JSON ({type(exc).__name__})"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "accepted": 0}, status=status, headers=headers)


# -- the server: access log, protocol errors, connection limits ---------------------------------


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without the query string, status, body size, time.

    Never the query string (a sender may put a token there), headers, or the client's address."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %d %.3f s",
            _printable(request.method, 16),
            _printable(request.rel_url.raw_path, 200),
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def _printable(text: str, limit: int) -> str:
    """Client-chosen text for a log line: printable ASCII only (no forged lines), bounded."""
    clean = "".join(ch if " " < ch < "\x7f" else "?" for ch in text[:limit])
    return clean + ("..." if len(text) > limit else "")


class _ProtocolErrors(logging.Filter):
    """aiohttp.server's records about clients, made safe and short.

    A client that closed its connection is not an error: dropped. A malformed request becomes
    one line naming the error class; aiohttp's message quotes the offending request line or
    header, which can hold a token or a query string. Other exceptions (bugs) keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionError | asyncio.CancelledError):
            return False
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: malformed request ({type(exc).__name__}, answered {exc.code})"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_protocol_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ProtocolErrors) for f in server_log.filters):
        server_log.addFilter(_ProtocolErrors())


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 28\r\nConnection: close\r\n\r\ntoo many connections; retry\n"
)


class _Busy(asyncio.Protocol):
    """The answer to a connection beyond the limit: 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(_BUSY)
        stream.close()


class _Gate:
    """The protocol factory of the listening socket: aiohttp's, up to `limit` open connections."""

    def __init__(self, server: Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.refused = 0
        self._logged = -60.0

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) < self.limit:
            return self.server()
        self.refused += 1
        now = time.monotonic()
        if now - self._logged >= 60:
            self._logged = now
            log.warning(
                "%d connections open (the limit): refusing new ones with 503 (%d so far)", self.limit, self.refused
            )
        return _Busy()


@asynccontextmanager
async def listening(
    app: web.Application, sock: socket.socket, limits: ServerLimits = ServerLimits()
) -> AsyncIterator[None]:
    """Serve `app` on the bound socket `sock` with `limits` until the block ends, then shut down
    gracefully (running requests finish within `shutdown_timeout`, then the app's cleanup)."""
    _quiet_protocol_errors()
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        keepalive_timeout=limits.header_timeout,
        lingering_time=limits.lingering_time,
        shutdown_timeout=limits.shutdown_timeout,
    )
    await runner.setup()
    server: asyncio.Server | None = None
    try:
        assert runner.server is not None
        gate = _Gate(runner.server, limits.max_connections)
        server = await asyncio.get_running_loop().create_server(gate, sock=sock)
        yield
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()
        if server is not None:
            await server.wait_closed()


# -- the `availability ingest webhook` command ------------------------------------------------


def create_service_app(
    boundary: Boundary,
    publisher: ReconnectingPublisher,
    *,
    token: str | None,
    allow_anonymous: bool = False,
    publish_timeout: float = 10.0,
) -> web.Application:
    """The app `serve` runs: `boundary` should be a live one (an event more than MAX_FUTURE
    ahead of its clock is rejected, spec/events.md); Kafka is connected in the background."""
    app = create_app(boundary, publisher, token=token, allow_anonymous=allow_anonymous, publish_timeout=publish_timeout)

    async def start_connecting(_: web.Application) -> None:
        publisher.start()

    async def close_publisher(_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, publisher.close)

    app.on_startup.append(start_connecting)
    app.on_cleanup.append(close_publisher)
    return app


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: ServerLimits = ServerLimits(),
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Run the webhook `app` until SIGINT/SIGTERM; prints the address it listens on (stdout: a
    script that asked for port 0 reads it there), then calls `on_listening(address)`."""
    if not logging.getLogger().handlers:  # a caller other than the CLI, which set it up already
        plain_logging("info")
    limit_repeats()  # a broker outage: one line a minute per kind, not ~150 a second
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise WebhookError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    bound = sock.getsockname()[1]
    address = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    asyncio.run(_serve(app, sock, address, limits, on_listening))


async def _serve(
    app: web.Application,
    sock: socket.socket,
    address: str,
    limits: ServerLimits,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Until the first SIGINT/SIGTERM: then stop accepting, let running requests finish, clean
    up (thread pool, Kafka producer). A second signal acts as usual (Ctrl-C interrupts at once)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with listening(app, sock, limits):
            print(
                f"availability: webhook listening on {address} (POST /events, GET /healthz, GET /metrics)", flush=True
            )
            if on_listening is not None:
                on_listening(address)
            await stop.wait()
            for sig in signals:
                loop.remove_signal_handler(sig)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
