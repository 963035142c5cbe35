"""Benchmark: the outlook's expected 30-minute service level against the realised one
(issue #15, docs/forecasting.md#calibration).

    .venv/bin/python bench/calibration.py [--start 2026-03-02] [--days 10] [--warmup 28] [--scale 10]

The simulator's traffic (the shipped agreements) runs through the Deriver and the live state
as the worker runs it; at every :00 and :30 of each queue's opening hours the outlook's expected
service level is taken, then compared with the service level of the contacts first queued in
that half hour. Prints the share within 10 points, the bias, per queue; and the share had the
outlook been told the half hour's arrivals, the agents who then served, or both (what is left
is the model's error and chance's). bench/oracle.py measures how close any forecast can come.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.agreements import load_agreements
from stream_jobs.calibration import Interval, calibrate


def report(rows: list[Interval]) -> None:
    judged = [r for r in rows if r.error is not None]
    for least in (1, 5, 10, 30):
        part = [r for r in judged if r.base >= least]
        if part:
            within = sum(abs(r.error) <= 10 for r in part if r.error is not None) / len(part)
            bias = statistics.mean(r.error for r in part if r.error is not None)
            print(f"base >= {least:>2}: {len(part):4} half hours, {within:6.1%} within 10 points, bias {bias:+.1f}")
    print(f"{len(rows) - len(judged)} open half hours had no contact in the base (no realised value)")
    told = [r for r in judged if r.served]  # the worker's staffing samples cover them (4 weeks kept)
    variants = (("as shipped", None), ("told the arrivals", (False, True)), ("told the staffing", (True, False)),
                ("told both", (True, True)))  # fmt: skip
    for label, what in variants if told else ():
        level = [(r.told(staffing=what[0], arrivals=what[1]) if what else r.expected) for r in told]
        within = sum(abs(x - (r.realised or 0.0)) <= 0.1 for x, r in zip(level, told, strict=True)) / len(told)
        print(f"{label + ':':19} {len(told):4} half hours, {within:6.1%} within 10 points")
    by_queue: dict[str, list[Interval]] = defaultdict(list)
    for r in judged:
        by_queue[r.queue].append(r)
    print(f"{'queue':22} {'n':>4} {'within':>7} {'bias':>6} {'base':>6} {'expected':>9} {'realised':>9}")
    for queue, part in sorted(by_queue.items()):
        errors = [r.error for r in part if r.error is not None]
        print(
            f"{queue:22} {len(part):4} {sum(abs(e) <= 10 for e in errors) / len(part):7.0%} "
            f"{statistics.mean(errors):+6.1f} {statistics.mean(r.base for r in part):6.1f} "
            f"{statistics.mean(r.expected for r in part):9.2f} {statistics.mean(r.realised or 0 for r in part):9.2f}"
        )


def traffic_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulated traffic measured (bench/oracle.py measures the same)."""
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 3, 2), help="first measured day")
    parser.add_argument("--days", type=int, default=10, help="measured days (default 10)")
    parser.add_argument("--warmup", type=int, default=28, help="days simulated before, as history (default 28)")
    parser.add_argument("--scale", type=float, default=10.0, help="simulator scale (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    traffic_arguments(parser)
    parser.add_argument("--restart", action="store_true", help="the worker restarts as the first measured day begins")
    args = parser.parse_args()
    agreements = load_agreements()
    began = time.perf_counter()
    rows = calibrate(
        agreements,
        args.start,
        args.days,
        warmup_days=args.warmup,
        seed=args.seed,
        scale=args.scale,
        restart=args.restart,
    )
    print(
        f"{args.days} days from {args.start} after {args.warmup} days of history, scale {args.scale:g}, "
        f"{'restarted at its start, ' if args.restart else ''}"
        f"seed {args.seed}: {time.perf_counter() - began:.0f} s on {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    report(rows)


if __name__ == "__main__":
    main()
