"""The stream worker (`availability stream`): a Faust app whose consumer reads the calls,
agents and mail topics in batches and hands each batch to the WarehouseSink, which calls the
same Deriver as the replay. A batch's offsets are committed only after the sink returned.

Why batches and not one Faust agent per message: measured on this project's 2-core machine,
Faust's per-message stream machinery tops out near 11 000 messages/s with an agent that does
nothing, below the 20 000 events/s this worker must sustain, while the warehouse wants
batches anyway. So Faust hosts the worker (lifecycle, signals, the web server for /metrics,
timers) and the consumer is aiokafka, Faust's own Kafka client, fetching batches with
`getmany` and committing exactly the offsets the warehouse acknowledged.

No message stops the worker (stream_jobs/worker/sink.py isolates each poison message). When the
warehouse does not answer, the batch is fetched again and retried with backoff, and nothing is
committed. The worker refuses to start on a warehouse that lacks what its consumer group has
already committed (a fresh or restored warehouse), and says how to fill it: `--from-beginning`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.boundary import Boundary
from ingest.kafka.publisher import KafkaPublisher, PublishError, partition_of
from ingest.log_limit import CLIENT_LOGGERS, limit_repeats, plain_logging
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements
from schemas.errors import AvailabilityError
from schemas.topics import AGENTS, CALLS, DEAD_LETTER, EVENT_TOPICS, MAIL, with_prefix
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.outlook import predict_all
from stream_jobs.warehouse import Warehouse, redact
from stream_jobs.worker.control import Jobs
from stream_jobs.worker.serving import Serving, SqlOptions
from stream_jobs.worker.sink import DEAD_LETTER_LOGGER, DeadLetters, Message, SinkUnavailable, WarehouseSink, dead_log
from stream_jobs.worker.source_health import SourceHealth

log = logging.getLogger(__name__)
outlook_log = logging.getLogger(f"{__name__}.outlook")  # at most a line a minute (a failure recurs each scrape)
GROUP = "availability-stream"
RETRY_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)  # between attempts to store a batch the warehouse did not take
POSITIONS_SQL = "SELECT topic, partition, max(next_offset) FROM stream_positions GROUP BY topic, partition"
DEAD_LETTER_FILE = "dead-letters.jsonl"


class StreamRefused(AvailabilityError):
    """The worker would silently miss events; the message says why and what to run."""


def default_dead_letter_file(warehouse_target: str) -> Path:
    """Where dead letters go when the dead-letter topic cannot take them: inside a warehouse
    directory (owner-only, like the warehouse), else in the user's state directory."""
    if not warehouse_target.startswith(("http://", "https://")):
        return Path(warehouse_target).expanduser().resolve() / DEAD_LETTER_FILE
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "availability" / DEAD_LETTER_FILE


def warehouse_gap(warehouse: Warehouse, committed: Mapping[tuple[str, int], int], group: str) -> str | None:
    """Why the warehouse lacks messages the consumer group has committed, or None.

    The sink records, per topic and partition, the offset after the last batch the warehouse
    holds (schemas/ddl/005_stream_positions.sql), always before the batch is committed. A
    committed offset beyond it means a fresh warehouse, or one restored from a backup."""
    stored = {(str(t), int(p)): int(o) for t, p, o in warehouse.query(POSITIONS_SQL)}
    behind = {tp: (stored.get(tp, 0), offset) for tp, offset in committed.items() if offset > stored.get(tp, 0)}
    if not behind:
        return None
    if not stored and warehouse.query("SELECT count() FROM events")[0][0] > 0:
        log.warning(
            "the warehouse records no stream positions (written by `process` or an older version); "
            "it cannot be checked against consumer group %s",
            group,
        )
        return None
    missing = sum(c - s for s, c in behind.values())
    where = ", ".join(f"{t}[{p}] holds {s} of {c}" for (t, p), (s, c) in sorted(behind.items())[:3])
    more = f" and {len(behind) - 3} more partitions" if len(behind) > 3 else ""
    return (
        f"the warehouse {redact(warehouse.target)} lacks {missing} messages that consumer group {group} has already "
        f"committed ({where}{more}): it is new, or older than the group. Refusing to run, since it would only get "
        "what arrives from now on. Run `availability stream --from-beginning` to read the topics from their start "
        "into it (repeats are harmless), or give the warehouse this group wrote to"
    )


