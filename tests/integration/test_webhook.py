"""The CallGuide webhook (ingest/webhook.py) against a real Kafka broker.

Every test publishes under its own topic prefix and reads back what reached the broker with
a plain KafkaConsumer. The outage test runs a second, private broker (deploy/dev/kafka.sh on
other ports and another data directory) that it stops and starts; the shared one is untouched.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from availability.settings import Settings
from availability.wiring import Wiring
from ingest.boundary import Boundary
from ingest.kafka.publisher import KafkaPublisher
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from ingest.webhook import BATCH_TYPE, WebhookError, create_app, create_service_app
from schemas.agreements import Agreements, load_agreements
from schemas.events import encode
from schemas.topics import CALLS, EVENT_TOPICS, with_prefix
from tests import webhook_client
from tests.webhook_client import SINGLE, Reply, get, run

pytestmark = pytest.mark.integration

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "kafka.sh"
TOKEN = "webhook-test-token"
CALLER = "+46 70-123 45 67"
CALLER_DIGITS = "701234567"  # in any notation of the number
_tests = itertools.count(1)


# -- helpers ------------------------------------------------------------------------------------


# The token every test of this file posts with unless it says otherwise.
post = functools.partial(webhook_client.post, token=TOKEN)


_ids = itertools.count(1)


def event(type_: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"wh-{next(_ids)}",
        "source": "callguide",
        "type": type_,
        "time": "2026-03-02T09:00:00+01:00",
        "data": data,
    }


def offered(call_id: str) -> dict[str, Any]:
    return event("call.offered", call_id=call_id, entrance="0771-100 100", caller=CALLER)


def queued(call_id: str, queue: str = "kundreskontra") -> dict[str, Any]:
    return event("call.queued", call_id=call_id, queue=queue)


def body(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode()


def batch(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record on `topic` now (none if it does not exist)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{topic}: read {len(records)} records, end offsets {end}"
            for batch_ in consumer.poll(timeout_ms=500).values():
                records.extend(batch_)
        return records
    finally:
        consumer.close()


def read_events(bootstrap: str, prefix: str) -> list[Any]:
    return [r for topic in EVENT_TOPICS for r in read_topic(bootstrap, with_prefix(topic, prefix).name)]


def ids_of(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


# -- fixtures -----------------------------------------------------------------------------------


def service_app(settings: Settings, publish_timeout: float = 10.0) -> web.Application:
    """The app `availability ingest webhook` serves, wired from these settings."""
    wiring = Wiring(settings)
    return create_service_app(
        wiring.boundary(load_agreements(), live=True),
        wiring.reconnecting_publisher(),
        token=wiring.webhook_token(),
        publish_timeout=publish_timeout,
    )


@pytest.fixture(scope="module")
def shipped_agreements() -> Agreements:
    return load_agreements()  # the simulator's queues and mailboxes


@pytest.fixture(scope="module")
def boundary(shipped_agreements: Agreements) -> Boundary:
    return Boundary(shipped_agreements, Pseudonymiser(b"webhook-test-key", shipped_agreements))


@pytest.fixture
def prefix(topic_prefix: str) -> str:
    """The session's prefix, narrowed to this test, so each test sees only its own messages."""
    return f"{topic_prefix}{next(_tests)}."


@pytest.fixture
def publisher(kafka_bootstrap: str, prefix: str) -> Iterator[KafkaPublisher]:
    with KafkaPublisher(kafka_bootstrap, prefix) as pub:
        yield pub


# -- authentication -----------------------------------------------------------------------------


def test_refuses_to_build_an_open_webhook_unless_asked(boundary: Boundary, publisher: KafkaPublisher) -> None:
    with pytest.raises(WebhookError, match="AVAILABILITY_WEBHOOK_TOKEN"):
        create_app(boundary, publisher, token=None)
    with pytest.raises(WebhookError, match="empty"):
        create_app(boundary, publisher, token="  ")
    create_app(boundary, publisher, token=None, allow_anonymous=True)
    with pytest.raises(WebhookError, match="--allow-anonymous"):
        service_app(Settings(webhook_token=None))


