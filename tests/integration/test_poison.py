"""No message stops the stream worker (issue #7, item 1).

Each poison kind is published between valid messages on the real topics; the worker must
store every valid event, keep every poison message with its reason (on the dead-letter topic,
or in the fallback file when that topic cannot take it), commit past it and keep every
partition moving. The first tests drive the sink directly (real chDB, no broker).
"""

from __future__ import annotations

import asyncio
import functools
import json
import stat
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import ConsumerStoppedError
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from availability.settings import Settings
from availability.wiring import Wiring
from ingest.boundary import Rejection
from ingest.kafka.publisher import KafkaPublisher, MessageTooLarge, PublishError
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import Event, encode
from stream_jobs.core.deriver import BatchResult, Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.warehouse import Warehouse
from stream_jobs.worker.app import BatchConsumer, PipelineMetrics
from stream_jobs.worker.sink import (
    DEAD_LETTER_SHORT_BYTES,
    DeadLetters,
    Message,
    SinkStats,
    SinkUnavailable,
    WarehouseSink,
    redact,
)
from tests.integration.streaming import Worker, cli, committed_everything, environment, report
from tests.integration.test_stream import free_port, topic_names

PHONE = "+46701234567"
SUBJECT = "Anstånd för Anna Svensson 19800101-1234"


def raw(type_: str, time: str, id_: str, source: str = "callguide", **data: Any) -> bytes:
    """A message as someone publishing around the ingest boundary would write it."""
    return json.dumps(
        {"specversion": "1.0", "id": id_, "source": source, "type": type_, "time": time, "data": data}
    ).encode()


