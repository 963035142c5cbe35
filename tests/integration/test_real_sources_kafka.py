"""Real sources on the stream path, against the real broker: `import --to-kafka` into the
worker, and `ingest queue-log --follow` through a kill -9 and a log rotation, losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from kafka import KafkaConsumer

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.sources.queue_log import QueueLogOptions, read_queue_log
from schemas.agreements import load_agreements
from tests.conftest import SHARED, free_port, unavailable
from tests.integration.streaming import AVAILABILITY, Worker, cli, committed_everything, environment

KEY = "a-test-key-of-at-least-32-bytes-long!!"
PBXWARE = SHARED / "data" / "external" / "asterisk_queue_log" / "pbxware-queue_log-2018-11-29_12-04.pseudonymised.csv"
PBX_AGREEMENTS = Path(__file__).resolve().parents[1] / "data" / "pbxware" / "agreements.yaml"


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.", AVAILABILITY_PSEUDONYM_KEY=KEY)


def test_an_import_to_kafka_is_stored_by_the_worker_as_process_stores_the_file(tmp_path, env, kafka_bootstrap):
    if not PBXWARE.exists():
        unavailable(f"{PBXWARE} is missing (set AVAILABILITY_SHARED to the shared directory)")
    agreements = str(PBX_AGREEMENTS)
    cli(env, "topics", "create")
    imported = cli(env, "import", "queue-log", str(PBXWARE), "--queue-map", "IT=it", "--agreements", agreements,
                   "--to-kafka")  # fmt: skip
    # 1000 rows: 365 with events, 635 ignored by design (RINGNOANSWER, OUT*, QUEUESTART, CONFIGRELOAD).
    assert "1000 records: 365 with events, 635 ignored, 0 rejected; 669 events accepted, 0 refused" in imported.stderr
    sent = int(imported.stderr.split("published ")[1].split()[0])
    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    topics = [f"{prefix}availability.{t}" for t in ("calls", "agents", "mail")]
    with Worker(env, tmp_path / "wh", agreements, free_port()) as worker:
        worker.wait_for(lambda: committed_everything(kafka_bootstrap, prefix + "availability-stream", topics), "all")
        metrics = worker.metrics() or {}
        assert metrics['availability_source_events_total{outcome="stored",source="asterisk"}'] == sent
        assert metrics['availability_source_events_total{outcome="rejected",source="asterisk"}'] == 0
        assert worker.stop() == 0
    # The same file through `import --out` and `process`: the same report, month by month.
    events = tmp_path / "pbx.jsonl"
    cli(
        env,
        "import",
        "queue-log",
        str(PBXWARE),
        "--queue-map",
        "IT=it",
        "--agreements",
        agreements,
        "--out",
        str(events),
    )
    cli(env, "process", str(events), "--agreements", agreements, "--warehouse", str(tmp_path / "replay"))
    for month in ("2018-11", "2018-12"):
        args = ["report", "--month", month, "--agreements", agreements, "--format", "json"]
        streamed = json.loads(cli(env, *args, "--warehouse", str(tmp_path / "wh")).stdout)
        replayed = json.loads(cli(env, *args, "--warehouse", str(tmp_path / "replay")).stdout)
        assert streamed["queues"] == replayed["queues"]
    health = json.loads(cli(env, "sources", "--warehouse", str(tmp_path / "wh"), "--format", "json").stdout)
    assert [(s["source"], s["events"], s["rejected"]) for s in health["sources"]] == [("asterisk", sent, 0)]


# -- ingest queue-log --follow ------------------------------------------------------------------


def native_calls(first: int, count: int, start: int) -> list[str]:
    """`count` answered calls in the native format, one a minute from epoch `start`."""
    lines = []
    for i in range(first, first + count):
        t, call = start + 60 * i, f"{start + 60 * i}.{i}"
        lines += [
            f"{t}|{call}|support|NONE|ENTERQUEUE||070123{i:04d}|1",
            f"{t + 7}|{call}|support|PJSIP/70{i % 4}|CONNECT|7|{call}9|2",
            f"{t + 40}|{call}|support|PJSIP/70{i % 4}|COMPLETECALLER|7|33|1",
        ]
    return lines


class Follower:
    def __init__(self, env: dict[str, str], log: Path, checkpoint: Path, output: Path) -> None:
        args = ["ingest", "queue-log", "--follow", str(log), "--checkpoint", str(checkpoint),
                "--queue-map", "support=kundreskontra", "--interval", "0.2"]  # fmt: skip
        self.output = output.open("a")
        self.process = subprocess.Popen([*AVAILABILITY, *args], env=env, stdout=self.output, stderr=self.output)

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.output.close()
        return code


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


class Topic:
    """Every message of a topic so far, read by one consumer that keeps its place."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.values: list[bytes] = []

    def read(self) -> list[bytes]:
        for batch in self.consumer.poll(timeout_ms=300, max_records=10_000).values():
            self.values += [m.value for m in batch]
        return self.values

    def ids(self) -> set[str]:
        return {json.loads(v)["id"] for v in self.read()}


