"""The Faust worker (`availability stream`): thin agents over the calls, agents and mail
topics that hand each message to the WarehouseSink, which calls the same Deriver as the
replay. Offsets are committed only for messages the sink acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from availability.settings import Settings
from availability.warehouse import Warehouse
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.publisher import KafkaPublisher
from schemas.agreements import Agreements
from schemas.topics import AGENTS, CALLS, DEAD_LETTER, MAIL, Topic, with_prefix
from stream_jobs.deriver import Deriver
from stream_jobs.sink import WarehouseSink

log = logging.getLogger(__name__)


class StreamApp(faust.App):
    """Flushes the sink before the consumer commits on shutdown (SIGTERM)."""

    sink: WarehouseSink | None = None

    async def on_stop(self) -> None:
        if self.sink is not None:
            try:
                self.sink.flush()
            except Exception:  # the messages stay uncommitted and come again on restart
                log.exception("final flush failed; unacknowledged messages will be redelivered")
        await super().on_stop()


def build_app(
    settings: Settings,
    agreements: Agreements,
    warehouse: Warehouse,
    *,
    web_host: str = "127.0.0.1",
    web_port: int = 6066,
    max_events: int = 5000,
    max_seconds: float = 0.5,
    app_id: str = "availability-stream",
) -> StreamApp:
    prefix = settings.topic_prefix
    app = StreamApp(
        prefix + app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        web_enabled=True,
        web_host=web_host,
        web_port=web_port,
        web_in_thread=False,
        topic_disable_leader=True,
        topic_allow_declare=False,  # `availability topics create` owns the topics
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,  # on_stop flushes the sink; then the acked offsets are committed
        broker_commit_interval=1.0,
        # A killed worker's partitions go to a new one after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_max_poll_records=5000,
    )

    def topic(t: Topic) -> Any:
        t = with_prefix(t, prefix)
        return app.topic(
            t.name,
            partitions=t.partitions,
            key_serializer="raw",
            value_serializer="raw",
            key_type=bytes,
            value_type=bytes,
        )

    dead_letters = KafkaPublisher(settings.kafka_bootstrap_servers, prefix)

    def dead_letter(value: bytes, key: bytes | None, reason: str) -> None:
        dead_letters.publish_raw(DEAD_LETTER, key, value, [("reason", reason.encode())])

    key = settings.pseudonym_key.get_secret_value().encode()
    sink = WarehouseSink(
        Boundary(agreements, Pseudonymiser(key, agreements)),
        Deriver(warehouse, agreements),
        dead_letter,
        max_events=max_events,
        max_seconds=max_seconds,
    )
    app.sink = sink
    metrics = _Metrics(app, sink)

    async def consume(stream: Any) -> None:
        # Thin: no decoding or deriving here; acks are the sink's to give.
        async for event in stream.noack().events():
            metrics.seen(event)
            sink.add(event.value, event.key, event.ack)

    for t in (CALLS, AGENTS, MAIL):
        app.agent(topic(t), name=f"{t.name.removeprefix('availability.')}-agent")(consume)

    async def flush_when_due() -> None:
        if sink.due():
            try:
                sink.flush()
            except Exception:
                log.exception("writing a batch to the warehouse failed; will retry")
                await asyncio.sleep(1.0)

    app.timer(interval=max(0.05, max_seconds / 2))(flush_when_due)

    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(metrics_page)

    return app


class _Metrics:
    """Pipeline health on /metrics: events processed and rejected, batch latency, lag."""

    def __init__(self, app: faust.App, sink: WarehouseSink) -> None:
        self.registry = CollectorRegistry()
        self.app = app
        self.positions: dict[tuple[str, int], int] = {}
        events = Counter(
            "availability_stream_events", "Events written to the warehouse or rejected", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        batch = Histogram(
            "availability_stream_batch_seconds", "Time to store a batch until the warehouse acknowledged it",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=self.registry,
        )  # fmt: skip
        self.last_event = Gauge(
            "availability_stream_last_message_timestamp_seconds", "Kafka timestamp of the latest message consumed",
            ["topic"], registry=self.registry,
        )  # fmt: skip

        def observe(processed: int, rejected: int, seconds: float) -> None:
            events.labels("processed").inc(processed)
            events.labels("rejected").inc(rejected)
            batch.observe(seconds)

        sink.stats.observers.append(observe)
        self.registry.register(_LagCollector(self))

    def seen(self, event: Any) -> None:
        message = event.message
        self.positions[(message.topic, message.partition)] = message.offset + 1
        self.last_event.labels(message.topic).set(message.timestamp or 0)


class _LagCollector(Collector):
    def __init__(self, metrics: _Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "availability_stream_consumer_lag",
            "Messages in the partition not yet consumed",
            labels=["topic", "partition"],
        )
        consumer = self.metrics.app.consumer
        for tp in consumer.assignment():
            position = self.metrics.positions.get((tp.topic, tp.partition))
            highwater = consumer.highwater(tp)
            if highwater is not None and position is not None:
                family.add_metric([tp.topic, str(tp.partition)], max(0, highwater - position))
        yield family


def run(
    settings: Settings,
    agreements: Agreements,
    warehouse_target: str,
    *,
    web_port: int,
    loglevel: str,
    max_events: int = 5000,
    max_seconds: float = 0.5,
) -> None:
    """Run until SIGTERM/SIGINT; then flush, commit and exit."""
    with Warehouse.open(warehouse_target) as warehouse:
        app = build_app(
            settings, agreements, warehouse, web_port=web_port, max_events=max_events, max_seconds=max_seconds
        )
        worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=True)
        worker.execute_from_commandline()
