"""Benchmark: what a restarted worker's restore costs now that it replays the earlier weeks'
agent events (LiveState._replay_agents; docs/forecasting.md#limits).

    .venv/bin/python bench/restore_replay.py [--scale 1] [--days 29]

Simulated traffic (the shipped agreements, seed 1) from 2 February 2026 is stored in a fresh
embedded warehouse (chDB, a temporary directory) through the Deriver, a day per batch; then a
new live state restores from it at the end of the last day, as a worker does when it starts.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import Event
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.warehouse import Warehouse

START = date(2026, 2, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="simulator scale (default 1)")
    parser.add_argument("--days", type=int, default=29, help="days stored (default 29: the four weeks and a day)")
    args = parser.parse_args()
    agreements = load_agreements()
    with tempfile.TemporaryDirectory() as directory:
        wh = Warehouse.open(directory)
        try:
            deriver, day, batch, stored = Deriver(wh, agreements), START, list[Event](), 0
            for ev in simulate(agreements, START, args.days, 1, args.scale):
                if ev.time.astimezone(agreements.timezone).date() != day and batch:
                    deriver.apply(batch)
                    stored, batch, day = stored + len(batch), [], ev.time.astimezone(agreements.timezone).date()
                batch.append(ev)
            deriver.apply(batch)
            wh.flush()
            end = datetime.combine(START + timedelta(days=args.days), datetime.min.time(), agreements.timezone)
            now = end.astimezone(UTC)
            agent_events = len(wh.agent_events(now - timedelta(days=args.days), now))
            live = LiveState(agreements, clock=lambda: now)
            began = time.perf_counter()
            live.restore(wh, lambda kind, key: True)
            took = time.perf_counter() - began
            alone = LiveState(agreements, clock=lambda: now)
            began = time.perf_counter()
            alone._replay_agents(wh, lambda kind, key: True, now)  # the replay's part of it
            replay = time.perf_counter() - began
        finally:
            wh.close()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"scale {args.scale:g}: {stored + len(batch)} events over {args.days} days ({agent_events} agent events); "
        f"restore {took:.2f} s (the replay alone {replay:.2f} s), {len(live.staffing)} staffing samples, "
        f"{sum(len(d) for d in live.handling.values())} handling cycles"
    )


if __name__ == "__main__":
    main()