def committed_offsets(bootstrap: str, group: str, topics: Sequence[str]) -> dict[tuple[str, int], int] | None:
    """The consumer group's committed offsets of these topics; None if the broker does not say."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError as ClientError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
        )
    except ClientError:
        return None
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except ClientError:
        return None
    finally:
        admin.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items() if tp.topic in topics and om.offset >= 0}


class BatchConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Fetch a batch, write it through the sink, commit its offsets; again until stopped."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        warehouse: Warehouse,
        sink: WarehouseSink,
        metrics: PipelineMetrics,
        live: LiveState,
        *,
        max_events: int,
        max_seconds: float,
        from_beginning: bool = False,
        make_consumer: Callable[..., Any] = AIOKafkaConsumer,
        jobs: Jobs | None = None,
    ) -> None:
        self.make_consumer = make_consumer  # a fake one in tests
        self.jobs = jobs or Jobs()  # what the control socket asks (rederive), run between batches
        self.sink = sink
        self.metrics = metrics
        self.live = live
        self.prefix = prefix
        self.warehouse = warehouse  # checked against the group's offsets; the live gauges restore from it
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.from_beginning = from_beginning  # only at the first assignment of this process
        self.topics = [with_prefix(t, prefix).name for t in EVENT_TOPICS]
        self.bootstrap = bootstrap.split(",")
        self.group = prefix + GROUP
        self.consumer: AIOKafkaConsumer | None = None  # made in run(): it needs the running loop
        self._stored: dict[TopicPartition, int] = {}  # stored, maybe not yet committed
        self.refusal: str | None = None  # set when the warehouse lacks committed messages
        self.on_assigned: Callable[[Mapping[str, int]], None] | None = None  # partitions per topic, for the CLI
        self._stopped = False

    async def run(self) -> None:
        self.consumer = consumer = self.make_consumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,  # offsets move only after the warehouse acknowledged
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,  # a killed worker's partitions move on after 10 s
            heartbeat_interval_ms=3_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            await consumer.start()
        except BaseException:  # cancelled (a stop while starting) or no broker: leave nothing open
            await consumer.stop()
            raise
        if self._stopped:  # stopped while this task was starting: stop() found no consumer to close
            await consumer.stop()
            return
        consumer.subscribe(self.topics, listener=self)
        self.metrics.consumer = consumer
        attempt = 0
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=int(self.max_seconds * 1000), max_records=self.max_events)
            except ConsumerStoppedError:
                return  # stop() committed and left the group
            if self.refusal is not None:
                await self._refuse()
                return
            self.jobs.run_pending()
            if not batches:
                continue
            messages = [
                Message(r.value, r.key, r.timestamp / 1000, tp.topic, tp.partition, r.offset)
                for tp, records in batches.items()
                for r in records
            ]
            try:
                self.sink.write(messages)  # synchronous: returns when the warehouse acknowledged
            except Exception as exc:
                # Nothing of the batch is committed: fetch it again and retry after a pause.
                pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
                attempt += 1
                self.metrics.retries.inc()
                if isinstance(exc, SinkUnavailable):
                    log.error("a batch of %d messages was not stored: %s; retrying in %g s", len(messages), exc, pause)
                else:  # a bug: say where, once per attempt
                    log.exception("a batch of %d messages was not stored; retrying in %g s", len(messages), pause)
                self._rewind(batches)
                await asyncio.sleep(pause)
                continue
            attempt = 0
            for tp, records in batches.items():
                self._stored[tp] = records[-1].offset + 1
                self.metrics.positions[tp] = records[-1].offset + 1
            await self._commit()

    def _rewind(self, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        assert self.consumer is not None
        for tp, records in batches.items():
            # A partition revoked meanwhile cannot be sought: its next owner reads the batch again.
            with contextlib.suppress(KafkaError, AssertionError, ValueError):
                self.consumer.seek(tp, records[0].offset)

    async def _refuse(self) -> None:
        # run() says why, in one line, once the Faust worker has stopped.
        await self.stop(commit=False)
        os.kill(os.getpid(), signal.SIGTERM)  # the Faust worker's own graceful stop; run() then raises

    async def _commit(self) -> None:
        if self._stored and self.consumer is not None:
            offsets, self._stored = dict(self._stored), {}
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance under way: the batches come again, harmlessly
                log.warning("commit failed (%s); stored batches will be redelivered", type(exc).__name__)

    async def stop(self, commit: bool = True) -> None:
        """Commit what is stored, leave the group (SIGTERM)."""
        stopped, self._stopped = self._stopped, True
        if self.consumer is None or stopped:
            return
        try:
            if commit:
                await self._commit()
        finally:
            await self.consumer.stop()

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._commit()  # what this worker stored stays counted as stored
        self.sink.deriver.forget()  # entities may move to other workers; reload when touched

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.sink.deriver.forget()
        consumer = self.consumer
        assert consumer is not None
        start: dict[TopicPartition, int] = {}  # where reading starts: the lag is known before a batch
        if self.from_beginning:
            self.from_beginning = False
            if assigned:
                await consumer.seek_to_beginning(*assigned)
                log.warning("--from-beginning: reading %d partitions from their start", len(assigned))
        else:
            committed = {}
            for tp in assigned:
                offset = await consumer.committed(tp)
                if offset is not None:
                    committed[(tp.topic, tp.partition)] = offset
                    start[tp] = offset
            self.refusal = warehouse_gap(self.warehouse, committed, self.group)
            if self.refusal is not None:
                return
        unknown = [tp for tp in assigned if tp not in start]  # no commit yet, or --from-beginning
        with contextlib.suppress(KafkaError, AssertionError, ValueError):  # the lag then shows after a batch
            start |= await consumer.beginning_offsets(unknown) if unknown else {}
        for tp, offset in start.items():
            self.metrics.positions[tp] = offset  # reading resumes here (revoked batches were committed)
        if self.on_assigned is not None:
            by_topic: dict[str, int] = {}
            for tp in assigned:
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + 1
            self.on_assigned(by_topic)
        owned = set(assigned)
        topics = {"call": CALLS, "mail": MAIL, "agent": AGENTS}

        def owns(kind: str, key: str) -> bool:
            topic = topics[kind]
            return TopicPartition(with_prefix(topic, self.prefix).name, partition_of(key, topic)) in owned

        # The live gauges show exactly the entities of this worker's partitions (they sum).
        try:
            self.live.restore(self.warehouse, owns)
        except Exception as exc:  # the gauges start empty; storing events matters more
            log.error("the live gauges could not be restored (%s: %s)", type(exc).__name__, exc)


class StreamApp(faust.App):
    """Stops the batch consumer (commit, leave the group) before Faust shuts down."""

    batch_consumer: BatchConsumer | None = None

    async def on_stop(self) -> None:
        if self.batch_consumer is not None:
            try:
                await self.batch_consumer.stop()
            except Exception as exc:  # uncommitted batches are stored already; they come again, harmlessly
                log.warning("final commit failed (%s); the last batches will be redelivered", type(exc).__name__)
        await super().on_stop()


class DeadLetterTopic:
    """Publishes dead letters with a producer made when first needed and again after a failure
    (the broker may be away when the worker starts, or go away later)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self._publisher: KafkaPublisher | None = None

    def __call__(self, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        try:
            if self._publisher is None:
                self._publisher = KafkaPublisher(self.bootstrap, self.prefix)
            self._publisher.publish_raw(DEAD_LETTER, key, value, headers, timeout=10.0)
        except PublishError:
            # Also after MessageTooLarge: the idempotent producer treats a refused batch as fatal
            # and fails every later send, so the next dead letter gets a new one.
            self.close()
            raise

    def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close(timeout=1.0)


@dataclass
class WorkerCounts:
    """A handle on the worker's own /metrics for the CLI's status line, filled when the worker is
    built: its pipeline `registry` (events stored and rejected, dead letters, retries: read, not
    counted again, so the line and /metrics agree) and `lag`, the consumer lag summed over this
    worker's partitions."""

    registry: CollectorRegistry | None = None
    lag: Callable[[], int | None] = lambda: None


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker runs (the `availability stream` options)."""

    # The interface /metrics listens on (Faust's web_bind, whose own default is every interface):
    # loopback like every other listener of the project; a container passes 0.0.0.0.
    web_host: str = "127.0.0.1"
    web_port: int = 6066  # /metrics
    loglevel: str = "warning"
    max_events: int = 5000  # write at most this many events a batch
    max_seconds: float = 0.5  # write a batch at least this often
    from_beginning: bool = False  # read the topics from their start (a new or restored warehouse)
    dead_letter_file: Path | None = None  # the fallback when the dead-letter topic refuses a copy
    sql: SqlOptions = field(default_factory=SqlOptions)  # the read-only SQL interface of an embedded warehouse
    counts: WorkerCounts = field(default_factory=WorkerCounts)  # kept up to date while the worker runs
    on_started: Callable[[], None] | None = None  # Faust has started: /metrics answers (the CLI's banner)
    on_assigned: Callable[[Mapping[str, int]], None] | None = None  # the partitions this worker consumes now


@dataclass(frozen=True)
class WorkerParts:
    """What the worker is made of (availability/wiring.py builds them from the settings)."""

    bootstrap: str
    prefix: str  # of the topics and the consumer group
    agreements: Agreements
    warehouse: Warehouse
    boundary: Boundary  # the live one: events more than MAX_FUTURE ahead of `clock` are rejected
    pseudonymiser: Pseudonymiser  # for the dead letters' copies
    clock: Callable[[], datetime]  # also drives the live gauges


def build_app(parts: WorkerParts, options: WorkerOptions = WorkerOptions(), *, datadir: Path) -> StreamApp:
    """The Faust app: the batch consumer, the dead-letter watcher and /metrics."""
    bootstrap, prefix, warehouse = parts.bootstrap, parts.prefix, parts.warehouse
    app = StreamApp(
        prefix + GROUP + "-app",
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        datadir=str(datadir),  # Faust's own files; the worker keeps no state of its own on disk
        store="memory://",
        web_enabled=True,
        web_bind=options.web_host,  # where it listens; web_host is only the name it gives itself
        web_host=options.web_host,
        web_port=options.web_port,
        topic_disable_leader=True,
        topic_allow_declare=False,  # `availability topics create` owns the topics
        broker_session_timeout=10.0,  # as the batch consumer: a killed worker is replaced in 10 s
        broker_heartbeat_interval=3.0,
    )
    dead_letters = DeadLetters(
        DeadLetterTopic(bootstrap, prefix),
        options.dead_letter_file or default_dead_letter_file(warehouse.target),
        parts.pseudonymiser,
    )
    deriver = Deriver(warehouse, parts.agreements, track_changes=True)
    sink = WarehouseSink(parts.boundary, deriver, dead_letters)
    metrics = PipelineMetrics(sink, options.counts)
    live = LiveState(parts.agreements, clock=parts.clock)  # the wall's and the alerts' metrics (docs/live-metrics.md)
    sink.health = SourceHealth(live.source_label)  # per source on /metrics (docs/sources.md)
    metrics.registry.register(sink.health)
    sink.on_stored.append(live.observe)
    live_registry = CollectorRegistry()
    live_registry.register(live)
    consumer = BatchConsumer(
        bootstrap,
        prefix,
        warehouse,
        sink,
        metrics,
        live,
        max_events=options.max_events,
        max_seconds=options.max_seconds,
        from_beginning=options.from_beginning,
    )
    consumer.on_assigned = options.on_assigned
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
            dead_log.warning(
                "dead letter at %s[%s]@%s: %s", dead.name, event.message.partition, event.message.offset, reason
            )

    app.agent(dead_topic, name="dead-letters")(watch_dead_letters)

    outlook_lock = asyncio.Lock()

    async def metrics_page(web: Any, request: Any) -> Any:
        await refresh_outlook(live, outlook_lock)
        # Each registry on its own: whatever one of them does, the page answers (never 500).
        parts = []
        for name, registry in (("pipeline", metrics.registry), ("live", live_registry)):
            try:
                parts.append(generate_latest(registry))
            except Exception as exc:
                log.error("the %s metrics could not be rendered (%s: %s)", name, type(exc).__name__, exc)
        return web.bytes(b"".join(parts), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(metrics_page)
    return app


async def refresh_outlook(live: LiveState, lock: asyncio.Lock) -> None:
    """Compute the outlook a scrape shows on a thread: its Erlang A chains take about 0.1 s a
    queue (about a second for nine overloaded ones, bench/outlook_loop.py), and on the event
    loop a scrape would hold the batches behind it that long. The inputs are read here, on the
    loop that changes the live state; one scrape computes at a time, and those behind it find
    the result fresh. It is kept as of when it is ready, so a fast clock (the demo's) does not
    find it stale at once. If anything fails, the page still answers: the scrape's collect tries
    again on the loop and leaves the section out (LiveState.collect)."""
    async with lock:
        try:
            if live.predicted(live.now()) is not None:
                return
            inputs = live.outlook_inputs(live.now())
            predicted = await asyncio.to_thread(predict_all, inputs)
        except Exception as exc:
            outlook_log.warning("the outlook failed (%s: %s)", type(exc).__name__, exc)
            return
        live.keep_predictions(live.now(), predicted)


class PipelineMetrics(Collector):
    """Pipeline health on /metrics: events processed and rejected, batch latency, freshness, lag."""

    def __init__(self, sink: WarehouseSink, counts: WorkerCounts | None = None) -> None:
        self.registry = CollectorRegistry()
        self.sink = sink
        if counts is not None:
            counts.registry, counts.lag = self.registry, self.total_lag
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
        self.retries = Counter(
            "availability_stream_batch_retries",
            "Batches not stored because the warehouse did not answer, fetched again and retried",
            registry=self.registry,
        )
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

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        dead = self.sink.dead_letters
        for name, text, value in (
            (
                "availability_stream_dead_letter_fallbacks",
                "Rejected messages the dead-letter topic could not take, kept in the fallback file instead",
                dead.fallbacks,
            ),
            (
                "availability_stream_dead_letters_truncated",
                "Dead letters published shortened to what the broker accepts (header original-size)",
                dead.truncated,
            ),
            (
                "availability_stream_warehouse_refused",
                "Events the warehouse refused, isolated by storing their batch in halves, and dead-lettered",
                self.sink.isolated,
            ),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], value)
            yield counter
        family = GaugeMetricFamily(
            "availability_stream_consumer_lag",
            "Messages in the partition after the last one stored",
            labels=["topic", "partition"],
        )
        for tp, lag in self.lags().items():
            family.add_metric([tp.topic, str(tp.partition)], lag)
        yield family

    def lags(self) -> dict[TopicPartition, int]:
        """Per assigned partition: messages after the last one stored, or after where reading
        started (the committed offset, else the partition's beginning) before anything is."""
        lags: dict[TopicPartition, int] = {}
        consumer = self.consumer
        if consumer is not None:
            try:
                for tp in consumer.assignment():
                    highwater = consumer.highwater(tp)
                    position = self.positions.get(tp)
                    if highwater is not None and position is not None:
                        lags[tp] = max(0, highwater - position)
            except Exception:  # the consumer is between assignments; the lag shows next time
                pass
        return lags

    def total_lag(self) -> int | None:
        """The lag summed over this worker's partitions; None while it has none, or before the
        broker told the partitions' ends."""
        lags = self.lags()
        return sum(lags.values()) if lags else None


class _Worker(faust.Worker):
    """Faust's worker without its terminal dressing: no spinner, no "starting➢"/"OK ^", and
    plain log lines on stderr (mode's colour formatter asks whether *stdout* is a terminal, so
    `availability stream 2>worker.log` in a terminal wrote colour codes into the file)."""

    # Not `on_started` or `started`: mode's Service has a hook and a flag of those names.
    announce_started: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None

    def _setup_logging(self) -> None:
        level = str(self.loglevel or "warning")
        plain_logging(level)  # at info, the worker's own lines; the libraries' only at debug
        root = logging.getLogger()
        level_number = root.level
        self.on_setup_root_logger(root, level_number)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        if self.announce_started is not None and not self._shutdown_immediately:
            self.announce_started()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        # While the broker is away the clients log every attempt (~150 lines a second): let the
        # first of each kind through, then one summary a minute, without the tracebacks. The same
        # for the line per dead letter, which a flood of poison would turn into a flood, and for
        # an outlook that fails at every scrape.
        limit_repeats((*CLIENT_LOGGERS, DEAD_LETTER_LOGGER, outlook_log.name))


def run(parts: WorkerParts, options: WorkerOptions = WorkerOptions()) -> None:
    """Run until SIGTERM/SIGINT; then commit what is stored and exit. Raises StreamRefused
    (one line) when the warehouse lacks what the consumer group has committed."""
    group = parts.prefix + GROUP
    if not options.from_beginning:
        topics = [with_prefix(t, parts.prefix).name for t in EVENT_TOPICS]
        committed = committed_offsets(parts.bootstrap, group, topics)
        gap = warehouse_gap(parts.warehouse, committed, group) if committed else None
        if gap is not None:
            raise StreamRefused(gap)
    # Faust insists on a data directory; nothing in it outlives the process (offsets are in
    # Kafka, facts in the warehouse), so it is a temporary one, not `<app id>-data/` in the cwd.
    with tempfile.TemporaryDirectory(prefix="availability-worker-") as datadir:
        app = build_app(parts, options, datadir=Path(datadir))
        consumer = app.batch_consumer
        assert consumer is not None
        serving = Serving.start(  # the SQL interface's counters join the pipeline's on /metrics
            parts.warehouse, consumer.sink.deriver, consumer.jobs, options.sql, consumer.metrics.registry,
            str(parts.agreements.timezone),
        )  # fmt: skip
        worker = _Worker(app, loglevel=options.loglevel, quiet=True, override_logging=True, redirect_stdouts=False)
        worker.announce_started = options.on_started
        try:
            worker.execute_from_commandline()
        except SystemExit:
            if consumer.refusal is not None:
                raise StreamRefused(consumer.refusal) from None
            raise
        finally:
            if serving is not None:
                serving.stop()