def test_a_followed_queue_log_loses_nothing_through_kill_and_rotation(tmp_path, env, kafka_bootstrap):
    cli(env, "topics", "create")
    on_topic = Topic(kafka_bootstrap, f"{env['AVAILABILITY_TOPIC_PREFIX']}availability.calls")
    start = int(time.time()) - 6 * 3600  # earlier today: the live boundary takes it
    log, checkpoint, output = tmp_path / "queue_log", tmp_path / "ql.checkpoint.json", tmp_path / "follow.log"
    everything: list[str] = []

    def append(lines: list[str], to: Path = log) -> None:
        everything.extend(lines)
        with to.open("a") as f:
            f.write("".join(line + "\n" for line in lines))

    append(native_calls(0, 40, start))
    follower = Follower(env, log, checkpoint, output)
    try:
        wait_until(lambda: len(on_topic.read()) >= 40 * 4, "the first calls on the topic")
        append(native_calls(40, 40, start))
        # kill -9 while it may be between reading and publishing, or publishing and committing.
        time.sleep(0.3)
        assert follower.stop(signal.SIGKILL) == -signal.SIGKILL
        append(native_calls(80, 20, start))  # written while nobody follows
        os.rename(log, tmp_path / "queue_log.1")  # logrotate's `create`: the old file renamed...
        append(native_calls(100, 30, start))  # ...and a new one started
        follower = Follower(env, log, checkpoint, output)
        append(native_calls(130, 20, start))
        expected = expected_ids(everything)
        wait_until(lambda: on_topic.ids() >= expected, "every event of every line on the topic", 90)
        assert follower.stop(signal.SIGTERM) == 0
        time.sleep(0.5)  # anything published after the last look
        assert on_topic.ids() == expected  # nothing lost, nothing made up
    finally:  # also when an assertion failed: no consumer, follower or log file left open
        on_topic.consumer.close()
        if follower.process.poll() is None:
            follower.stop(signal.SIGKILL)
    # At least once: a batch published before the kill but not committed comes again, identical.
    by_id: dict[str, bytes] = {}
    for value in on_topic.values:
        event_id = json.loads(value)["id"]
        assert by_id.setdefault(event_id, value) == value
    assert "Traceback" not in output.read_text()


def expected_ids(lines: list[str]) -> set[str]:
    """The ids the whole log gives, read at once as `import` reads it, through the boundary."""
    path = Path(f"/tmp/expected-{uuid.uuid4().hex}.queue_log")
    path.write_text("".join(line + "\n" for line in lines))
    try:
        agreements = load_agreements(None)
        boundary = Boundary(agreements, Pseudonymiser(KEY.encode(), agreements))
        ids = set()
        options = QueueLogOptions(queue_map={"support": "kundreskontra"})
        for record in read_queue_log(path, options):
            for raw in record.events:
                event = boundary.accept(msgspec.json.encode(raw))
                assert not isinstance(event, Rejection), event
                if raw["type"].startswith("call."):  # the calls topic's (agent.state goes to its own)
                    ids.add(event.id)
        return ids
    finally:
        path.unlink()
