"""The CallGuide webhook: CloudEvents over HTTP -> the ingest boundary -> Kafka.

    POST /events    one CloudEvent (application/cloudevents+json or application/json, structured
                    mode) or a batch (application/cloudevents-batch+json: a JSON array of them)
    GET  /healthz   200 {"status": "ok"}; never touches Kafka
    GET  /metrics   Prometheus text (a registry of this app, not the process-global one)

Answers to POST /events, in the order they are checked:

    401  no or wrong `Authorization: Bearer <token>` (with `WWW-Authenticate: Bearer ...`)
    415  another content type
    413  body larger than `max_body_bytes` (default 16 MiB: a 10 000-event batch is ~2.5 MB)
    400  the body as a whole is unusable: not JSON at all, or a batch that is not a JSON array.
         No item can be named, so there is no per-item list: {"error": "...", "accepted": 0}
    422  at least one item was rejected by the boundary (spec/events.md, "Bad input"), or is larger
         than `max_event_bytes`: {"rejected": [{"index": i, "reason": "..."}, ...], "accepted": 0}
         listing every rejected item. All or nothing: then not one item of the request is
         published, so the sender can fix and resend the whole request.
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

`create_app` serves any publisher (tests, other sources); `serve` is `availability ingest
webhook`: it starts while Kafka is down, answers 503 until Kafka is back and reconnects by
itself (`ReconnectingPublisher`, in ingest/webhook_publisher.py).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from availability.errors import AvailabilityError
from availability.settings import Settings
from ingest.boundary import Boundary, reason_of
from ingest.publisher import PublishError
from ingest.webhook_publisher import ReconnectingPublisher
from schemas.agreements import Agreements
from schemas.events import Event

__all__ = [
    "BATCH_TYPE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_EVENT_BYTES",
    "SINGLE_TYPES",
    "Publisher",
    "ReconnectingPublisher",
    "WebhookError",
    "create_app",
    "create_service_app",
    "serve",
]

log = logging.getLogger("availability.webhook")

SINGLE_TYPES = frozenset({"application/cloudevents+json", "application/json"})
BATCH_TYPE = "application/cloudevents-batch+json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# One event is a few hundred bytes. A huge one would exceed Kafka's message size limit (1 MiB)
# and fail on every retry, so it is rejected up front instead of answered with 503 for ever.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
_LOGGED_REASONS = 5  # per request; the response lists them all
_PUBLISH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookError(AvailabilityError):
    """The webhook cannot be set up as asked (no token, address in use)."""


class Publisher(Protocol):
    def publish(self, events: Iterable[Event], timeout: float = ...) -> int:
        """Return only once the broker acknowledged every event; raise PublishError otherwise."""
        ...


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
) -> web.Application:
    """The webhook as an aiohttp application. The caller owns (and closes) `publisher`.

    `token=None` serves without authentication, which must be asked for with
    `allow_anonymous=True`; otherwise building the app fails with WebhookError.
    """
    if token is not None and not token.strip():
        raise WebhookError("the webhook token is empty: set AVAILABILITY_WEBHOOK_TOKEN to a secret")
    if token is None and not allow_anonymous:
        raise WebhookError(
            "no webhook token: set AVAILABILITY_WEBHOOK_TOKEN, or allow anonymous posts explicitly "
            "(--allow-anonymous, development only)"
        )
    webhook = _Webhook(boundary, publisher, token, max_body_bytes, max_event_bytes, publish_timeout, publish_threads)
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/events", webhook.events)
    app.router.add_get("/healthz", webhook.healthz)
    app.router.add_get("/metrics", webhook.metrics)
    app.on_cleanup.append(webhook.cleanup)
    return app


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
    ) -> None:
        self.boundary = boundary
        self.publisher = publisher
        self.token = token.encode() if token is not None else None
        self.max_body_bytes = max_body_bytes
        self.max_event_bytes = max_event_bytes
        self.publish_timeout = publish_timeout
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
        finally:
            self.requests_total.labels(str(status)).inc()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

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
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large()

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

    def _authorised(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.token)

    def _validate(self, items: list[bytes]) -> tuple[list[Event], list[tuple[int, str]]]:
        events: list[Event] = []
        rejected: list[tuple[int, str]] = []
        accept, limit = self.boundary.accept, self.max_event_bytes
        for index, raw in enumerate(items):
            if len(raw) > limit:
                rejected.append((index, f"event larger than {limit} bytes ({len(raw)})"))
                continue
            result = accept(raw)
            if isinstance(result, str):
                rejected.append((index, result))
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "accepted": 0}, status=status, headers=headers)


# -- the `availability ingest webhook` command ------------------------------------------------


def create_service_app(
    settings: Settings, agreements: Agreements, *, allow_anonymous: bool = False, publish_timeout: float = 10.0
) -> web.Application:
    """The app `serve` runs: boundary from the settings' key, Kafka connected in the background."""
    from ingest.pseudonymise import Pseudonymiser

    token = settings.webhook_token.get_secret_value() if settings.webhook_token is not None else None
    boundary = Boundary(agreements, Pseudonymiser(settings.pseudonym_key.get_secret_value().encode(), agreements))
    publisher = ReconnectingPublisher(settings.kafka_bootstrap_servers, settings.topic_prefix)
    app = create_app(boundary, publisher, token=token, allow_anonymous=allow_anonymous, publish_timeout=publish_timeout)

    async def start_connecting(_: web.Application) -> None:
        publisher.start()

    async def close_publisher(_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, publisher.close)

    app.on_startup.append(start_connecting)
    app.on_cleanup.append(close_publisher)
    return app


def serve(settings: Settings, agreements: Agreements, host: str, port: int, allow_anonymous: bool) -> None:
    """Run the webhook until SIGINT/SIGTERM; prints the address it listens on."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is every connection
    app = create_service_app(settings, agreements, allow_anonymous=allow_anonymous)
    if settings.uses_development_key:
        print(
            "availability: warning: AVAILABILITY_PSEUDONYM_KEY is not set; pseudonyms use the public "
            "development key (fine for demos, not for real callers)",
            file=sys.stderr,
        )
    if settings.webhook_token is None:
        print("availability: warning: the webhook accepts posts without a token (--allow-anonymous)", file=sys.stderr)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise WebhookError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    bound = sock.getsockname()[1]
    address = f"http://{f'[{host}]' if ':' in host else host}:{bound}"

    def announce(*_: object) -> None:
        print(f"availability: webhook listening on {address} (POST /events, GET /healthz, GET /metrics)", flush=True)

    # run_app handles SIGINT and SIGTERM: stop accepting, finish running requests, then cleanup
    # (thread pool, Kafka producer).
    web.run_app(app, sock=sock, print=announce)
