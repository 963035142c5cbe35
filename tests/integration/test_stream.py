"""The stream path against the real broker: the same report as the replay, across a crash."""

from __future__ import annotations

import random
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.topics import CALLS, partition_of
from tests.conftest import EXAMPLES
from tests.integration.streaming import Webhook, Worker, cli, committed_everything, environment, report

pytestmark = pytest.mark.integration

EXAMPLE_AGREEMENTS = str(EXAMPLES / "agreements.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def topic_names(prefix: str) -> list[str]:
    return [f"{prefix}availability.{name}" for name in ("calls", "agents", "mail")]


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.")


def shuffled_with_duplicates(lines: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    mixed = lines + rng.sample(lines, k=len(lines) // 3)
    rng.shuffle(mixed)
    return mixed


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the spec's examples are not available")
def test_events_through_the_webhook_and_publish_give_the_same_report_as_process(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    mixed = shuffled_with_duplicates(lines, seed=11)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(mixed[: len(mixed) // 2]) + "\n")
    second.write_text("\n".join(mixed[len(mixed) // 2 :]) + "\n")

    cli(env, "topics", "create")
    cli(env, "publish", str(second), "--agreements", EXAMPLE_AGREEMENTS)
    # Something that bypassed the ingest boundary: the worker must put it on the dead-letter topic.
    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    invalid = (
        b'{"specversion": "1.0", "id": "x1", "source": "rogue", "type": "call.queued", "time": "2026-04-01T09:00:00"}'
    )
    with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        producer.send(f"{prefix}availability.calls", key=b"p9", value=invalid).get(timeout=30)
    worker = Worker(env, tmp_path / "stream-wh", EXAMPLE_AGREEMENTS, free_port())
    # The other half through the CallGuide webhook, while the worker runs.
    with Webhook(env, EXAMPLE_AGREEMENTS, free_port()) as webhook:
        body = ("[" + ",".join(first.read_text().splitlines()) + "]").encode()
        assert webhook.post(body, "application/cloudevents-batch+json") == 202
    group = env["AVAILABILITY_TOPIC_PREFIX"] + "availability-stream"
    worker.wait_for(
        lambda: committed_everything(kafka_bootstrap, group, topic_names(env["AVAILABILITY_TOPIC_PREFIX"])),
        "all offsets committed",
    )
    assert worker.processed() == len(mixed) + 1
    assert worker.stop() == 0  # SIGTERM: flush, commit, exit cleanly
    [dead] = consume_all(kafka_bootstrap, f"{prefix}availability.dead-letter")
    assert dead.value == invalid and dead.key == b"p9"
    assert b"offset" in dict(dead.headers)["reason"]  # "time: no UTC offset (...)"

    cli(
        env,
        "process",
        str(EXAMPLES / "events.jsonl"),
        "--agreements",
        EXAMPLE_AGREEMENTS,
        "--warehouse",
        str(tmp_path / "replay-wh"),
    )
    streamed = report(env, tmp_path / "stream-wh", EXAMPLE_AGREEMENTS, "2026-04")
    replayed = report(env, tmp_path / "replay-wh", EXAMPLE_AGREEMENTS, "2026-04")
    assert streamed == replayed
    assert streamed["queues"]["kundreskontra"]["offered"] == 4  # and it is the worked example's


def consume_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        return list(consumer)
    finally:
        consumer.close()


def test_simulate_to_kafka_publishes_what_simulate_writes(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    day = ["simulate", "--start", "2026-03-04", "--days", "1", "--seed", "3", "--scale", "0.2"]
    cli(env, *day, "--out", str(tmp_path / "day.jsonl"))
    cli(env, *day, "--to-kafka")
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        topics = topic_names(env["AVAILABILITY_TOPIC_PREFIX"])
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        published = sum(consumer.end_offsets(partitions).values())  # fresh topics: end offset = messages
    finally:
        consumer.close()
    assert published == sum(1 for _ in (tmp_path / "day.jsonl").open())
    # The live gauges' ownership rule (schemas.topics.partition_of) is where the publisher put each key.
    calls = consume_all(kafka_bootstrap, topics[0])
    assert calls and all(m.partition == partition_of(m.key.decode(), CALLS) for m in calls)


def test_sigkill_in_the_middle_of_a_day_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    day = tmp_path / "day.jsonl"
    cli(env, "simulate", "--start", "2026-03-03", "--days", "1", "--seed", "5", "--scale", "2", "--out", str(day))
    total = sum(1 for _ in day.open())
    cli(env, "topics", "create")
    cli(env, "publish", str(day))
    group = env["AVAILABILITY_TOPIC_PREFIX"] + "availability-stream"
    topics = topic_names(env["AVAILABILITY_TOPIC_PREFIX"])

    # Small batches so the kill lands while most of the day is still to be written.
    worker = Worker(env, tmp_path / "stream-wh", "", free_port(), "--batch-events", "200", "--batch-seconds", "0.2")
    worker.wait_for(lambda: worker.processed() >= total * 0.3, "a third of the day")
    worker.kill()
    assert not committed_everything(kafka_bootstrap, group, topics), "the kill came too late to test anything"

    worker = Worker(env, tmp_path / "stream-wh", "", free_port())
    worker.wait_for(lambda: committed_everything(kafka_bootstrap, group, topics), "all offsets committed")
    assert worker.stop() == 0

    cli(env, "process", str(day), "--warehouse", str(tmp_path / "replay-wh"))
    assert report(env, tmp_path / "stream-wh", "", "2026-03") == report(env, tmp_path / "replay-wh", "", "2026-03")
