"""Benchmark: how close any forecast of the 30-minute service level can come on the simulator's
traffic: the ceiling of the calibration mark (issue #15, docs/forecasting.md#calibration).

    .venv/bin/python bench/oracle.py [--start 2026-03-02] [--days 10] [--warmup 28] [--scale 10] [--copies 40]

At each :00 and :30 the simulated day is forked `--copies` times as it stands (every caller
waiting, every agent's state and shift, every timer: `PhoneDay.fork`); each fork runs on with
its own random numbers and its own new callers, drawn from the day's Poisson process, and the
service level of each queue's callers of the next half hour is counted in each, as
bench/calibration.py counts the day's own. The forks' spread is what the half hour holds in
store beyond its state: how many callers come and when, their patience, their talk. (The forks
also keep what the simulator drew before the half hour: a waiting caller's patience, a talking
one's end, an agent's return, a redial's time; so every figure here errs high.)

For each open half hour with a realised value:
- the ceiling: the largest share of forks within 10 points of any one value (no forecast made
  at the half hour is expected to be within 10 points of the day more often);
- the forks' mean and median, scored against the day: a forecast that knows the simulator
  exactly (its state now, its distributions, its roster).
"""

from __future__ import annotations

import argparse
import bisect
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import traffic_arguments
from ingest.simulator import profiles as P
from ingest.simulator.phone import PhoneDay
from ingest.simulator.state import Out, Simulator, instant
from schemas.agreements import Agreements, load_agreements
from schemas.events import CallQueued, Event
from stream_jobs.calibration import Counts, half_hours, open_throughout
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.outlook import HORIZON
from stream_jobs.core.store import MemoryStore

# Every caller of a half hour has left the queues this long after it: the queue time-out runs
# across transfers (a callback is booked within 2 minutes).
SETTLE = timedelta(seconds=max(p.timeout_s for p in P.QUEUES.values()) + 5 * 60)
WITHIN = 0.10


@dataclass(frozen=True)
class Row:
    queue: str
    start: datetime
    realised: float
    base: int
    forks: list[float]  # the forks' service levels (those with a base)

    @property
    def ceiling(self) -> float:
        """The largest share of the forks within 10 points of one value: the most in any window
        20 points wide (one starting at a fork's value holds as many as any other)."""
        xs = sorted(self.forks)
        return max(bisect.bisect_right(xs, low + 2 * WITHIN + 1e-9) - i for i, low in enumerate(xs)) / len(xs)


def levels(agreements: Agreements, items: list[tuple[float, int, Event]], start: datetime) -> dict[str, Counts]:
    """Each queue's counts for the contacts first queued in the half hour from `start`, from
    the calls queued in it (all their events, through a fresh Deriver)."""
    begin, end = start.timestamp(), (start + HORIZON).timestamp()
    calls = {ev.subject for t, _, ev in items if begin <= t < end and isinstance(ev, CallQueued)}
    events = [ev for _, _, ev in items if ev.subject in calls]  # the Deriver orders a call's events itself
    store = MemoryStore()
    Deriver(store, agreements).apply(events)
    return {q: c for (q, s), c in half_hours(store, agreements.timezone).items() if s == start}


def measure(agreements: Agreements, start: date, days: int, warmup: int, seed: int, scale: float,
            copies: int) -> list[Row]:  # fmt: skip
    sim, tz, rows = Simulator(agreements, seed, scale), agreements.timezone, []
    first = start - timedelta(days=warmup)
    for i in range(warmup + days):
        d = first + timedelta(days=i)
        day = PhoneDay(sim, d, Out(sim, d), [instant(d, h * 60, tz) for h in range(25)])
        day.begin()  # the phone day alone: the mail day draws its own random numbers
        forks: dict[datetime, list[dict[str, Counts]]] = {}
        for minute in range(0, 24 * 60, 30) if d >= start else ():
            t = datetime.fromtimestamp(instant(d, minute, tz), UTC)
            if not any(open_throughout(agreements, q, t) for q in agreements.queues):
                continue
            day.advance(t.timestamp())
            forks[t] = []
            for k in range(copies):
                twin = day.fork(f"fork{seed}-{t:%Y%m%d%H%M}-{k}")
                twin.advance((t + HORIZON + SETTLE).timestamp())
                forks[t].append(levels(agreements, day.out.items + twin.out.items, t))
        day.advance(float("inf"))
        for t, samples in forks.items():
            real = levels(agreements, day.out.items, t)
            for q in agreements.queues:
                got = real.get(q, Counts())
                values = [v for s in samples if (v := s.get(q, Counts()).level) is not None]
                if open_throughout(agreements, q, t) and got.level is not None and values:
                    rows.append(Row(q, t, got.level, got.base, values))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    traffic_arguments(parser)
    parser.add_argument("--copies", type=int, default=40, help="forks per half hour (default 40)")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = measure(load_agreements(), args.start, args.days, args.warmup, args.seed, args.scale, args.copies)
    print(
        f"{args.days} days from {args.start} after {args.warmup}, scale {args.scale:g}, seed {args.seed}, "
        f"{args.copies} forks a half hour: {time.perf_counter() - began:.0f} s on "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )

    def scores(part: list[Row]) -> str:
        def share(pick: Callable[[Row], float]) -> float:
            return sum(abs(pick(r) - r.realised) <= WITHIN + 1e-9 for r in part) / len(part)

        return (
            f"{len(part):4} half hours: ceiling {statistics.mean(r.ceiling for r in part):6.1%}, "
            f"forks' mean {share(lambda r: statistics.mean(r.forks)):6.1%}, "
            f"median {share(lambda r: statistics.median(r.forks)):6.1%} within 10 points"
        )

    print(f"{'all':22} {scores(rows)}")
    by_queue: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_queue[r.queue].append(r)
    for queue, part in sorted(by_queue.items()):
        print(f"{queue:22} {scores(part)}, base {statistics.mean(r.base for r in part):.1f}")


if __name__ == "__main__":
    main()