def poison_messages() -> list[tuple[str, str, bytes | None]]:
    """(name, topic, value) of every poison kind the issue names, and a few more."""
    queued = raw("call.queued", "2026-03-04T10:00:00+01:00", "p-ok", call_id="p-utf8", queue="kundreskontra")
    return [
        ("tombstone", "calls", None),
        ("invalid UTF-8", "calls", queued.replace(b"p-utf8", b"p-\xe9\xff")),
        ("nested 1000 deep", "calls", b'{"specversion": "1.0", "data": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
        ("nested 100000 deep", "agents", b"[" * 100_000 + b"]" * 100_000),
        (
            "year 3026",
            "calls",
            raw("call.queued", "3026-03-04T10:00:00Z", "p-3026", call_id="p-3026", queue="avgifter"),
        ),
        (
            "year 9999 with a raw caller",
            "calls",
            raw("call.offered", "9999-12-31T23:59:59Z", "p-9999", call_id="p-9999", entrance="växel", caller=PHONE),
        ),
        (
            "mail before 1990, raw sender and subject",
            "mail",
            raw(
                "mail.received",
                "1989-12-31T12:00:00+01:00",
                "p-1989",
                source="imap/kundreskontra",
                mailbox="kundreskontra",
                message_id="m-1989",
                thread_id="t-1989",
                sender="anna@example.se",
                subject=SUBJECT,
            ),
        ),
        (
            "an agent state dated 2150",
            "agents",
            raw("agent.state", "2150-01-01T00:00:00Z", "p-2150", agent="a1", state="ready", queues=["kundreskontra"]),
        ),
        ("not JSON", "mail", b"\x00\x01 not an event"),
        ("a JSON array", "agents", b"[1, 2, 3]"),
        (
            "200 KB event",
            "calls",
            raw("call.queued", "2026-03-04T10:00:00+01:00", "p-big", call_id="x" * 200_000, queue="avgifter"),
        ),
        (
            "1.5 MB event (its dead-letter copy is larger than the broker accepts)",
            "calls",
            raw("call.queued", "2026-03-04T10:00:00+01:00", "p-huge", call_id="y" * 1_500_000, queue="avgifter"),
        ),
    ]


@functools.cache
def source_lines() -> tuple[bytes, ...]:
    """2 400 calls with 128-character ids (the longest id the boundary keeps as it is), whose keys
    in one batch are more than ClickHouse's 256 KiB query size, and a simulated day, as a source
    writes them."""
    agreements = load_agreements()
    lines = [
        raw("call.queued", "2026-03-05T10:00:00+01:00", f"lq{i}", call_id=f"{i:04d}-" + "k" * 123, queue="avgifter")
        for i in range(2400)
    ]
    lines += [encode(e) for e in simulate(agreements, date(2026, 3, 4), 1, seed=4, scale=0.2)]
    return tuple(lines)


@functools.cache
def valid_events() -> list[Event]:
    """The source lines through the (source) ingest boundary: what `publish` puts on the topics."""
    agreements = load_agreements()
    boundary = Wiring(Settings()).boundary(agreements)
    events = [boundary.accept(line) for line in source_lines()]
    assert not [e for e in events if isinstance(e, Rejection)]
    return events  # type: ignore[return-value]


# -- the sink on its own (real chDB, no broker) ----------------------------------------------------------


class Published:
    """A dead-letter topic that takes values up to `limit` bytes, or is away."""

    def __init__(self, limit: int = 1_000_000, away: bool = False) -> None:
        self.limit, self.away = limit, away
        self.messages: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []

    def __call__(self, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        if self.away:
            raise PublishError("Kafka at 127.0.0.1:1 did not acknowledge (KafkaTimeoutError)")
        if value is not None and len(value) > self.limit:
            raise MessageTooLarge("Kafka refused a message as too large")
        self.messages.append((value, key, dict(headers)))


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse.open(str(tmp_path / "wh")) as wh:
        yield wh


def sink_for(warehouse: Warehouse, published: Published, fallback: Path) -> WarehouseSink:
    agreements = load_agreements()
    wiring = Wiring(Settings())
    dead = DeadLetters(published, fallback, wiring.pseudonymiser(agreements))
    return WarehouseSink(wiring.boundary(agreements, live=True), Deriver(warehouse, agreements), dead)


def messages_of(values: Sequence[bytes | None], topic: str = "t.availability.calls") -> list[Message]:
    return [Message(v, b"k", 0.0, topic, 0, offset) for offset, v in enumerate(values)]


def stored_ids(warehouse: Warehouse) -> set[str]:
    return {row[0] for row in warehouse.query("SELECT DISTINCT id FROM events")}


def test_each_poison_kind_is_dead_lettered_by_the_sink_and_the_rest_stored(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    published = Published()
    sink = sink_for(warehouse, published, tmp_path / "dead.jsonl")
    good = [encode(e) for e in valid_events()]
    poison = [value for _, _, value in poison_messages()]
    sink.write(messages_of([*good[:100], *poison, *good[100:]]))  # raised on the first poison kind before
    assert stored_ids(warehouse) == {json.loads(v)["id"] for v in good}
    assert len(published.messages) == len(poison)
    offsets = sorted(int(headers["offset"]) for _, _, headers in published.messages)
    assert offsets == list(range(100, 100 + len(poison)))  # where each was read, in its headers
    assert all(headers["reason"] for _, _, headers in published.messages)
    assert sink.stats.rejected == len(poison) and sink.stats.processed == len(good)
    assert sink.isolated == 0  # no valid event is refused by the warehouse (the long keys fit in its queries)
    # Source health: each rejected message once in the warehouse, keyed by where it was read.
    origins = [row[0] for row in warehouse.query("SELECT origin FROM source_rejects FINAL ORDER BY origin")]
    assert origins == sorted(f"t.availability.calls/0/{offset}" for offset in range(100, 100 + len(poison)))
    sink.write(messages_of([*good[:100], *poison, *good[100:]]))  # the batch again (a retry): no new row
    assert warehouse.query("SELECT count() FROM source_rejects FINAL") == [(len(poison),)]


def test_the_warehouse_refusing_one_event_isolates_it(warehouse: Warehouse, tmp_path: Path) -> None:
    published = Published()
    sink = sink_for(warehouse, published, tmp_path / "dead.jsonl")
    real_insert = warehouse.insert_events

    def insert_events(events: Any) -> None:  # a data-dependent refusal, as ClickHouse's Code 62 was
        if any(e.id == "culprit" for e in events):
            raise RuntimeError("Code: 27. DB::Exception: Cannot parse input")
        real_insert(events)

    warehouse.insert_events = insert_events  # type: ignore[method-assign]
    values = [encode(e) for e in valid_events()[-64:]]
    culprit = json.loads(values[40])
    culprit["id"] = "culprit"
    values[40] = json.dumps(culprit).encode()
    sink.write(messages_of(values))  # raised, and the restarted worker raised again: a crash loop
    assert stored_ids(warehouse) == {json.loads(v)["id"] for v in values} - {"culprit"}
    [(value, _, headers)] = published.messages
    assert value == values[40] and headers["offset"] == b"40"
    assert headers["reason"].startswith(b"the warehouse refused it (RuntimeError: Code: 27.")


def test_a_warehouse_refusing_for_its_own_state_keeps_the_batch_uncommitted(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Review finding: 'Too many parts' (252) answers SELECT 1 but refuses every insert for a
    while; halving the batch then dead-lettered every valid event and committed past them."""
    published = Published()
    sink = sink_for(warehouse, published, tmp_path / "dead.jsonl")
    real_insert = warehouse.insert_events
    refusing = [True]

    def insert_events(events: Any) -> None:
        if refusing[0]:
            raise RuntimeError("Code: 252. DB::Exception: Too many parts (300). Merges are processing slower")
        real_insert(events)

    warehouse.insert_events = insert_events  # type: ignore[method-assign]
    values = [encode(e) for e in valid_events()[-16:]]
    with pytest.raises(SinkUnavailable, match="does not take the batch now"):
        sink.write(messages_of(values))
    assert published.messages == [] and sink.isolated == 0  # no valid event became a dead letter
    refusing[0] = False
    sink.write(messages_of(values))  # the retry, once merges caught up
    assert stored_ids(warehouse) == {json.loads(v)["id"] for v in values}


def test_an_unreachable_warehouse_stops_the_batch_without_dead_letters(warehouse: Warehouse, tmp_path: Path) -> None:
    published = Published()
    sink = sink_for(warehouse, published, tmp_path / "dead.jsonl")

    class Away:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise ConnectionRefusedError("[Errno 111] Connection refused")

            return fail

    client, warehouse.client = warehouse.client, Away()
    values = [encode(e) for e in valid_events()[-10:]] + [b"not json"]
    with pytest.raises(SinkUnavailable, match="does not answer"):
        sink.write(messages_of(values))
    assert published.messages == []  # nothing is kept as a dead letter: the batch comes again
    warehouse.client = client
    sink.write(messages_of(values))  # the retry, once the warehouse is back
    assert len(stored_ids(warehouse)) == 10 and len(published.messages) == 1


def test_failed_derivations_go_to_the_dead_letter_topic(warehouse: Warehouse, tmp_path: Path) -> None:
    published = Published()
    sink = sink_for(warehouse, published, tmp_path / "dead.jsonl")
    events = valid_events()[-20:]

    class Failing(Deriver):
        def apply(self, batch: Any) -> BatchResult:  # as the Deriver reports an entity it could not derive
            result = super().apply([e for e in batch if e.id != events[5].id])
            result.failed = [(e, "could not be derived (ValueError: boom)") for e in batch if e.id == events[5].id]
            return result

    sink.deriver = Failing(warehouse, load_agreements())
    sink.write(messages_of([encode(e) for e in events]))
    [(value, _, headers)] = published.messages
    assert headers["offset"] == b"5" and value is not None and json.loads(value)["id"] == events[5].id
    assert headers["reason"] == b"could not be derived (ValueError: boom)"
    assert sink.stats.processed == 19 and sink.stats.rejected == 1


def test_dead_letter_copies_of_messages_published_around_the_boundary_are_pseudonymised() -> None:
    """Review finding: the fields accept_published rejects (a raw number as caller_ref, an address
    as sender_ref or Message-ID, a name in categories, an address as event id) were kept as
    they came, for the dead-letter topic's 7 days."""
    pseudonymiser = Pseudonymiser(b"k" * 32, load_agreements())
    around = {
        "specversion": "1.0", "id": "anna@example.se", "source": "callguide", "type": "mail.received",
        "time": "2026-04-01T09:00:00+02:00",
        "data": {"mailbox": "kundreskontra", "message_id": "<anna.svensson@example.se>", "thread_id": "t-1",
                 "sender_ref": "anna@example.se", "categories": ["Anna Svensson 19800101-1234", "PRIORITY"]},
    }  # fmt: skip
    copy, done = redact(json.dumps(around).encode(), pseudonymiser)
    assert copy is not None
    for personal in (b"anna", b"Anna", b"19800101"):
        assert personal not in copy
    data = json.loads(copy)["data"]
    # Each value becomes its keyed hash (32 hex), so the same message's copies still match.
    assert data["sender_ref"] == pseudonymiser.id_ref("anna@example.se")
    assert data["message_id"] == pseudonymiser.id_ref("<anna.svensson@example.se>")
    assert data["thread_id"] == pseudonymiser.id_ref("t-1")  # not a pseudonym yet: hashed too
    assert data["categories"] == ["priority"]  # the one category a source may give
    assert json.loads(copy)["id"] == pseudonymiser.id_ref("anna@example.se")
    assert "data.sender_ref hashed" in done and "id hashed" in done
    offered = {"specversion": "1.0", "id": "e1", "source": "callguide", "type": "call.offered",
               "time": "2026-04-01T09:00:00+02:00",
               "data": {"call_id": "c1", "entrance": "x", "caller_ref": "+46709998877"}}  # fmt: skip
    copy, _ = redact(json.dumps(offered).encode(), pseudonymiser)
    assert copy is not None and b"46709998877" not in copy


def test_dead_letter_copies_are_redacted_truncated_and_fall_back_to_an_owner_only_file(tmp_path: Path) -> None:
    agreements = load_agreements()
    pseudonymiser = Pseudonymiser(b"k" * 32, agreements)
    published = Published(limit=4000)
    dead = DeadLetters(published, tmp_path / "state" / "dead.jsonl", pseudonymiser)
    names = {name: value for name, _, value in poison_messages()}
    caller = names["year 9999 with a raw caller"]
    mail = names["mail before 1990, raw sender and subject"]
    huge = names["200 KB event"]
    assert huge is not None
    latin1 = raw("mail.received", "1989-01-01T00:00:00Z", "l1", mailbox="kundreskontra", message_id="m",
                 thread_id="t", subject="x", sender="anna@example.se").replace(b'"x"', b'"\xc5sa \xd6berg"')  # fmt: skip
    for i, value in enumerate([caller, mail, huge, latin1, None]):
        dead.send(Message(value, b"key", 0.0, "t.availability.calls", 2, i), "a reason")
    copies: list[Any] = [value for value, _, _ in published.messages]
    headers = [h for _, _, h in published.messages]
    # Redacted: raw caller and sender replaced by their pseudonyms, subjects removed.
    assert PHONE.encode() not in copies[0] and pseudonymiser.caller_ref(PHONE).encode() in copies[0]
    assert headers[0]["redacted"] == b"data.caller -> data.caller_ref"
    assert b"anna@example.se" not in copies[1] and b"Svensson" not in copies[1]
    assert json.loads(copies[1])["data"]["sender_ref"] == pseudonymiser.sender_ref("anna@example.se")
    # Latin-1 bytes are not UTF-8: replaced, then redacted like the rest.
    assert b"anna@example.se" not in copies[3] and b"\xd6berg" not in copies[3]
    # Too large for the broker (4 000 bytes here): published shortened, with the original size.
    assert len(copies[2]) == DEAD_LETTER_SHORT_BYTES and headers[2]["original-size"] == str(len(huge)).encode()
    assert copies[4] is None and headers[4]["reason"] == b"a reason"  # a tombstone stays a tombstone
    assert dead.fallbacks == 0 and dead.truncated == 1

    published.away = True  # the broker is away: the next ones go to the fallback file
    dead.send(Message(caller, b"key", 0.0, "t.availability.calls", 2, 7), "year out of range")
    dead.send(Message(b"\xff\xfe", None, 0.0, "t.availability.mail", 0, 8), "not valid JSON")
    lines = [json.loads(line) for line in (tmp_path / "state" / "dead.jsonl").read_text().splitlines()]
    assert [(r["topic"], r["partition"], r["offset"], r["reason"]) for r in lines] == [
        ("t.availability.calls", 2, 7, "year out of range"),
        ("t.availability.mail", 0, 8, "not valid JSON"),
    ]
    assert PHONE not in lines[0]["value"] and lines[0]["redacted"] == ["data.caller -> data.caller_ref"]
    assert lines[1]["value_encoding"] == "base64" and lines[1]["key"] is None
    assert stat.S_IMODE((tmp_path / "state" / "dead.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert dead.fallbacks == 2


def test_a_fallback_that_cannot_be_written_stops_the_batch(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    dead = DeadLetters(Published(away=True), blocked / "dead.jsonl", None)
    with pytest.raises(SinkUnavailable, match="neither"):  # never lost: the batch is not committed
        dead.send(Message(b"x", None, 0.0, "t", 0, 0), "not valid JSON")


class FakeConsumer:
    """Hands out the batches given, then stops; records seeks and commits."""

    def __init__(self, batches: list[dict[TopicPartition, list[Any]]], **_: Any) -> None:
        self.batches = batches
        self.sought: list[tuple[TopicPartition, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []

    async def start(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if not self.batches:
            raise ConsumerStoppedError
        return self.batches.pop(0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    async def stop(self) -> None:
        pass


def test_a_batch_the_warehouse_does_not_answer_for_is_retried_and_not_committed() -> None:
    tp = TopicPartition("t.availability.calls", 3)
    records = [SimpleNamespace(value=b"{}", key=b"k", timestamp=0, offset=o) for o in (40, 41, 42)]
    batch = {tp: records}
    consumer = FakeConsumer([batch, batch])  # Kafka hands the batch out again after the seek back

    class Sink:  # the warehouse does not answer the first time
        stats, dead_letters, isolated, writes = SinkStats(), SimpleNamespace(fallbacks=0, truncated=0), 0, 0

        def write(self, messages: list[Message]) -> None:
            self.writes += 1
            if self.writes == 1:
                raise SinkUnavailable("the warehouse does not answer (ConnectionRefusedError)")

    sink: Any = Sink()
    metrics = PipelineMetrics(sink)
    worker = BatchConsumer(
        "127.0.0.1:1",
        "",
        cast(Any, None),  # not read: neither the gap check nor the gauges run without an assignment
        sink,
        metrics,
        LiveState(load_agreements()),
        max_events=10,
        max_seconds=0.1,
        make_consumer=lambda **kw: consumer,
    )
    asyncio.run(worker.run())
    assert sink.writes == 2
    assert consumer.sought == [(tp, 40)]  # fetched again from the batch's first offset
    assert consumer.commits == [{tp: 43}]  # committed once, after the warehouse took it
    assert metrics.retries._value.get() == 1


# -- the worker on the real broker ------------------------------------------------------------------------


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.")


def create_topics(bootstrap: str, prefix: str, dead_letter_max_bytes: int) -> None:
    """The topics as `topics create` makes them, except: the calls topic takes 2 MiB messages
    and the dead-letter topic only `dead_letter_max_bytes` (an operator's settings)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(f"{prefix}availability.calls", 6, 1, topic_configs={"max.message.bytes": str(2 * 1024 * 1024)}),
                NewTopic(
                    f"{prefix}availability.dead-letter", 1, 1,
                    topic_configs={"max.message.bytes": str(dead_letter_max_bytes)},
                ),
            ]
        )  # fmt: skip
    finally:
        admin.close()


def publish_with_poison(bootstrap: str, prefix: str, events: list[Event]) -> dict[tuple[str, int, int], str]:
    """Half the valid events, every poison kind (spread over the partitions), the other half.
    Returns where each poison message landed: (topic, partition, offset) -> its name."""
    half = len(events) // 2
    with KafkaPublisher(bootstrap, prefix) as publisher:
        publisher.publish(events[:half])
    where = {}
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024, acks="all")
    try:
        partitions = {"calls": 6, "agents": 3, "mail": 3}
        for i, (name, topic, value) in enumerate(poison_messages()):
            full = f"{prefix}availability.{topic}"
            sent = producer.send(full, key=f"poison-{i}".encode(), value=value, partition=i % partitions[topic])
            meta = sent.get(timeout=30)
            where[(full, meta.partition, meta.offset)] = name
    finally:
        producer.close()
    with KafkaPublisher(bootstrap, prefix) as publisher:
        publisher.publish(events[half:])
    return where


def consume_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        return list(consumer)
    finally:
        consumer.close()


def worker_count(warehouse: Path) -> int:
    with Warehouse.open(str(warehouse)) as wh:
        return int(wh.query("SELECT count() FROM (SELECT DISTINCT source, id FROM events)")[0][0])


def test_every_poison_kind_between_valid_messages_on_the_real_topics(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    # The dead-letter topic takes 20 000 bytes: the 64 KiB copy of the 1.5 MB event is refused
    # and published again shortened to 1 KiB.
    create_topics(kafka_bootstrap, prefix, dead_letter_max_bytes=20_000)
    cli(env, "topics", "create")
    events = valid_events()
    where = publish_with_poison(kafka_bootstrap, prefix, events)
    group = prefix + "availability-stream"
    with Worker(env, tmp_path / "wh", "", free_port()) as worker:
        worker.wait_for(
            lambda: committed_everything(kafka_bootstrap, group, topic_names(prefix)), "all offsets committed"
        )
        metrics = worker.metrics() or {}  # alive, and /metrics answers
        assert metrics['availability_stream_events_total{outcome="processed"}'] == len(events)
        assert metrics['availability_stream_events_total{outcome="rejected"}'] == len(where)
        # Source health: every valid event and every poison message is counted under its source's
        # label (`other` when it names none, or one the live metrics do not label).
        stored = sum(v for k, v in metrics.items() if k.startswith('availability_source_events_total{outcome="stored'))
        rejected = sum(v for k, v in metrics.items() if k.startswith("availability_source_rejects_total{"))
        assert (stored, rejected) == (len(events), len(where))
        assert worker.stop() == 0

    dead = {
        (h["topic"].decode(), int(h["partition"]), int(h["offset"])): (m, h)
        for m in consume_all(kafka_bootstrap, f"{prefix}availability.dead-letter")
        for h in [dict(m.headers)]
    }
    assert set(dead) == set(where), "every poison message on the dead-letter topic, where it was read in headers"
    by_name = {where[k]: v for k, v in dead.items()}
    for name, (_, headers) in by_name.items():
        assert headers["reason"], name
    assert by_name["tombstone"][0].value is None
    huge, huge_headers = by_name["1.5 MB event (its dead-letter copy is larger than the broker accepts)"]
    assert len(huge.value) == DEAD_LETTER_SHORT_BYTES and int(huge_headers["original-size"]) > 1_500_000
    assert PHONE.encode() not in by_name["year 9999 with a raw caller"][0].value
    assert SUBJECT.encode() not in by_name["mail before 1990, raw sender and subject"][0].value

    # Every valid event stored and derived as `process` derives them.
    assert worker_count(tmp_path / "wh") == len({(e.source, e.id) for e in events})
    valid = tmp_path / "valid.jsonl"
    valid.write_bytes(b"".join(line + b"\n" for line in source_lines()))
    cli(env, "process", str(valid), "--warehouse", str(tmp_path / "replay-wh"))
    for month in ("2026-03",):
        assert report(env, tmp_path / "wh", "", month) == report(env, tmp_path / "replay-wh", "", month)
    assert "Traceback" not in worker.log.read_text()


def test_dead_letters_go_to_the_fallback_file_when_the_topic_refuses_them(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    create_topics(kafka_bootstrap, prefix, dead_letter_max_bytes=10)  # refuses every copy, even 1 KiB
    cli(env, "topics", "create")
    events = valid_events()[-300:]
    where = publish_with_poison(kafka_bootstrap, prefix, events)
    fallback = tmp_path / "state" / "dead-letters.jsonl"
    group = prefix + "availability-stream"
    with Worker(env, tmp_path / "wh", "", free_port(), "--dead-letter-file", str(fallback)) as worker:
        worker.wait_for(
            lambda: committed_everything(kafka_bootstrap, group, topic_names(prefix)), "all offsets committed"
        )
        metrics = worker.metrics() or {}
        assert metrics["availability_stream_dead_letter_fallbacks_total"] == len(where)
        assert worker.stop() == 0
    lines = [json.loads(line) for line in fallback.read_text().splitlines()]
    assert {(r["topic"], r["partition"], r["offset"]) for r in lines} == set(where)
    assert all(r["reason"] and r["dead_letter_error"] for r in lines)
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o600
    assert worker_count(tmp_path / "wh") == len({(e.source, e.id) for e in events})
