"""Benchmark: how well the staffing forecast (`availability staffing`) foresees a quarter.

Simulates the shipped agreements' traffic at scale 1 over `--history` weeks before `--from` and
the `--weeks` weeks from it (default: 12 weeks from 2026-01-12, then the quarter 2026-04-06 to
2026-07-05), processes it into an embedded warehouse in a temporary directory, then backtests
each week of the quarter, forecast from the `--history-weeks` weeks before it only, and prints
per queue: calls, WAPE over open 15-minute slots, the Poisson floor (the WAPE a forecast equal to
the true rates would get), the naive forecast's WAPE (the same slot a week before), MAPE per slot
(slots with a call) and per day, and the agents' difference. docs/staffing.md has the figures.

    .venv/bin/python bench/staffing_backtest.py [--from 2026-04-06] [--weeks 13] [--history 12]
        [--history-weeks 4 8 12] [--seed 7] [--scale 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2026, 4, 6))
    parser.add_argument("--weeks", type=int, default=13)
    parser.add_argument("--history", type=int, default=12, help="weeks simulated before --from")
    parser.add_argument("--history-weeks", type=int, nargs="+", default=[8], help="the model's window(s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.start.weekday() != 0:
        parser.error("--from must be a Monday")

    from availability.settings import Settings
    from availability.wiring import Wiring
    from dashboards.staffing.formats import backtest_table
    from dashboards.staffing.history import read_history
    from dashboards.staffing.plan import backtest, iso_week, models
    from ingest.simulator import simulate, write_jsonl
    from stream_jobs.replay import replay

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="availability-staffing-"))
    workdir.mkdir(parents=True, exist_ok=True)
    first = args.start - timedelta(weeks=args.history)
    days = 7 * (args.history + args.weeks)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{_memory_gib():.0f} GiB, {platform.python_implementation()} {platform.python_version()}; {date.today()}"
    )
    wiring = Wiring(Settings(), tell=lambda text: None)
    agreements = wiring.agreements(None)
    events = workdir / "events.jsonl"
    clock = time.perf_counter()
    with events.open("wb") as out:
        count = write_jsonl(simulate(agreements, first, days, args.seed, args.scale), out)
    print(
        f"simulated {count} events, {first} to {first + timedelta(days=days - 1)}: {time.perf_counter() - clock:.1f} s"
    )
    with wiring.warehouse(str(workdir / "warehouse")) as wh:
        clock = time.perf_counter()
        result = replay([events], wiring.boundary(agreements), wiring.deriver(wh, agreements), lambda r: None)
        wh.flush()
        print(f"processed {result.accepted} events into {workdir / 'warehouse'}: {time.perf_counter() - clock:.1f} s")
        mondays = [args.start + timedelta(weeks=i) for i in range(args.weeks)]
        clock = time.perf_counter()
        history = read_history(wh, agreements, first, mondays[-1] + timedelta(days=7))
        print(f"read the history: {time.perf_counter() - clock:.1f} s")
    for window in args.history_weeks:
        clock = time.perf_counter()
        bt = backtest(history, agreements, mondays, history_weeks=window)
        seconds = time.perf_counter() - clock
        print(f"\n== model window {window} weeks: backtest of {args.weeks} weeks in {seconds:.1f} s ==")
        backtest_table(bt, "en", sys.stdout)
        total = bt.total()
        hours = (total.agents_forecast, total.agents_actual)
        print(f"agent-hours forecast {hours[0]:.0f}, needed by the calls that came {hours[1]:.0f}")
        last = mondays[-1]
        fitted, params = models(history, agreements, history.days(last - timedelta(weeks=window), last), None)
        print(f"per queue; the load as the last week's forecast estimated it ({iso_week(last)}):")
        for q in bt.scores:
            s, p, m = bt.queue_total(q), params[q], fitted[q]
            print(
                f"  {q:<20} forecast/actual {s.forecast / s.actual if s.actual else float('nan'):.3f}  "
                f"|Δagents| {s.agents_mae or 0:.2f}  month start ×{m.month_start:.2f} ({m.month_start_seen} days)  "
                f"talk {p.talk_seconds:.0f} s + wrap-up {p.wrap_up_seconds:.0f} s  patience {p.patience_seconds:.0f} s "
                f"({p.patience_source})  base {p.base_share:.3f}"
            )


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


if __name__ == "__main__":
    main()
