"""Benchmark: the monthly report and the dashboards' queries over a year of synthetic facts.

For each size (units of a million calls and 400 000 mail cases a year; 50 is the issue's fifty
million calls and twenty million cases) a fresh embedded warehouse is filled by SQL inside
ClickHouse (bench/scale_fill.py), its interval aggregates are built as the migration builds them
(stream_jobs/intervals.py), and then, each timed cold-ish (ClickHouse's mark and uncompressed
caches dropped before every run; the OS page cache stays warm), median of --runs:

- the monthly report of October (dashboards/report.py: every view, the trend, the warnings);
- every ClickHouse query of the generated dashboards (history, mailboxes) over a day and over a
  week of October, as Grafana's ClickHouse plugin sends them (all queues and mailboxes selected),
  and over that day's morning up to 10:00, as a wall refreshed during the day would ask;
- with --compare (default at the largest size), the report's queue measures against the full
  scan over the facts (dashboards/full_scan.py): equal field for field, or the differences.

    .venv/bin/python bench/scale.py [--units 1 10 50] [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scale_fill import fill

from dashboards import full_scan, provenance, report
from schemas.agreements import Agreements, load_agreements
from schemas.calendar import local_month_bounds
from stream_jobs.intervals import refresh_sql
from stream_jobs.warehouse import Warehouse, ms

YEAR = 2026
MONTH = "2026-10"
DAY = datetime(2026, 10, 14, tzinfo=ZoneInfo("Europe/Stockholm"))  # a Wednesday
NOW = datetime(2026, 12, 31, tzinfo=UTC)  # every month of the year is over


def cold(wh: Warehouse) -> None:
    for cache in ("MARK CACHE", "UNCOMPRESSED CACHE", "QUERY CACHE"):
        wh.client.command(f"SYSTEM DROP {cache}")


def timed(wh: Warehouse, runs: int, work: Callable[[], object]) -> float:
    """The median seconds of `runs` cold-ish runs of `work`."""
    seconds = []
    for _ in range(runs):
        cold(wh)
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def dashboard_queries(agreements: Agreements) -> list[tuple[str, Callable[[datetime, datetime], str]]]:
    """(panel id, SQL for a time range) of every ClickHouse query of the generated dashboards."""
    from tests.warehouse.test_dashboard_queries import QUERIES, Request, expand, interval_seconds

    variables = {"queue": list(agreements.queues), "mailbox": list(agreements.mailboxes)}

    def one(q: Any) -> tuple[str, Callable[[datetime, datetime], str]]:
        sql = str(q.target["rawSql"])
        return q.id, lambda a, b: expand(sql, Request(a, b, interval_seconds(q.panel), variables))

    return [one(q) for q in QUERIES]


def run(units: float, runs: int, workdir: Path, compare: bool, agreements: Agreements) -> dict[str, Any]:
    path = workdir / f"warehouse-{units:g}"
    shutil.rmtree(path, ignore_errors=True)
    out: dict[str, Any] = {"units": units}
    with Warehouse.open(str(path)) as wh:
        start = time.perf_counter()
        out["calls"], out["cases"] = fill(wh.client, agreements, YEAR, units)
        out["fill_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for table in ("queue_intervals", "mailbox_intervals"):
            wh.client.command(refresh_sql(table))
        out["aggregates_seconds"] = time.perf_counter() - start
        out["rows"] = {
            table: wh.query(f"SELECT count() FROM {table}")[0][0]
            for table in ("call_contacts", "mail_cases", "queue_intervals", "mailbox_intervals")
        }

        out["report_seconds"] = timed(wh, runs, lambda: report.monthly_report(wh, agreements, MONTH, now=NOW))

        day = (DAY.astimezone(UTC), (DAY + timedelta(days=1)).astimezone(UTC))
        week = ((DAY - timedelta(days=2)).astimezone(UTC), (DAY + timedelta(days=5)).astimezone(UTC))
        morning = (day[0], (DAY + timedelta(hours=10)).astimezone(UTC))
        out["dashboards"] = {}
        for panel, sql in dashboard_queries(agreements):
            out["dashboards"][panel] = {
                name: timed(wh, runs, lambda r=rng, s=sql: wh.query(s(*r)))  # type: ignore[misc]
                for name, rng in (("day", day), ("week", week), ("morning", morning))
            }

        if compare:
            start = time.perf_counter()
            reference = full_scan.queue_parts(wh, agreements, MONTH)
            out["full_scan_seconds"] = time.perf_counter() - start
            got = report.monthly_report(wh, agreements, MONTH, now=NOW)
            first, _ = local_month_bounds(report.trend_months(MONTH)[0], agreements.timezone)
            _, end = local_month_bounds(MONTH, agreements.timezone)
            params = {"start": ms(first), "end": ms(end), "tz": str(agreements.timezone)}
            prints = wh.query(provenance.FINGERPRINTS_SQL, params)
            out["differences"] = full_scan.differences(got, reference, agreements, prints)
    return out


def show(results: list[dict[str, Any]]) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        "| units | calls | cases | fill | aggregates | report (median) | slowest dashboard query: day / week / morn |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        slowest = {
            name: max((v[name], panel) for panel, v in r["dashboards"].items()) for name in ("day", "week", "morning")
        }
        worst = " / ".join(f"{s:.3f} s ({p})" for s, p in slowest.values())
        print(
            f"| {r['units']:g} | {r['calls']:,} | {r['cases']:,} | {r['fill_seconds']:.0f} s | "
            f"{r['aggregates_seconds']:.1f} s | {r['report_seconds']:.3f} s | {worst} |"
        )
        if "differences" in r:
            verdict = "equal field for field" if not r["differences"] else f"{len(r['differences'])} differences"
            print(f"  full scan ({r['full_scan_seconds']:.1f} s) vs report: {verdict}")
            for line in r["differences"][:20]:
                print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=float, nargs="+", default=[1, 10, 50])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="where the warehouses go (default: a temporary one)")
    parser.add_argument("--compare", choices=("largest", "all", "none"), default="largest")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    agreements = load_agreements()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scale-"))
    results = []
    for units in args.units:
        compare = args.compare == "all" or (args.compare == "largest" and units == max(args.units))
        results.append(run(units, args.runs, workdir, compare, agreements))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "dashboards"}), file=sys.stderr)
    show(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
