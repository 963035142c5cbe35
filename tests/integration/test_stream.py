"""The stream path against the real broker: the same report as the replay, across a crash."""

from __future__ import annotations

import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ingest.kafka.publisher import partition_of
from schemas.topics import CALLS
from tests.conftest import EXAMPLES, free_port
from tests.integration.streaming import Webhook, Worker, cli, committed_everything, environment, report

pytestmark = pytest.mark.integration

EXAMPLE_AGREEMENTS = str(EXAMPLES / "agreements.yaml")


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


@pytest.mark.usefixtures("examples")  # without them: a skip locally, a failure in CI
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
    # The worker recorded which agreements derived its facts: a report with another threshold
    # names the measure it changes.
    raw = yaml.safe_load(Path(EXAMPLE_AGREEMENTS).read_text(encoding="utf-8"))
    raw["queues"]["kundreskontra"]["service_level_seconds"] += 15
    other = tmp_path / "other-agreements.yaml"
    other.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    changed = report(env, tmp_path / "stream-wh", str(other), "2026-04")["agreements_changed"]
    assert [(c["process"], c["setting"], c["measures"]) for c in changed] == [
        ("kundreskontra", "service_level_seconds", ["service_level"])
    ]


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
    with (tmp_path / "day.jsonl").open() as f:
        assert published == sum(1 for _ in f)
    # The live gauges' ownership rule (ingest.kafka.publisher.partition_of) is where the publisher put each key.
    calls = consume_all(kafka_bootstrap, topics[0])
    assert calls and all(m.partition == partition_of(m.key.decode(), CALLS) for m in calls)


def test_sigkill_in_the_middle_of_a_day_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    day = tmp_path / "day.jsonl"
    cli(env, "simulate", "--start", "2026-03-03", "--days", "1", "--seed", "5", "--scale", "2", "--out", str(day))
    with day.open() as f:
        total = sum(1 for _ in f)
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


def test_a_new_or_older_warehouse_behind_the_consumer_group_is_refused_until_from_beginning(
    tmp_path: Path, env: dict[str, str], kafka_bootstrap: str
) -> None:
    """Issue #7, item 9: a warehouse that lacks what the group committed got only new events, silently."""
    day = tmp_path / "day.jsonl"
    cli(env, "simulate", "--start", "2026-03-03", "--days", "1", "--seed", "6", "--scale", "0.3", "--out", str(day))
    lines = day.read_text().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[: len(lines) // 2]))
    second.write_text("".join(lines[len(lines) // 2 :]))
    cli(env, "topics", "create")
    group = env["AVAILABILITY_TOPIC_PREFIX"] + "availability-stream"
    topics = topic_names(env["AVAILABILITY_TOPIC_PREFIX"])

    def drain(warehouse: Path, messages: int, *extra: str) -> None:
        with Worker(env, warehouse, "", free_port(), *extra) as worker:
            worker.wait_for(lambda: worker.processed() >= messages, f"{messages} messages stored")
            worker.wait_for(lambda: committed_everything(kafka_bootstrap, group, topics), "all offsets committed")
            assert worker.stop() == 0
            assert "Traceback" not in worker.log.read_text()

    cli(env, "publish", str(first))
    drain(tmp_path / "wh", len(lines) // 2)
    shutil.copytree(tmp_path / "wh", tmp_path / "backup", symlinks=True)  # a backup of the warehouse, half a day old
    cli(env, "publish", str(second))
    drain(tmp_path / "wh", len(lines) - len(lines) // 2)

    for behind in (tmp_path / "new", tmp_path / "backup"):
        refused = cli(
            env, "stream", "--warehouse", str(behind), "--web-port", str(free_port()), check=False, timeout=60
        )
        said = [
            line for line in refused.stderr.splitlines() if line.startswith("availability: ") and "warning" not in line
        ]
        assert refused.returncode != 0 and len(said) == 1, refused.stderr[-3000:]  # one clear line
        assert "--from-beginning" in said[0] and "lacks" in said[0], said[0]
        drain(behind, len(lines), "--from-beginning")
        assert report(env, behind, "", "2026-03") == report(env, tmp_path / "wh", "", "2026-03")
    drain(tmp_path / "backup", 0)  # now it holds what the group committed: it starts without the flag


def test_topics_create_keeps_dead_letters_a_week_also_on_an_existing_topic(
    env: dict[str, str], kafka_bootstrap: str
) -> None:
    """Issue #7, item 14: the dead-letter topic kept raw personal data for 90 days."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    dead = f"{prefix}availability.dead-letter"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        # As an earlier `topics create` made it, and with an operator's own setting beside it.
        configs = {"retention.ms": str(90 * 86_400_000), "max.message.bytes": "500000"}
        admin.create_topics([NewTopic(dead, 1, 1, topic_configs=configs)])
        out = cli(env, "topics", "create").stdout
        assert f"{dead}: exists, 1 partition, retention changed from 90 days to 7 days" in out.splitlines()
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, dead)], config_filter="all")
        values = {k: v["value"] for k, v in described["topic"][dead].items()}
        assert values["retention.ms"] == str(7 * 86_400_000)
        assert values["max.message.bytes"] == "500000"  # only the retention is changed
        assert f"{dead}: exists, 1 partition" in cli(env, "topics", "create").stdout.splitlines()  # nothing to do
    finally:
        admin.close()


def test_workers_creating_the_topics_at_once_all_succeed(kafka_bootstrap: str) -> None:
    """Two workers (or `topics create` and a worker) starting together: one creates a topic the
    other listed as missing a moment before, whose create then fails with TopicAlreadyExists; it
    must look again and succeed (the alerting end-to-end test once saw the worker exit here)."""
    from concurrent.futures import ThreadPoolExecutor

    from ingest.kafka.admin import ensure_topics

    for _ in range(3):  # a race: several fresh prefixes, four at once each
        prefix = f"race-{uuid.uuid4().hex[:8]}."
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(ensure_topics, [kafka_bootstrap] * 4, [prefix] * 4))
        for lines in results:
            assert len(lines) == 4 and all(f"{prefix}availability." in line for line in lines)


def test_the_gap_check_names_what_the_warehouse_lacks(tmp_path: Path) -> None:
    """Issue #7, item 9, without a broker: the positions the sink records against the committed offsets."""
    from stream_jobs.warehouse import Warehouse
    from stream_jobs.worker.app import warehouse_gap

    calls = "p.availability.calls"
    with Warehouse.open(str(tmp_path / "wh")) as wh:
        committed = {(calls, 0): 120, (calls, 1): 0}
        gap = warehouse_gap(wh, committed, "p.availability-stream")  # a new warehouse
        assert gap is not None and "lacks 120 messages" in gap and f"{calls}[0] holds 0 of 120" in gap
        assert "`availability stream --from-beginning`" in gap
        wh.record_positions([(calls, 0, 100), (calls, 0, 120)])
        assert warehouse_gap(wh, committed, "p.availability-stream") is None  # it holds what was committed
        later = {(calls, 0): 150}  # the group went on with another warehouse: this one is a backup
        assert "lacks 30 messages" in (warehouse_gap(wh, later, "p.availability-stream") or "")
