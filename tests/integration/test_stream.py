"""The stream path against the real broker: the same report as the replay, across a crash."""

from __future__ import annotations

import random
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.integration.streaming import Worker, cli, committed_everything, environment, report

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
def test_stream_gives_the_same_report_as_process(tmp_path: Path, env: dict[str, str], kafka_bootstrap: str) -> None:
    lines = (EXAMPLES / "events.jsonl").read_text().splitlines()
    mixed = shuffled_with_duplicates(lines, seed=11)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(mixed[: len(mixed) // 2]) + "\n")
    second.write_text("\n".join(mixed[len(mixed) // 2 :]) + "\n")

    cli(env, "topics", "create")
    cli(env, "publish", str(second), "--agreements", EXAMPLE_AGREEMENTS)
    worker = Worker(env, tmp_path / "stream-wh", EXAMPLE_AGREEMENTS, free_port())
    cli(env, "publish", str(first), "--agreements", EXAMPLE_AGREEMENTS)  # while the worker runs
    group = env["AVAILABILITY_TOPIC_PREFIX"] + "availability-stream"
    worker.wait_for(
        lambda: committed_everything(kafka_bootstrap, group, topic_names(env["AVAILABILITY_TOPIC_PREFIX"])),
        "all offsets committed",
    )
    assert worker.processed() == len(mixed)
    assert worker.stop() == 0  # SIGTERM: flush, commit, exit cleanly

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