def test_missing_or_wrong_token_is_401_and_nothing_is_published(
    boundary: Boundary, publisher: KafkaPublisher, kafka_bootstrap: str, prefix: str
) -> None:
    app = create_app(boundary, publisher, token=TOKEN)

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        return [
            await post(client, body(queued("c-none")), token=None),
            await post(client, body(queued("c-wrong")), token="not-the-token"),
            await post(client, body(queued("c-prefix")), token=TOKEN[:-1]),
            await post(client, body(queued("c-ok"))),
        ]

    missing, wrong, prefixed, ok = run(app, scenario)
    for reply in (missing, wrong, prefixed):
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert ok.status == 202
    records = read_topic(kafka_bootstrap, with_prefix(CALLS, prefix).name)
    assert [r.key for r in records] == [b"c-ok"]


def test_anonymous_posts_when_explicitly_allowed(
    boundary: Boundary, publisher: KafkaPublisher, kafka_bootstrap: str, prefix: str
) -> None:
    app = create_app(boundary, publisher, token=None, allow_anonymous=True)
    reply = run(app, lambda client: post(client, body(queued("c-anon")), token=None))
    assert (reply.status, reply.body) == (202, {"accepted": 1})
    assert [r.key for r in read_topic(kafka_bootstrap, with_prefix(CALLS, prefix).name)] == [b"c-anon"]


# -- accepted events ----------------------------------------------------------------------------


def test_single_event_is_acknowledged_keyed_and_pseudonymised(
    boundary: Boundary, publisher: KafkaPublisher, kafka_bootstrap: str, prefix: str
) -> None:
    app = create_app(boundary, publisher, token=TOKEN)

    async def scenario(client: TestClient[Any, Any]) -> list[Reply]:
        return [
            await post(client, body(offered("c-1"))),
            await post(client, body(queued("c-1")), content_type="application/json; charset=utf-8"),
            await get(client, "/healthz"),
            await get(client, "/metrics"),
        ]

    first, second, health, metrics = run(app, scenario)
    assert (first.status, first.body) == (202, {"accepted": 1})
    assert (second.status, second.body) == (202, {"accepted": 1})
    assert (health.status, health.body) == (200, {"status": "ok"})

    records = read_topic(kafka_bootstrap, with_prefix(CALLS, prefix).name)
    assert [r.key for r in records] == [b"c-1", b"c-1"]
    value = records[0].value.decode()
    assert CALLER_DIGITS not in value and CALLER not in value
    data = json.loads(value)["data"]
    assert "caller" not in data
    assert len(data["caller_ref"]) == 32

    assert metrics.status == 200
    text = metrics.body
    assert 'availability_webhook_events_total{outcome="accepted"} 2.0' in text
    assert 'availability_webhook_requests_total{status="202"} 2.0' in text
    assert "availability_webhook_publish_seconds_count 2.0" in text
    assert CALLER_DIGITS not in text


def test_10000_event_batch_is_accepted_and_all_reach_kafka(
    boundary: Boundary, publisher: KafkaPublisher, kafka_bootstrap: str, prefix: str, shipped_agreements: Agreements
) -> None:
    events = list(itertools.islice(simulate(shipped_agreements, date(2026, 3, 2), 1, seed=1, scale=4), 10_000))
    assert len(events) == 10_000
    payload = b"[" + b",".join(encode(ev) for ev in events) + b"]"
    assert len(payload) > 1024 * 1024  # more than aiohttp's default body limit
    app = create_app(boundary, publisher, token=TOKEN)

    reply = run(app, lambda client: post(client, payload, content_type=BATCH_TYPE))

    assert (reply.status, reply.body) == (202, {"accepted": 10_000})
    records = read_events(kafka_bootstrap, prefix)
    assert sorted(ids_of(records)) == sorted(ev.id for ev in events)
    for r in records:
        data = json.loads(r.value)["data"]
        assert not {"caller", "sender", "subject"} & data.keys()  # personal fields of the payload


# -- rejected requests --------------------------------------------------------------------------


