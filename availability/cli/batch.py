"""The batch commands: `demo`, `simulate` (to a file), `process` (replay into the warehouse),
and the demo (which writes the month's report in JSON, Excel and HTML)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from availability.cli.args import KEY_NOTE, SharedOptions, date_arg, input_files, month_arg, positive
from availability.cli.progress import days_ticked, progress
from availability.cli.rejects import EXIT_REJECTED, RejectsWriter
from availability.wiring import Wiring
from schemas.calendar import month_before, month_days
from schemas.errors import InputError


def cmd_simulate(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.simulator import simulate, write_jsonl

    agreements = wiring.agreements(args.agreements)
    events = simulate(agreements, args.start, args.days, args.seed, args.scale)
    if args.to_kafka:
        from availability.cli.stream import publish_simulation

        return publish_simulation(args, wiring, agreements, events)
    if not args.out:
        raise InputError("simulate needs --out FILE.jsonl or --to-kafka")
    out = Path(args.out)
    try:
        with out.open("wb") as handle, progress("simulating", total=args.days) as advance:
            count = write_jsonl(days_ticked(events, advance), handle)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    print(f"wrote {count} events for {args.days} days from {args.start} to {out}", file=sys.stderr)
    return 0


def cmd_process(args: argparse.Namespace, wiring: Wiring) -> int:
    from stream_jobs.replay import replay

    paths = input_files(args.files)
    agreements = wiring.agreements(args.agreements)
    boundary = wiring.boundary(agreements)
    # The rejects file is checked (and made) before the warehouse: a mistake costs no work.
    with RejectsWriter(args.rejects, inputs=paths) as on_reject, wiring.warehouse(args.warehouse) as wh:
        load = wh.start_load([str(p.resolve()) for p in paths])
        total = sum(p.stat().st_size for p in paths)
        with progress("processing", total) as advance:
            result = replay(paths, boundary, wiring.deriver(wh, agreements), on_reject, advance)
        wh.finish_load(load)  # only now: an interrupted or crashed run stays marked unfinished
    print(
        f"processed {result.accepted + result.rejected} events: {result.accepted} accepted, "
        f"{result.rejected} rejected" + (f" (see {args.rejects})" if args.rejects and result.rejected else ""),
        file=sys.stderr,
    )
    if result.conflicts:
        print(
            f"{result.conflicts} conflicting duplicates (same source and id, other content): one version of each "
            "kept, the others counted in the report's conflicting_duplicates",
            file=sys.stderr,
        )
    return EXIT_REJECTED if result.rejected else 0


def cmd_demo(args: argparse.Namespace, wiring: Wiring) -> int:
    from availability.cli.report import render
    from dashboards.report import monthly_report
    from ingest.simulator import simulate, write_jsonl
    from stream_jobs.replay import replay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    month = args.month or month_before(date.today())
    start, last = month_days(month)
    days = (last - start).days + 1
    agreements = wiring.agreements(args.agreements)
    events_file = out / f"events-{month}.jsonl"
    print(f"simulating {month} ({days} days) of CallGuide and mailbox traffic -> {events_file}", file=sys.stderr)
    with events_file.open("wb") as handle, progress("simulating", total=days) as advance:
        write_jsonl(days_ticked(simulate(agreements, start, days, args.seed, args.scale), advance), handle)

    with wiring.warehouse(str(out / "warehouse")) as wh:
        boundary, deriver = wiring.boundary(agreements), wiring.deriver(wh, agreements)
        load = wh.start_load([str(events_file.resolve())], command="demo")
        with progress("processing", total=events_file.stat().st_size) as advance:
            result = replay([events_file], boundary, deriver, lambda r: None, advance)
        wh.finish_load(load)
        report = monthly_report(wh, agreements, month)
    files = {fmt: out / f"report-{month}.{fmt}" for fmt in ("json", "xlsx", "html")}
    for fmt, path in files.items():
        path.write_bytes(render(report, agreements, fmt, "sv"))
    sys.stdout.buffer.write(render(report, agreements, "table", "sv"))
    sys.stdout.flush()
    print(
        f"\n{result.accepted} events stored in {out / 'warehouse'} (embedded ClickHouse)\n"
        f"the report of {month}: {files['json']} (JSON), {files['xlsx']} (Excel), {files['html']} (open in a browser)",
        file=sys.stderr,
    )
    return 0


def add_commands(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser("demo", help="simulate a month, process it, print and write the report", epilog=KEY_NOTE)
    p.add_argument("--out", metavar="DIR", default="./availability-demo", help="where to put everything")
    p.add_argument("--month", type=month_arg, help="month to simulate (default: last month)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=positive(float), default=1.0)
    options.agreements(p)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("simulate", help="write synthetic canonical events (deterministic per seed)")
    p.add_argument("--start", type=date_arg, required=True, metavar="DATE")
    p.add_argument("--days", type=positive(int), required=True, metavar="N")
    p.add_argument("--seed", type=int, required=True, metavar="S")
    p.add_argument("--scale", type=positive(float), default=1.0, metavar="X", help="volume multiplier (1 = one centre)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE.jsonl")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish through the ingest boundary to Kafka (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument("--speed", type=positive(float), help="with --to-kafka: replay at N× real time")
    options.agreements(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("process", help="replay JSONL events into the warehouse (idempotent)", epilog=KEY_NOTE)
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    options.agreements(p)
    options.warehouse(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_process)
