"""The fault suite (issue #7): the stream path on its own broker, with everything going wrong.

A steady producer (`availability simulate --to-kafka`) publishes a simulated day while poison
and oversized messages are mixed in; the worker is killed with SIGKILL at seeded random
moments and restarted; the broker is stopped and started again under the producer, which must
keep retrying until it is acknowledged. At the end the worker's warehouse gives the same
monthly report as a clean `process` of the valid events, and every poison message is on the
dead-letter topic or in the fallback file.

The broker is this test's own (deploy/dev/kafka.sh with its own ports and data directory), so
stopping it disturbs no one; everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.integration.streaming import AVAILABILITY, Worker, cli, committed_everything, environment, report
from tests.integration.test_poison import poison_messages
from tests.integration.test_stream import free_port, topic_names

pytestmark = pytest.mark.integration

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "kafka.sh"
SEED = 20261128
PRODUCE_SECONDS = 75  # how long the steady producer takes for the simulated day


class Broker:
    """A broker of this test's own: `kafka.sh` with other ports and a data directory in tmp."""

    def __init__(self, data_dir: Path) -> None:
        port, controller = free_port(), free_port()
        self.address = f"127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} | {
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller),
            "KAFKA_DATA_DIR": str(data_dir),
            "KAFKA_STOP_TIMEOUT": "20",
        }

    def _run(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KAFKA_SH), action], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )

    def start(self) -> None:
        result = self._run("start")
        if result.returncode != 0:
            raise AssertionError(f"kafka.sh start failed:\n{result.stderr[-3000:]}")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def broker(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Broker]:
    """Needs what the shared broker needs (java and the jars deploy/dev/kafka.sh caches)."""
    own = Broker(tmp_path / "kafka")
    try:
        own.start()
        yield own
    finally:
        own.stop()