def test_batch_with_invalid_items_is_422_and_nothing_is_published(
    boundary: Boundary,
    publisher: KafkaPublisher,
    kafka_bootstrap: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing_queue = queued("c-3")
    del missing_queue["data"]["queue"]
    invalid = batch(offered("c-1"), queued("c-1", queue="no-such-queue"), missing_queue, offered("c-4"))
    sentinel = queued("c-sentinel")
    app = create_app(boundary, publisher, token=TOKEN)

    async def scenario(client: TestClient[Any, Any]) -> tuple[Reply, Reply, Reply]:
        rejected = await post(client, invalid, content_type=BATCH_TYPE)
        accepted = await post(client, body(sentinel))  # proves reading the topic would see events
        return rejected, accepted, await get(client, "/metrics")

    with caplog.at_level(logging.INFO, logger="availability.webhook"):
        rejected, accepted, metrics = run(app, scenario)

    assert rejected.status == 422
    assert rejected.body["accepted"] == 0
    assert [item["index"] for item in rejected.body["rejected"]] == [1, 2]
    assert "unknown queue 'no-such-queue'" in rejected.body["rejected"][0]["reason"]
    assert "missing required field `queue`" in rejected.body["rejected"][1]["reason"]
    assert accepted.status == 202
    assert ids_of(read_events(kafka_bootstrap, prefix)) == [sentinel["id"]]
    assert 'availability_webhook_events_total{outcome="rejected"} 2.0' in metrics.body
    assert 'availability_webhook_requests_total{status="422"} 1.0' in metrics.body
    assert "no-such-queue" in caplog.text  # the reason is logged ...
    assert CALLER_DIGITS not in caplog.text  # ... the caller number of the valid items is not


def test_unusable_bodies(boundary: Boundary, publisher: KafkaPublisher, kafka_bootstrap: str, prefix: str) -> None:
    app = create_app(boundary, publisher, token=TOKEN, max_body_bytes=64 * 1024, max_event_bytes=4 * 1024)
    # A fixed id: the size in the reason must not depend on how many events earlier tests made.
    huge_item = event("call.offered", call_id="c-big", entrance="x" * 5000) | {"id": "wh-huge"}

    async def scenario(client: TestClient[Any, Any]) -> dict[str, Reply]:
        return {
            "not json": await post(client, b'{"specversion": "1.0", '),
            "batch not array": await post(client, body(queued("c-1")), content_type=BATCH_TYPE),
            "content type": await post(client, body(queued("c-1")), content_type="text/plain"),
            "too large": await post(client, batch(*[queued(f"c-{i}") for i in range(1000)]), content_type=BATCH_TYPE),
            "huge item": await post(client, batch(queued("c-1"), huge_item), content_type=BATCH_TYPE),
            "empty batch": await post(client, b"[]", content_type=BATCH_TYPE),
            "metrics": await get(client, "/metrics"),
        }

    replies = run(app, scenario)
    assert replies["not json"].status == 400
    assert replies["not json"].body["error"].startswith("not valid JSON")
    assert replies["batch not array"].status == 400
    assert "JSON array" in replies["batch not array"].body["error"]
    assert replies["content type"].status == 415
    assert replies["too large"].status == 413
    assert replies["huge item"].status == 422
    # 5169 bytes: the item's JSON as posted (json.dumps), with its fixed id.
    assert replies["huge item"].body["rejected"] == [{"index": 1, "reason": "event larger than 4096 bytes (5169)"}]
    assert (replies["empty batch"].status, replies["empty batch"].body) == (202, {"accepted": 0})
    for status in (400, 413, 415, 422):
        assert f'availability_webhook_requests_total{{status="{status}"}}' in replies["metrics"].body
    assert read_events(kafka_bootstrap, prefix) == []


# -- Kafka outage -------------------------------------------------------------------------------


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _any_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateBroker:
    """A broker of our own (deploy/dev/kafka.sh), to stop and start without disturbing others."""

    def __init__(self, data_dir: Path) -> None:
        port, controller = (19092, 19093) if _free(19092) and _free(19093) else (_any_free_port(), _any_free_port())
        self.address = f"127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        self.env |= {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller), "KAFKA_DATA_DIR": str(data_dir)}

    def _run(self, command: str) -> None:
        done = subprocess.run([str(KAFKA_SH), command], env=self.env, capture_output=True, text=True, timeout=150)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed: {done.stderr[-2000:]}")

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def private_broker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


def test_kafka_outage_is_503_with_retry_after_until_kafka_is_back(private_broker: PrivateBroker, prefix: str) -> None:
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=private_broker.address,  # type: ignore[call-arg]  # the field's alias
        topic_prefix=prefix,
        webhook_token=SecretStr(TOKEN),
    )
    app = service_app(settings, publish_timeout=3)
    first = batch(queued("c-before-start"), offered("c-before-start"))
    second = batch(queued("c-during-outage"), offered("c-during-outage"))

    def unavailable(reply: Reply) -> None:
        assert reply.status == 503, reply
        assert int(reply.headers["Retry-After"]) > 0
        assert reply.body["accepted"] == 0

    async def until_accepted(client: TestClient[Any, Any], payload: bytes) -> Reply:
        deadline = time.monotonic() + 60
        while True:
            reply = await post(client, payload, content_type=BATCH_TYPE)
            if reply.status == 202 or time.monotonic() > deadline:
                return reply
            unavailable(reply)
            await asyncio.sleep(0.5)

    async def health_becomes(client: TestClient[Any, Any], status: int) -> Reply:
        deadline = time.monotonic() + 20
        while True:
            reply = await get(client, "/healthz")
            if reply.status == status or time.monotonic() > deadline:
                return reply
            await asyncio.sleep(0.25)

    degraded = (503, {"status": "degraded", "kafka": "unreachable"})

    async def scenario(client: TestClient[Any, Any]) -> None:
        loop = asyncio.get_running_loop()
        # The webhook starts while Kafka is down, answers at once, and says it is degraded
        # (issue #7, item 18: /healthz said ok while Kafka was down).
        started = time.monotonic()
        unavailable(await post(client, first, content_type=BATCH_TYPE))
        assert time.monotonic() - started < 5
        health = await get(client, "/healthz")
        assert (health.status, health.body) == degraded

        await loop.run_in_executor(None, private_broker.start)
        reply = await until_accepted(client, first)
        assert (reply.status, reply.body) == (202, {"accepted": 2})
        health = await get(client, "/healthz")
        assert (health.status, health.body) == (200, {"status": "ok"})

        # Kafka goes away while the webhook is connected, then comes back.
        await loop.run_in_executor(None, private_broker.stop)
        health = await health_becomes(client, 503)  # without a request failing first
        assert (health.status, health.body) == degraded
        unavailable(await post(client, second, content_type=BATCH_TYPE))
        await loop.run_in_executor(None, private_broker.start)
        reply = await until_accepted(client, second)
        assert (reply.status, reply.body) == (202, {"accepted": 2})
        health = await health_becomes(client, 200)
        assert (health.status, health.body) == (200, {"status": "ok"})

    run(app, scenario)
    ids = set(ids_of(read_events(private_broker.address, prefix)))
    wanted = {json.loads(first)[i]["id"] for i in (0, 1)} | {json.loads(second)[i]["id"] for i in (0, 1)}
    assert wanted <= ids  # at least once: a request answered 503 may still have landed


