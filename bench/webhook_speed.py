"""Benchmark: events/s the CallGuide webhook accepts (202, broker-acknowledged) in batches.

Target: at least 5 000 events/s in batches of a few hundred, on the 2-core development machine
with the broker on the same machine.

    .venv/bin/python bench/webhook_speed.py [--batch 500] [--clients 4] [--seconds 20]

The webhook runs as `availability ingest webhook` would (ingest.webhook.serve, in a subprocess,
so the load generator does not share its interpreter) against the broker of
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092, `deploy/dev/kafka.sh start`), under a topic
prefix of its own (`bench-<random>.`). Clients post simulated CallGuide traffic for a bounded
time; only 202 answers count. At the end the server gets SIGTERM and must exit cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BATCH_TYPE = "application/cloudevents-batch+json"

SERVER = r"""
from availability.cli import main
raise SystemExit(main(["ingest", "webhook", "--port", "0"]))
"""


def bodies(batch: int, count: int) -> list[bytes]:
    """`count` batch bodies of simulated traffic (raw events, with fake caller numbers)."""
    from ingest.simulator import simulate
    from schemas.agreements import load_agreements
    from schemas.events import encode

    events = simulate(load_agreements(), date(2026, 3, 2), 14, seed=7, scale=4)
    out = []
    for _ in range(count):
        chunk = list(islice(events, batch))
        if len(chunk) < batch:
            break
        out.append(b"[" + b",".join(encode(ev) for ev in chunk) + b"]")
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "availability: webhook listening on http://127.0.0.1:PORT (...)"
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the webhook did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].split()[0]


async def until_accepted(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> None:
    """Warm-up: the server connects to Kafka in the background; the topics get created."""
    deadline = time.monotonic() + 60
    while True:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status == 202:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"warm-up: the webhook answered {resp.status}: {await resp.text()}")
        await asyncio.sleep(0.5)


@dataclass
class Result:
    accepted: int
    elapsed: float
    statuses: dict[int, int]
    latencies: list[float]  # sorted, seconds

    def ms(self, q: float) -> str:
        return f"{self.latencies[round(q * (len(self.latencies) - 1))] * 1000:.0f} ms"


async def load(url: str, token: str, payloads: list[bytes], clients: int, seconds: float) -> Result:
    headers = {"Content-Type": BATCH_TYPE, "Authorization": f"Bearer {token}"}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    accepted = 0
    async with aiohttp.ClientSession() as session:
        await until_accepted(session, url, payloads[0], headers)
        start = time.perf_counter()
        stop = start + seconds

        async def client(n: int) -> None:
            nonlocal accepted
            i = n
            while time.perf_counter() < stop:
                body = payloads[i % len(payloads)]
                i += clients
                sent = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    reply = await resp.json()
                latencies.append(time.perf_counter() - sent)
                statuses[resp.status] += 1
                if resp.status == 202:
                    accepted += reply["accepted"]

        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    return Result(accepted, elapsed, dict(statuses), sorted(latencies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=20, help="how long to post")
    args = parser.parse_args()

    payloads = bodies(args.batch, 200)
    token = secrets.token_urlsafe(24)
    prefix = f"bench-{secrets.token_hex(6)}."
    env = dict(os.environ, AVAILABILITY_WEBHOOK_TOKEN=token, AVAILABILITY_TOPIC_PREFIX=prefix)
    env.setdefault("PYTHONPATH", str(ROOT))
    proc, address = start_server(env)
    try:
        result = asyncio.run(load(f"{address}/events", token, payloads, args.clients, args.seconds))
    finally:
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        stopped = time.perf_counter() - stopping

    rate = result.accepted / result.elapsed
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, broker on this machine")
    print(f"topics: {prefix}availability.*   {args.clients} clients x {args.batch} events/request, {args.seconds:g} s")
    print(f"answers: {result.statuses}")
    print(f"latency per request: p50 {result.ms(0.5)}, p95 {result.ms(0.95)}, max {result.ms(1.0)}")
    print(f"server stop on SIGTERM: exit code {code} after {stopped:.1f} s")
    print(f"accepted: {result.accepted} events in {result.elapsed:.1f} s = {rate:,.0f} events/s")
    if code != 0:
        raise SystemExit("the webhook did not exit cleanly on SIGTERM")


if __name__ == "__main__":
    main()
