"""The CallGuide webhook (ingest/webhook.py) with an in-memory publisher: no Kafka, no chDB.

The same app `availability ingest webhook` serves, driven through aiohttp's test client; the
publisher keeps what it is given and can play "Kafka is away". The integration tests
(tests/integration/test_webhook.py, test_edges_webhook.py) run the same answers against a
real broker, a real outage and the real command.

Every expected value is written out by hand from the webhook's docstring and the boundary's
reasons; a comment says why it is the right one.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Iterable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingest.boundary import Boundary
from ingest.kafka.publisher import KafkaPublisher, PublishError
from ingest.kafka.reconnecting import ReconnectingPublisher
from ingest.pseudonymise import Pseudonymiser
from ingest.webhook import BATCH_TYPE, Publisher, WebhookError, create_app
from schemas.agreements import Agreements
from schemas.events import CallOffered, Event
from tests import webhook_client
from tests.webhook_client import SINGLE, Reply, get, run

TOKEN = "unit-test-token"
KEY = b"webhook-unit-test-key-of-32-bytes!"
CALLER = "+46 70-123 45 67"
CALLER_DIGITS = "701234567"  # in any notation of the number


# -- the in-memory publisher --------------------------------------------------------------------


class InMemoryPublisher:
    """The webhook's `Publisher`, in memory: every acknowledged event in `published`, in order.

    `connected = False` plays Kafka being away, as ReconnectingPublisher does between brokers:
    /healthz says degraded and `publish` raises PublishError (with `retry_after`) before taking
    anything, so a refused request leaves no trace here."""

    def __init__(self, retry_after: int = 7) -> None:
        self.published: list[Event] = []
        self.timeouts: list[float] = []  # the timeout of every publish call, refused ones too
        self.connected = True
        self.retry_after = retry_after

    def publish(self, events: Iterable[Event], timeout: float = 30.0) -> int:
        self.timeouts.append(timeout)
        if not self.connected:
            raise PublishError("not connected to Kafka at memory://", self.retry_after)
        batch = list(events)
        self.published.extend(batch)
        return len(batch)


def test_the_publishers_fit_the_protocol() -> None:
    # The webhook calls `publish(events, timeout=...)` and reads the count it returns: every
    # publisher it is given takes a keyword `timeout` (mypy checks the rest where they are wired).
    for publisher in (InMemoryPublisher, KafkaPublisher, ReconnectingPublisher):
        parameters = inspect.signature(publisher.publish).parameters
        assert list(parameters)[:3] == ["self", "events", "timeout"], publisher
    fits: Publisher = InMemoryPublisher()  # for a reader running mypy on this file
    assert fits.publish([]) == 0


# -- helpers ------------------------------------------------------------------------------------


# The token every test of this file posts with unless it says otherwise.
post = functools.partial(webhook_client.post, token=TOKEN)


def event(id_: str, type_: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_,
        "source": "callguide",
        "type": type_,
        "time": "2026-03-02T09:00:00+01:00",
        "data": data,
    }


def offered(call_id: str) -> dict[str, Any]:
    return event(f"o-{call_id}", "call.offered", call_id=call_id, entrance="0771-100 100", caller=CALLER)


def queued(call_id: str, queue: str = "kundreskontra") -> dict[str, Any]:
    return event(f"q-{call_id}", "call.queued", call_id=call_id, queue=queue)


def body(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode()


def batch(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()


def ids(events: list[Event]) -> list[str]:
    return [e.id for e in events]


@pytest.fixture(scope="module")
def pseudonymiser(agreements: Agreements) -> Pseudonymiser:
    return Pseudonymiser(KEY, agreements)


@pytest.fixture(scope="module")
def boundary(agreements: Agreements, pseudonymiser: Pseudonymiser) -> Boundary:
    return Boundary(agreements, pseudonymiser)  # the spec's example: queues kundreskontra, avgifter


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


# -- authentication -----------------------------------------------------------------------------


def test_an_open_webhook_must_be_asked_for(boundary: Boundary, publisher: InMemoryPublisher) -> None:
    # No token is refused at build time, not at the first request; so is a blank one (a secret
    # set to spaces by mistake); anonymous posts only with allow_anonymous (development).
    with pytest.raises(WebhookError, match="AVAILABILITY_WEBHOOK_TOKEN"):
        create_app(boundary, publisher, token=None)
    with pytest.raises(WebhookError, match="empty"):
        create_app(boundary, publisher, token="  ")
    app = create_app(boundary, publisher, token=None, allow_anonymous=True)
    reply = run(app, lambda client: post(client, body(queued("c-anon")), token=None))
    assert (reply.status, reply.body) == (202, {"accepted": 1})
    assert ids(publisher.published) == ["q-c-anon"]


def test_a_missing_or_wrong_token_is_401_and_nothing_is_published(
    boundary: Boundary, publisher: InMemoryPublisher
) -> None:
    app = create_app(boundary, publisher, token=TOKEN)

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        basic = {"Content-Type": SINGLE, "Authorization": f"Basic {TOKEN}"}
        async with client.post("/events", data=body(queued("c-basic")), headers=basic) as resp:
            other_scheme = Reply(resp.status, dict(resp.headers), await resp.json())
        return [
            await post(client, body(queued("c-none")), token=None),
            await post(client, body(queued("c-wrong")), token="not-the-token"),
            await post(client, body(queued("c-prefix")), token=TOKEN[:-1]),
            other_scheme,
            await post(client, body(queued("c-ok"))),
        ]

    missing, wrong, prefixed, other_scheme, ok = run(app, scenario)
    # RFC 6750: no credentials at all get the bare challenge; credentials that do not match get
    # error="invalid_token" (a Basic header counts as credentials given).
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="availability"'
    for reply in (wrong, prefixed, other_scheme):
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="availability", error="invalid_token"'
    for reply in (missing, wrong, prefixed, other_scheme):
        assert (reply.status, reply.body) == (401, {"error": "a valid bearer token is required"})
    assert (ok.status, ok.body) == (202, {"accepted": 1})
    # Only the one request with the token reached the publisher: the 401s never call it.
    assert ids(publisher.published) == ["q-c-ok"]
    assert len(publisher.timeouts) == 1


# -- accepted events ----------------------------------------------------------------------------


def test_one_event_is_202_after_publishing_it_pseudonymised(
    boundary: Boundary, publisher: InMemoryPublisher, pseudonymiser: Pseudonymiser
) -> None:
    app = create_app(boundary, publisher, token=TOKEN, publish_timeout=2.5)

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        return [
            await post(client, body(offered("c-1"))),
            # application/json is a single event too, parameters (charset) aside
            await post(client, body(queued("c-1")), content_type="application/json; charset=utf-8"),
        ]

    first, second = run(app, scenario)
    # 202, not 200: the answer says the broker acknowledged, the events are processed later.
    assert (first.status, first.body) == (202, {"accepted": 1})
    assert (second.status, second.body) == (202, {"accepted": 1})
    assert ids(publisher.published) == ["o-c-1", "q-c-1"]
    # Each request is one publish call, bounded by the app's publish_timeout.
    assert publisher.timeouts == [2.5, 2.5]
    call = publisher.published[0]
    assert isinstance(call, CallOffered)
    # The boundary ran before publishing: the caller number became the keyed hash of its
    # normalised form (the same key gives the same ref), and the raw number is gone.
    assert call.data.caller is None
    assert call.data.caller_ref == pseudonymiser.caller_ref(CALLER)
    assert call.data.call_id == "c-1"  # a token already: kept as sent


def test_a_batch_is_202_with_every_event_published_in_order(boundary: Boundary, publisher: InMemoryPublisher) -> None:
    app = create_app(boundary, publisher, token=TOKEN)
    items = [offered("c-1"), queued("c-1"), queued("c-2", queue="avgifter")]

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        return [
            await post(client, batch(*items), content_type=BATCH_TYPE),
            await post(client, b"[]", content_type=BATCH_TYPE),
        ]

    three, empty = run(app, scenario)
    assert (three.status, three.body) == (202, {"accepted": 3})
    assert ids(publisher.published) == ["o-c-1", "q-c-1", "q-c-2"]
    # An empty batch is accepted as 0 without a publish call: one call in all, the first request's.
    assert (empty.status, empty.body) == (202, {"accepted": 0})
    assert len(publisher.timeouts) == 1


# -- rejected items -----------------------------------------------------------------------------


def test_invalid_items_are_422_with_reasons_and_nothing_is_published(
    boundary: Boundary, publisher: InMemoryPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(boundary, publisher, token=TOKEN)
    missing_queue = queued("c-3")
    del missing_queue["data"]["queue"]
    valid = [offered("c-1"), offered("c-4")]
    invalid = batch(valid[0], queued("c-1", queue="no-such-queue"), missing_queue, valid[1])

    async def scenario(client: TestClient[Any, Any]) -> tuple[Reply, Reply, Reply]:
        rejected = await post(client, invalid, content_type=BATCH_TYPE)
        resent = await post(client, batch(*valid), content_type=BATCH_TYPE)  # the sender fixes, resends
        return rejected, resent, await get(client, "/metrics")

    with caplog.at_level(logging.INFO, logger="availability.webhook"):
        rejected, resent, metrics = run(app, scenario)

    # Items 1 and 2 (0-based, in the request's order) are named with the boundary's reasons:
    # a queue the example agreements do not define (a name, so it may be quoted), and the
    # contract's missing field at `$.data`. All or nothing: the valid items 0 and 3 are not
    # published either, so the sender can resend the whole request once fixed.
    assert rejected.status == 422
    assert rejected.body == {
        "rejected": [
            {"index": 1, "reason": "data.queue: unknown queue 'no-such-queue' (not in the agreements)"},
            {"index": 2, "reason": "data: missing required field `queue`"},
        ],
        "accepted": 0,
    }
    assert (resent.status, resent.body) == (202, {"accepted": 2})
    assert ids(publisher.published) == ["o-c-1", "o-c-4"]  # only the resent request's
    # Two invalid items in one 422 request; the metrics count items and requests apart.
    assert 'availability_webhook_events_total{outcome="rejected"} 2.0' in metrics.body
    assert 'availability_webhook_requests_total{status="422"} 1.0' in metrics.body
    # The reasons are logged; the caller number of the valid items is not.
    assert "[1] data.queue: unknown queue 'no-such-queue'" in caplog.text
    assert CALLER_DIGITS not in caplog.text


def test_unusable_bodies_are_answered_without_publishing(boundary: Boundary, publisher: InMemoryPublisher) -> None:
    app = create_app(boundary, publisher, token=TOKEN, max_body_bytes=64 * 1024, max_event_bytes=4 * 1024)
    huge_item = event("o-big", "call.offered", call_id="c-big", entrance="x" * 5000)
    huge_size = len(json.dumps(huge_item))  # the item's own bytes, as the batch splits them
    latin1 = batch(queued("c-1")).replace(b'"c-1"', b'"c-\xe9"')  # saved as Latin-1: é is the byte E9

    async def scenario(client: TestClient[Any, Any]) -> dict[str, Reply]:
        return {
            "not json": await post(client, b'{"specversion": "1.0", '),
            "batch not array": await post(client, body(queued("c-1")), content_type=BATCH_TYPE),
            "content type": await post(client, body(queued("c-1")), content_type="text/plain"),
            "too large": await post(client, batch(*[queued(f"c-{i}") for i in range(1000)]), content_type=BATCH_TYPE),
            "huge item": await post(client, batch(queued("c-1"), huge_item), content_type=BATCH_TYPE),
            "latin-1": await post(client, latin1, content_type=BATCH_TYPE),
        }

    replies = run(app, scenario)
    # The body as a whole is unusable: 400 with no per-item list (no item can be named).
    assert replies["not json"].status == 400
    assert replies["not json"].body["error"].startswith("not valid JSON")
    assert (replies["batch not array"].status, replies["batch not array"].body) == (
        400,
        {"error": "a batch must be a JSON array of CloudEvents", "accepted": 0},
    )
    assert replies["content type"].status == 415
    # An item saved as Latin-1 is rejected by the boundary with its byte and offset in the item
    # (msgspec 0.23 reports bad UTF-8 as its own DecodeError, earlier versions as Python's
    # UnicodeDecodeError: the same reason either way).
    assert replies["latin-1"].status == 422
    [rejected] = replies["latin-1"].body["rejected"]
    assert rejected["reason"].startswith("not valid UTF-8: byte 0xe9 at offset ")
    # 1000 queued items of ~150 bytes are more than the 64 KiB body limit.
    assert replies["too large"].status == 413
    # An item over max_event_bytes (4 KiB; 5000 x's alone are more) is rejected by its size.
    assert replies["huge item"].status == 422
    assert replies["huge item"].body["rejected"] == [
        {"index": 1, "reason": f"event larger than 4096 bytes ({huge_size})"}
    ]
    assert publisher.published == [] and publisher.timeouts == []


def test_an_item_the_boundary_raises_on_is_rejected_not_a_500(publisher: InMemoryPublisher) -> None:
    class Raising:
        def accept(self, raw: bytes, origin: str = "") -> Event:
            raise ZeroDivisionError("a bug")

    app = create_app(Raising(), publisher, token=TOKEN)  # type: ignore[arg-type]
    reply = run(app, lambda client: post(client, body(queued("c-1"))))
    # The boundary promises not to raise; if it did, the item is named with the error class
    # (never its message, which could quote the input), and the request is a client's 422.
    assert (reply.status, reply.body) == (
        422,
        {"rejected": [{"index": 0, "reason": "not usable JSON (ZeroDivisionError)"}], "accepted": 0},
    )
    assert publisher.published == []


# -- Kafka away -----------------------------------------------------------------------------------


def test_publisher_away_is_503_with_retry_after_and_a_retry_loses_nothing(
    boundary: Boundary, publisher: InMemoryPublisher
) -> None:
    app = create_app(boundary, publisher, token=TOKEN)
    payload = batch(queued("c-1"), offered("c-1"))

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        publisher.connected = False
        away = [await post(client, payload, content_type=BATCH_TYPE), await get(client, "/healthz")]
        publisher.connected = True
        back = [await post(client, payload, content_type=BATCH_TYPE), await get(client, "/healthz")]
        return [*away, *back, await get(client, "/metrics")]

    refused, degraded, accepted, healthy, metrics = run(app, scenario)
    # The publisher's PublishError becomes 503 with its message and its retry_after (7 s here).
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "7"
    assert refused.body == {"error": "not connected to Kafka at memory://", "accepted": 0}
    assert (degraded.status, degraded.body) == (503, {"status": "degraded", "kafka": "unreachable"})
    # Nothing was taken while away; the sender kept the request and its retry publishes every
    # event exactly once.
    assert (accepted.status, accepted.body) == (202, {"accepted": 2})
    assert (healthy.status, healthy.body) == (200, {"status": "ok"})
    assert ids(publisher.published) == ["q-c-1", "o-c-1"]
    assert len(publisher.timeouts) == 2  # the refused call and the accepted one
    # Only acknowledged events count as accepted; both attempts were timed.
    assert 'availability_webhook_events_total{outcome="accepted"} 2.0' in metrics.body
    assert 'availability_webhook_requests_total{status="503"} 1.0' in metrics.body
    assert 'availability_webhook_requests_total{status="202"} 1.0' in metrics.body
    assert "availability_webhook_publish_seconds_count 2.0" in metrics.body


# -- /healthz and /metrics ----------------------------------------------------------------------


def test_healthz_follows_the_publisher(boundary: Boundary, publisher: InMemoryPublisher) -> None:
    class WithoutConnected:  # a publisher that cannot tell (KafkaPublisher) is taken as connected
        def publish(self, events: Iterable[Event], timeout: float = 30.0) -> int:
            return len(list(events))

    async def health(client: TestClient[Any, Any]) -> Reply:
        return await get(client, "/healthz")

    plain = run(create_app(boundary, WithoutConnected(), token=TOKEN), health)
    connected = run(create_app(boundary, publisher, token=TOKEN), health)
    assert (plain.status, plain.body) == (200, {"status": "ok"})
    assert (connected.status, connected.body) == (200, {"status": "ok"})
    # /healthz never publishes (it asks `connected`, not Kafka).
    assert publisher.timeouts == []


def test_metrics_count_events_requests_and_publish_time(boundary: Boundary, publisher: InMemoryPublisher) -> None:
    app = create_app(boundary, publisher, token=TOKEN)

    async def scenario(client: TestClient[Any, Any]) -> Reply:
        await post(client, batch(offered("c-1"), queued("c-1")), content_type=BATCH_TYPE)
        await post(client, body(queued("c-2")), token="wrong")
        return await get(client, "/metrics")

    metrics = run(app, scenario)
    assert metrics.status == 200
    # Prometheus text exposition, in the version the installed client writes
    assert metrics.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert CONTENT_TYPE_LATEST.startswith("text/plain; version=")
    text = metrics.body
    # One 202 request of two events, one 401; both outcomes are shown from the start (0 rejected).
    assert 'availability_webhook_events_total{outcome="accepted"} 2.0' in text
    assert 'availability_webhook_events_total{outcome="rejected"} 0.0' in text
    assert 'availability_webhook_requests_total{status="202"} 1.0' in text
    assert 'availability_webhook_requests_total{status="401"} 1.0' in text
    assert "availability_webhook_publish_seconds_count 1.0" in text  # the 401 never reached publish
    assert CALLER_DIGITS not in text
    # The registry is the app's own: a second app starts from zero.
    fresh = run(create_app(boundary, publisher, token=TOKEN), lambda client: get(client, "/metrics"))
    assert 'availability_webhook_events_total{outcome="accepted"} 0.0' in fresh.body
