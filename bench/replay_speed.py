"""Benchmark: replay throughput of `availability process` against plain JSON parsing.

Targets (issue #14, scale; the foundation's were 50 000 events/s and 6x): replaying a simulated
week at --scale 20 sustains at least 100 000 events/s in one process, at most 3x the time the
standard library's `json` takes merely to parse the same file, and 28 days peak at most 600 MB,
flat as the file grows. The figures and what limits them: README.md, "Speed".

    .venv/bin/python bench/replay_speed.py [--scale 20] [--days 7] [--workdir DIR]

Each measurement runs in a fresh subprocess, so peak RSS (ru_maxrss) is that run's own.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
mode, path, warehouse = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if mode == "json":
    start = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            json.loads(line)
    seconds = time.perf_counter() - start
else:
    from availability.settings import Settings
    from availability.wiring import Wiring
    from stream_jobs.replay import replay
    wiring = Wiring(Settings(), tell=lambda text: None)
    agreements = wiring.agreements(None)
    with wiring.warehouse(warehouse) as wh:
        boundary, deriver = wiring.boundary(agreements), wiring.deriver(wh, agreements)
        start = time.perf_counter()
        result = replay([path], boundary, deriver, on_reject=lambda r: None)
        seconds = time.perf_counter() - start
    assert result.rejected == 0, result
print(json.dumps({"seconds": seconds, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(mode: str, path: Path, warehouse: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(warehouse)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def simulate(path: Path, start: date, days: int, scale: float) -> int:
    from ingest.simulator import simulate as events
    from ingest.simulator import write_jsonl
    from schemas.agreements import load_agreements

    with path.open("wb") as handle:
        return write_jsonl(events(load_agreements(), start, days, seed=7, scale=scale), handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 3, 2))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="availability-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {_cpus()} CPUs"
    )
    rows = []
    for days in sorted({1, args.days, 4 * args.days}):  # the longer runs show memory stays flat
        path = workdir / f"week-{days}d-x{args.scale:g}.jsonl"
        count = simulate(path, args.start, days, args.scale)
        size_mb = path.stat().st_size / 1e6
        parse = run("json", path, workdir)
        replay = run("replay", path, workdir / f"warehouse-{days}d-{time.time_ns()}")
        rows.append((days, count, size_mb, parse, replay))
        print(
            f"{days} day(s) at scale {args.scale:g}: {count} events, {size_mb:.1f} MB\n"
            f"  json.loads only : {parse['seconds']:.2f} s ({count / parse['seconds']:,.0f} events/s)\n"
            f"  replay          : {replay['seconds']:.2f} s ({count / replay['seconds']:,.0f} events/s), "
            f"{replay['seconds'] / parse['seconds']:.1f}x json, peak RSS {replay['max_rss_mb']:.0f} MB"
        )
    (first, *_, last) = rows
    if last is not first:
        print(
            f"memory: {first[4]['max_rss_mb']:.0f} MB for {first[0]} day, {last[4]['max_rss_mb']:.0f} MB for "
            f"{last[0]} days ({last[1] / first[1]:.1f}x the events)"
        )


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