class PoisonProducer(threading.Thread):
    """Publishes a poison or oversized message every `interval` s, retrying each until the
    broker acknowledged it (the broker goes away in between); records where each landed."""

    def __init__(self, bootstrap: str, prefix: str, interval: float, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.prefix, self.interval, self.rng = bootstrap, prefix, interval, rng
        kinds = poison_messages()
        # Oversized ones too: within what the broker takes (1 MiB), beyond one event (64 KiB).
        kinds += [
            ("300 KB of JSON", "mail", b'{"specversion": "1.0", "pad": "' + b"p" * 300_000 + b'"}'),
            ("900 KB of bytes", "calls", bytes(rng.randrange(256) for _ in range(1000)) * 900),
        ]
        self.kinds = [k for k in kinds if not k[0].startswith("1.5 MB")]  # the topics here take 1 MiB
        self.landed: dict[tuple[str, int, int], str] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.attempts: list[str] = []  # failed attempts, for the assertion message

    def run(self) -> None:
        producer: Any = None
        try:
            i = 0
            while not self.done.wait(self.interval):
                name, topic, value = self.kinds[i % len(self.kinds)]
                i += 1
                full = f"{self.prefix}availability.{topic}"
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if producer is None:
                            producer = KafkaProducer(
                                bootstrap_servers=self.bootstrap, acks="all", max_request_size=2 * 1024 * 1024
                            )
                        meta = producer.send(full, key=f"poison-{i}".encode(), value=value).get(timeout=15)
                        self.landed[(full, meta.partition, meta.offset)] = name
                        break
                    except Exception as exc:
                        self.attempts.append(f"{time.strftime('%X')} {name}: {exc!r}")
                        if time.monotonic() > deadline:
                            raise
                        if producer is not None:
                            close(producer)  # what it still holds is sent again by the next one
                            producer = None
                        time.sleep(0.5)
        except BaseException as exc:
            self.error = exc
        finally:
            if producer is not None:
                close(producer)


def close(producer: Any) -> None:
    """As ingest.kafka.publisher does: kafka-python's close() raises with records pending and leaves the
    producer open (its __del__ then prints a traceback), so stop it for good."""
    try:
        producer.close(timeout=1)
    except Exception:
        with contextlib.suppress(Exception):
            producer._sender.force_close()
        producer._closed = True


def dead_letters(bootstrap: str, topic: str) -> set[tuple[str, int, int]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        return {
            (h["topic"].decode(), int(h["partition"]), int(h["offset"])) for m in consumer for h in [dict(m.headers)]
        }
    finally:
        consumer.close()


def test_kill_9_broker_restart_and_poison_under_a_steady_producer_give_the_clean_report(
    tmp_path: Path, broker: Broker
) -> None:
    rng = random.Random(SEED)
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    env = environment(broker.address, prefix)
    day = tmp_path / "day.jsonl"
    simulate = ["simulate", "--start", "2026-03-03", "--days", "1", "--seed", str(SEED % 1000), "--scale", "1"]
    cli(env, *simulate, "--out", str(day))
    with day.open() as f:
        times = [datetime.fromisoformat(json.loads(line)["time"]) for line in f]
    speed = (max(times) - min(times)).total_seconds() / PRODUCE_SECONDS
    cli(env, "topics", "create")
    group = prefix + "availability-stream"
    topics = topic_names(prefix)
    started = time.monotonic()

    producer_log = tmp_path / "producer.log"
    with producer_log.open("w") as out:
        producer = subprocess.Popen(
            [*AVAILABILITY, *simulate, "--to-kafka", "--speed", f"{speed:.3f}"], env=env, stdout=out, stderr=out
        )
    poison = PoisonProducer(broker.address, prefix, interval=1.5, rng=rng)
    poison.start()
    fallback = tmp_path / "dead-letters.jsonl"
    args = ["--batch-events", "300", "--batch-seconds", "0.2", "--dead-letter-file", str(fallback)]
    workers = [Worker(env, tmp_path / "wh", "", free_port(), *args)]
    try:
        # SIGKILL the worker at three seeded moments, restarting it each time; between the first
        # and the second, stop the broker under the producers and start it again.
        for round_ in range(3):
            time.sleep(rng.uniform(5, 12))
            if round_ == 1:
                broker.stop()
                at_stop = len(workers[-1].log.read_text().splitlines())
                time.sleep(rng.uniform(5, 10))
                broker.start()
                during = workers[-1].log.read_text().splitlines()[at_stop:]
                time.sleep(rng.uniform(3, 8))
            workers[-1].kill()
            workers.append(Worker(env, tmp_path / "wh", "", free_port(), *args))
        assert producer.wait(timeout=240) == 0, producer_log.read_text()[-3000:]
        poison.done.set()
        poison.join(timeout=150)
        assert poison.error is None, "\n".join(poison.attempts[-20:])
        worker = workers[-1]
        worker.wait_for(lambda: committed_everything(broker.address, group, topics), "all offsets committed", 240)
        assert worker.stop() == 0
    finally:
        poison.done.set()
        if producer.poll() is None:
            producer.kill()
        for w in workers:
            if w.process.poll() is None:
                w.kill()

    # Every poison message kept: on the dead-letter topic, or in the fallback file (the broker was away).
    kept = dead_letters(broker.address, f"{prefix}availability.dead-letter")
    if fallback.exists():
        kept |= {(r["topic"], r["partition"], r["offset"]) for r in map(json.loads, fallback.read_text().splitlines())}
    assert len(poison.landed) >= 20 and set(poison.landed) <= kept

    # The same report as a clean `process` of the valid events.
    cli(env, "process", str(day), "--warehouse", str(tmp_path / "replay-wh"))
    assert report(env, tmp_path / "wh", "", "2026-03") == report(env, tmp_path / "replay-wh", "", "2026-03")

    # The outage was summarised, not logged per attempt (~150 ERROR lines a second before), and
    # no client wrote a traceback, not even while closing.
    assert len(during) < 150, "\n".join(during[-80:])
    for w in workers:
        assert "Traceback" not in w.log.read_text(), w.log.read_text()[-5000:]
    assert time.monotonic() - started < 420  # bounded: a few minutes
