"""Benchmark: how long a scrape's outlook holds the worker's event loop (docs/forecasting.md#limits).

    .venv/bin/python bench/outlook_loop.py [--queues 9] [--waiting 300] [--rounds 5]

Every queue of the shipped agreements that is open on a Tuesday at 10:30 is made overloaded:
12 agents busy and `--waiting` callers queued over the last 30 minutes (300 is the outlook's
cap on calls waiting). A ticker on the event loop stands in for the batches the worker stores
meanwhile and records its longest gap while the outlook is computed, as the worker did before
(on the loop, `LiveState.predictions`) and as it does now (`refresh_outlook`: the inputs on
the loop, Erlang A on a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import count
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.agreements import load_agreements
from schemas.events import Event, decode
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.store import MemoryStore
from stream_jobs.worker.app import refresh_outlook

NOW = datetime(2026, 4, 14, 8, 30, tzinfo=UTC)  # Tue 10:30 in Stockholm
AGENTS = 12


def overloaded(queues: int, waiting: int) -> tuple[LiveState, int]:
    agreements = load_agreements()
    live = LiveState(agreements, clock=lambda: NOW)
    deriver = Deriver(MemoryStore(), agreements, track_changes=True)
    ids, events = count(), list[Event]()

    def event(type_: str, at: datetime, **data: object) -> Event:
        raw = {"specversion": "1.0", "id": f"b{next(ids)}", "source": "callguide", "type": type_,
               "time": at.isoformat(), "data": data}  # fmt: skip
        return decode(msgspec.json.encode(raw))

    open_now = [q for q, spec in agreements.queues.items() if spec.calendar.is_open(NOW)][:queues]
    for q in open_now:
        events += [event("agent.state", NOW - timedelta(minutes=30), agent=f"{q}-{a}", state="busy", queues=[q])
                   for a in range(AGENTS)]  # fmt: skip
        step = 1800 / waiting
        events += [event("call.queued", NOW - timedelta(seconds=1800 - i * step), call_id=f"{q}-{i}", queue=q)
                   for i in range(waiting)]  # fmt: skip
    live.observe(events, deriver.apply(events))
    return live, len(open_now)


async def longest_gap(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(the ticker's longest gap, the work's duration), in seconds."""
    loop, gaps, done = asyncio.get_running_loop(), [0.0], asyncio.Event()

    async def ticker() -> None:
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            gaps.append(loop.time() - last)
            last = loop.time()

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    began = time.perf_counter()
    await work()
    took = time.perf_counter() - began
    done.set()
    await task
    return max(gaps), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=9, help="overloaded queues (default 9, every one open)")
    parser.add_argument("--waiting", type=int, default=300, help="callers waiting in each (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="scrapes measured each way (default 5)")
    args = parser.parse_args()

    async def on_loop(live: LiveState) -> None:
        live.predictions(NOW)

    async def on_thread(live: LiveState) -> None:
        await refresh_outlook(live, asyncio.Lock())

    queues = 0
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for label, way in (("on the loop (before)", on_loop), ("on a thread (now)", on_thread)):
        runs = []
        for _ in range(args.rounds):
            live, queues = overloaded(args.queues, args.waiting)  # a fresh state: nothing cached
            runs.append(asyncio.run(longest_gap(partial(way, live))))
        gap, took = statistics.median(g for g, _ in runs), statistics.median(t for _, t in runs)
        worst = max(g for g, _ in runs)
        print(f"{label:22} {queues} queues: outlook {took:.2f} s, the loop's longest gap "
              f"{1000 * gap:.0f} ms (median of {args.rounds}; worst {1000 * worst:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
