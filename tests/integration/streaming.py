"""Running the real `availability` commands against the real broker, for the stream tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import free_port

AVAILABILITY = [sys.executable, "-m", "availability"]


def cli(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*AVAILABILITY, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"availability {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


class Worker:
    """`availability stream` as a subprocess, with its /metrics."""

    def __init__(self, env: dict[str, str], warehouse: Path, agreements: str, port: int, *extra: str) -> None:
        self.port = port
        self.log = warehouse.parent / f"stream-{port}-{time.monotonic_ns()}.log"
        if "--sql-listen" not in extra:  # a port of its own: tests run workers side by side
            extra = (*extra, "--sql-listen", f"127.0.0.1:{free_port()}")
        self.sql_url = f"http://{extra[extra.index('--sql-listen') + 1]}"
        args = ["stream", "--warehouse", str(warehouse), *_agreements(agreements), "--web-port", str(port), *extra]
        with self.log.open("w") as log:
            self.process = subprocess.Popen([*AVAILABILITY, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self.metrics() is not None, "the worker's /metrics", timeout=60)

    def metrics(self) -> dict[str, float] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the stream worker exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def processed(self) -> float:
        m = self.metrics() or {}
        return m.get('availability_stream_events_total{outcome="processed"}', 0.0) + m.get(
            'availability_stream_events_total{outcome="rejected"}', 0.0
        )

    def wait_for(self, condition: Any, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        """A test that failed half-way leaves no worker behind."""
        if self.process.poll() is None:
            self.kill()


class Webhook:
    """`availability ingest webhook --allow-anonymous` as a subprocess."""

    def __init__(self, env: dict[str, str], agreements: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        args = ["ingest", "webhook", "--port", str(port), "--allow-anonymous", *_agreements(agreements)]
        # Its output goes to a file, not a pipe: nobody reads a pipe while it runs, and a full one
        # (64 KiB of access log) would stop the webhook.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115  # closed by __exit__ (or a failed start)
        self.process = subprocess.Popen([*AVAILABILITY, *args], env=env, stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._healthy():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                self.process.wait()
                self.output.seek(0)
                output = self.output.read().decode(errors="replace")[-2000:]
                self.output.close()
                raise AssertionError(f"the webhook did not start: {output}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def post(self, body: bytes, content_type: str) -> int:
        request = urllib.request.Request(f"{self.url}/events", data=body, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            self.output.close()


def committed_everything(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when the group's committed offsets reach the end of every partition of the topics."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
        partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
    finally:
        consumer.close()
        admin.close()


def report(env: dict[str, str], warehouse: Path, agreements: str, month: str) -> dict[str, Any]:
    out = cli(
        env, "report", "--month", month, *_agreements(agreements), "--warehouse", str(warehouse),
        "--format", "json", "--as-of", "2027-01-01T00:00:00Z",
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def environment(bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAILABILITY_")}
    return env | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AVAILABILITY_TOPIC_PREFIX": prefix} | extra


def _agreements(path: str) -> list[str]:
    """`--agreements PATH`, or nothing for the shipped default."""
    return ["--agreements", path] if path else []
