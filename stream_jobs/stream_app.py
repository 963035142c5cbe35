"""The stream worker (`availability stream`): a Faust app whose consumer reads the calls,
agents and mail topics in batches and hands each batch to the WarehouseSink, which calls the
same Deriver as the replay. A batch's offsets are committed only after the sink returned.

Why batches and not one Faust agent per message: measured on this project's 2-core machine,
Faust's per-message stream machinery tops out near 11 000 messages/s with an agent that does
nothing, below the 20 000 events/s this worker must sustain, while the warehouse wants
batches anyway. So Faust hosts the worker (lifecycle, signals, the web server for /metrics,
timers) and the consumer is aiokafka, Faust's own Kafka client, fetching batches with
`getmany` and committing exactly the offsets the warehouse acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from availability.settings import Settings
from availability.warehouse import Warehouse
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.publisher import KafkaPublisher
from schemas.agreements import Agreements
from schemas.topics import AGENTS, CALLS, DEAD_LETTER, EVENT_TOPICS, MAIL, partition_of, with_prefix
from stream_jobs.deriver import Deriver
from stream_jobs.live import LiveState
from stream_jobs.sink import Message, WarehouseSink

log = logging.getLogger(__name__)
GROUP = "availability-stream"


class BatchConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Fetch a batch, write it through the sink, commit its offsets; again until stopped."""

    def __init__(
        self,
        settings: Settings,
        sink: WarehouseSink,
        metrics: _Metrics,
        live: LiveState,
        *,
        max_events: int,
        max_seconds: float,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.live = live
        self.prefix = settings.topic_prefix
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.topics = [with_prefix(t, settings.topic_prefix).name for t in EVENT_TOPICS]
        self.bootstrap = settings.kafka_bootstrap_servers.split(",")
        self.group = settings.topic_prefix + GROUP
        self.consumer: AIOKafkaConsumer | None = None  # made in run(): it needs the running loop
        self._stored: dict[TopicPartition, int] = {}  # stored, maybe not yet committed

    async def run(self) -> None:
        self.consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,  # offsets move only after the warehouse acknowledged
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,  # a killed worker's partitions move on after 10 s
            heartbeat_interval_ms=3_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        consumer.subscribe(self.topics, listener=self)
        self.metrics.consumer = consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=int(self.max_seconds * 1000), max_records=self.max_events)
            except ConsumerStoppedError:
                return  # stop() committed and left the group
            if not batches:
                continue
            messages = [Message(r.value, r.key, r.timestamp / 1000) for records in batches.values() for r in records]
            self.sink.write(messages)  # synchronous: returns when the warehouse acknowledged
            for tp, records in batches.items():
                self._stored[tp] = records[-1].offset + 1
                self.metrics.positions[tp] = records[-1].offset + 1
            await self._commit()

    async def _commit(self) -> None:
        if self._stored and self.consumer is not None:
            offsets, self._stored = dict(self._stored), {}
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance under way: the batches come again, harmlessly
                log.warning("commit failed (%s); stored batches will be redelivered", type(exc).__name__)

    async def stop(self) -> None:
        """Commit what is stored, leave the group (SIGTERM)."""
        if self.consumer is None:
            return
        try:
            await self._commit()
        finally:
            await self.consumer.stop()

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._commit()  # what this worker stored stays counted as stored
        self.sink.deriver.forget()  # entities may move to other workers; reload when touched

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.sink.deriver.forget()
        owned = set(assigned)
        topics = {"call": CALLS, "mail": MAIL, "agent": AGENTS}

        def owns(kind: str, key: str) -> bool:
            topic = topics[kind]
            return TopicPartition(with_prefix(topic, self.prefix).name, partition_of(key, topic)) in owned

        # The live gauges show exactly the entities of this worker's partitions (they sum).
        self.live.restore(self.sink.deriver.warehouse, owns)


