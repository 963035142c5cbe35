"""Benchmark: the stream worker (`availability stream`) against the real broker.

Targets (issue #14, scale; the stream path's were 20 000 events/s and 2 s): one worker sustains
at least 50 000 events/s from Kafka into the warehouse; at a steady 1 000 events/s the time from
publish to the row being queryable is at most 1 s at the 99th percentile.

    deploy/dev/kafka.sh start
    .venv/bin/python bench/stream_speed.py [--scale 20] [--days 7] [--rate 1000] [--seconds 30]

Throughput: a simulated week is published first, then one worker drains it; the rate is
counted from its first stored batch to its last. Latency: the worker's own histogram
`availability_stream_publish_to_stored_seconds` (Kafka timestamp -> rows queryable), read
after a steady run; the reported p99 is the histogram bucket bound (an upper bound).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.streaming import Worker, cli, environment


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def throughput(bootstrap: str, workdir: Path, scale: float, days: int) -> None:
    env = environment(bootstrap, f"bench-{uuid.uuid4().hex[:8]}.")
    events = workdir / "week.jsonl"
    cli(
        env,
        "simulate",
        "--start",
        "2026-03-02",
        "--days",
        str(days),
        "--seed",
        "7",
        "--scale",
        str(scale),
        "--out",
        str(events),
    )
    total = sum(1 for _ in events.open())
    cli(env, "topics", "create")
    started = time.monotonic()
    cli(env, "publish", str(events), timeout=900)
    print(f"published {total} events in {time.monotonic() - started:.1f} s (kafka-python, acks=all)")

    worker = Worker(env, workdir / "wh-throughput", "", free_port())
    first = last = None
    while True:
        done = worker.processed()
        now = time.monotonic()
        if done and first is None:
            first = (now, done)
        if done >= total:
            last = (now, done)
            break
        time.sleep(0.05)
    worker.stop()
    assert first is not None and last is not None
    rate = (last[1] - first[1]) / (last[0] - first[0])
    print(f"throughput: {total} events stored by one worker, {rate:,.0f} events/s (first to last batch)")


def latency(bootstrap: str, workdir: Path, rate: int, seconds: int) -> None:
    from ingest.boundary import Boundary, Rejection
    from ingest.kafka.publisher import KafkaPublisher
    from ingest.pseudonymise import Pseudonymiser
    from ingest.simulator import simulate
    from schemas.agreements import load_agreements
    from schemas.events import encode

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    env = environment(bootstrap, prefix)
    cli(env, "topics", "create")
    worker = Worker(env, workdir / "wh-latency", "", free_port())
    time.sleep(12)  # let the consumer group settle before the clock starts

    agreements = load_agreements()
    boundary = Boundary(agreements, Pseudonymiser(b"bench", agreements))
    source = (boundary.accept(encode(ev)) for ev in simulate(agreements, date(2026, 3, 2), 30, seed=9, scale=20))
    step = 0.1
    per_step = int(rate * step)
    with KafkaPublisher(bootstrap, prefix) as publisher:
        start = time.monotonic()
        for i in range(int(seconds / step)):
            batch = [next(source) for _ in range(per_step)]
            publisher.publish([ev for ev in batch if not isinstance(ev, Rejection)])
            pause = start + (i + 1) * step - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        sent = int(seconds / step) * per_step
        achieved = sent / (time.monotonic() - start)
    worker.wait_for(lambda: worker.processed() >= sent, "all events stored", timeout=120)
    metrics = worker.metrics() or {}
    worker.stop()

    name = "availability_stream_publish_to_stored_seconds"
    count = metrics[f"{name}_count"]
    buckets = sorted(
        (float(k.split('le="')[1].rstrip('"}')), v) for k, v in metrics.items() if k.startswith(f"{name}_bucket")
    )
    p50 = next(le for le, c in buckets if c >= 0.50 * count)
    p99 = next(le for le, c in buckets if c >= 0.99 * count)
    mean = metrics[f"{name}_sum"] / count
    print(
        f"latency at {achieved:,.0f} events/s for {seconds} s: {int(count)} events, mean {mean:.2f} s, "
        f"p50 <= {p50} s, p99 <= {p99} s (publish -> queryable)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="availability-stream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, CPython {platform.python_version()}, broker {bootstrap}"
    )
    throughput(bootstrap, workdir, args.scale, args.days)
    latency(bootstrap, workdir, args.rate, args.seconds)


if __name__ == "__main__":
    main()