# -- the command ------------------------------------------------------------------------------

SERVE = """
from availability.cli import main
raise SystemExit(main(["ingest", "webhook", "--port", "0"]))
"""


def test_serve_prints_its_address_and_stops_cleanly_on_sigterm(kafka_bootstrap: str, prefix: str) -> None:
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AVAILABILITY_TOPIC_PREFIX": prefix,
        "AVAILABILITY_WEBHOOK_TOKEN": TOKEN,
    }
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "webhook listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        request = urllib.request.Request(
            f"{url}/events",
            data=body(queued("c-serve")),
            headers={"Content-Type": SINGLE, "Authorization": f"Bearer {TOKEN}"},
        )
        deadline = time.monotonic() + 20
        while True:  # Kafka is connected in the background just after start: 503 until then
            try:
                with urllib.request.urlopen(request, timeout=20) as resp:
                    assert (resp.status, json.load(resp)) == (202, {"accepted": 1})
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and time.monotonic() < deadline, exc
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        stderr = proc.stderr.read()
        proc.stdout.close()  # both pipes: else the garbage collector closes them, with a ResourceWarning
        proc.stderr.close()
    assert CALLER_DIGITS not in stderr
    assert [r.key for r in read_topic(kafka_bootstrap, with_prefix(CALLS, prefix).name)] == [b"c-serve"]