class StreamApp(faust.App):
    """Stops the batch consumer (commit, leave the group) before Faust shuts down."""

    batch_consumer: BatchConsumer | None = None

    async def on_stop(self) -> None:
        if self.batch_consumer is not None:
            try:
                await self.batch_consumer.stop()
            except Exception:  # uncommitted batches are stored already; they come again, harmlessly
                log.exception("final commit failed; the last batches will be redelivered")
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
) -> StreamApp:
    prefix = settings.topic_prefix
    app = StreamApp(
        prefix + GROUP + "-app",
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        web_enabled=True,
        web_host=web_host,
        web_port=web_port,
        topic_disable_leader=True,
        topic_allow_declare=False,  # `availability topics create` owns the topics
        broker_session_timeout=10.0,  # as the batch consumer: a killed worker is replaced in 10 s
        broker_heartbeat_interval=3.0,
    )
    dead_letters = KafkaPublisher(settings.kafka_bootstrap_servers, prefix)

    def dead_letter(value: bytes, key: bytes | None, reason: str) -> None:
        dead_letters.publish_raw(DEAD_LETTER, key, value, [("reason", reason.encode())])

    key = settings.pseudonym_key.get_secret_value().encode()
    deriver = Deriver(warehouse, agreements, track_changes=True)
    sink = WarehouseSink(Boundary(agreements, Pseudonymiser(key, agreements)), deriver, dead_letter)
    metrics = _Metrics(sink)
    live = LiveState(agreements)  # the wall's and the alerts' metrics (docs/live-metrics.md)
    sink.on_stored.append(live.observe)
    metrics.registry.register(live)
    consumer = BatchConsumer(settings, sink, metrics, live, max_events=max_events, max_seconds=max_seconds)
    app.batch_consumer = consumer
    app.task(consumer.run)

    # A thin Faust agent watches the dead-letter topic (what any worker rejected), so
    # /metrics shows rejections across all workers and the logs say why, per message.
    dead = with_prefix(DEAD_LETTER, prefix)
    dead_topic = app.topic(dead.name, partitions=dead.partitions, key_serializer="raw", value_serializer="raw")

    async def watch_dead_letters(stream: Any) -> None:
        async for event in stream.events():
            headers = dict(event.headers or {})
            reason = headers.get("reason", b"?").decode("utf-8", "replace")
            metrics.dead_letters.inc()
            log.warning(
                "dead letter at %s[%s]@%s: %s", dead.name, event.message.partition, event.message.offset, reason
            )

    app.agent(dead_topic, name="dead-letters")(watch_dead_letters)

    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(metrics_page)
    return app


class _Metrics(Collector):
    """Pipeline health on /metrics: events processed and rejected, batch latency, freshness, lag."""

    def __init__(self, sink: WarehouseSink) -> None:
        self.registry = CollectorRegistry()
        self.consumer: AIOKafkaConsumer | None = None
        self.positions: dict[TopicPartition, int] = {}
        events = Counter(
            "availability_stream_events", "Events written to the warehouse or rejected", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        batch = Histogram(
            "availability_stream_batch_seconds", "Time to store a batch until the warehouse acknowledged it",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=self.registry,
        )  # fmt: skip
        freshness = Histogram(
            "availability_stream_publish_to_stored_seconds",
            "From a message's Kafka timestamp to its rows being queryable in the warehouse",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "availability_stream_dead_letters", "Messages on the dead-letter topic (from all workers)",
            registry=self.registry,
        )  # fmt: skip
        last = Gauge(
            "availability_stream_last_batch_timestamp_seconds", "When the last batch was stored",
            registry=self.registry,
        )  # fmt: skip

        def observe(processed: int, rejected: int, seconds: float, latencies: list[float]) -> None:
            events.labels("processed").inc(processed)
            events.labels("rejected").inc(rejected)
            batch.observe(seconds)
            for latency in latencies:
                freshness.observe(latency)
            last.set_to_current_time()

        sink.stats.observers.append(observe)
        self.registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "availability_stream_consumer_lag",
            "Messages in the partition after the last one stored",
            labels=["topic", "partition"],
        )
        consumer = self.consumer
        if consumer is not None:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                position = self.positions.get(tp)
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
    """Run until SIGTERM/SIGINT; then commit what is stored and exit."""
    with Warehouse.open(warehouse_target) as warehouse:
        app = build_app(
            settings, agreements, warehouse, web_port=web_port, max_events=max_events, max_seconds=max_seconds
        )
        worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=True)
        worker.execute_from_commandline()
