"""The batch commands: `demo`, `simulate` (to a file), `process` (replay into the warehouse),
and the demo (which writes the month's report in JSON, Excel and HTML)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from availability.cli.args import KEY_NOTE, SharedOptions, date_arg, input_files, month_arg, non_negative, positive
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


LIVE_DEFAULTS = {"speed": 200.0, "from_time": time(7, 0), "until_time": time(18, 0), "lang": "sv"}
# demo --live's options by destination; each None unless given
LIVE_ONLY = {
    "day": "--day", "speed": "--speed", "from_time": "--from", "until_time": "--until", "web_port": "--web-port",
    "lang": "--lang",
}  # fmt: skip
PROCESS_EXIT = (
    "Exit status: 0 when every line was stored; 2 when some lines were rejected (the others are stored; 2 is "
    "also argparse's status for a wrong option); 1 for any other error, said in one line; 130 when interrupted "
    "(the load stays marked unfinished)."
)


def cmd_demo_any(args: argparse.Namespace, wiring: Wiring) -> int:
    """`demo`, or with --live the replay through the real worker (availability/cli/demo_live.py)."""
    if not args.live:
        given = [option for name, option in LIVE_ONLY.items() if getattr(args, name) is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only with demo --live")
        return cmd_demo(args, wiring)
    from availability.cli.demo_live import run_live_demo

    for name, value in LIVE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return run_live_demo(args, wiring)


def clock_time_arg(text: str) -> time:
    """HH:MM, a local time of day; 24:00 is the day's end."""
    if text.strip() == "24:00":
        return time.max
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time of day '{text}' (expected HH:MM)") from None


def add_commands(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a month, process it, print and write the report; --live: a day through the stream worker, "
        "its wall in the terminal",
        epilog=KEY_NOTE,
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="./availability-demo",
        help="where to put everything (default ./availability-demo)",
    )
    p.add_argument("--month", type=month_arg, help="month to simulate (default: last month)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same events (default 1)")
    p.add_argument(
        "--scale", type=positive(float), default=1.0, metavar="X", help="volume multiplier (default 1 = one centre)"
    )
    options.agreements(p)
    live = p.add_argument_group(
        "--live",
        "a simulated day replayed quickly through the real stream worker (needs Kafka, env KAFKA_BOOTSTRAP_SERVERS); "
        "the supervisors' wall is drawn from the worker's /metrics until Ctrl-C (exit 0); topics of the run's own, "
        "deleted at the end; the warehouse and the worker's log in DIR/live/ (docs/live-wall.md)",
    )
    live.add_argument("--live", action="store_true", help="replay one day live instead of a month's report")
    live.add_argument("--day", type=date_arg, metavar="DATE", help="the day (default: the latest working day)")
    live.add_argument(
        "--speed",
        type=positive(float),
        metavar="N",
        help=f"simulated seconds per real second (default {LIVE_DEFAULTS['speed']:g}: 07:00-18:00 in 3 min 20 s)",
    )
    live.add_argument(
        "--from",
        dest="from_time",
        type=clock_time_arg,
        metavar="HH:MM",
        help="the local time the replay starts at; earlier events of the day are published at once (default 07:00)",
    )
    live.add_argument(
        "--until",
        dest="until_time",
        type=clock_time_arg,
        metavar="HH:MM",
        help="the local time the replay ends at (24:00: the whole day); later events are left out, the worker's clock "
        "runs on (default 18:00)",
    )
    live.add_argument("--web-port", type=int, metavar="PORT", help="the worker's /metrics port (default: a free one)")
    live.add_argument("--lang", choices=["sv", "en"], help="the wall's language (default sv)")
    p.set_defaults(run=cmd_demo_any)

    p = sub.add_parser("simulate", help="write synthetic canonical events (deterministic per seed)")
    p.add_argument("--start", type=date_arg, required=True, metavar="DATE", help="the first local day simulated")
    p.add_argument("--days", type=positive(int), required=True, metavar="N", help="how many days")
    p.add_argument("--seed", type=int, required=True, metavar="S", help="random seed: the same seed, the same events")
    p.add_argument(
        "--scale", type=positive(float), default=1.0, metavar="X", help="volume multiplier (default 1 = one centre)"
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE.jsonl", help="write the events to this file")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish through the ingest boundary to Kafka (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument(
        "--speed",
        type=positive(float),
        metavar="N",
        help="with --to-kafka: replay at N× real time (default: as fast as it goes)",
    )
    p.add_argument(
        "--status-every",
        type=non_negative,
        default=60.0,
        metavar="SECONDS",
        help="with --to-kafka, where stderr is not a terminal: a progress line this often (default 60; 0: never)",
    )
    options.agreements(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser(
        "process",
        help="replay JSONL events into the warehouse (idempotent); exit 2 when some lines were rejected",
        epilog=f"{PROCESS_EXIT} {KEY_NOTE}",
    )
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    options.agreements(p)
    options.warehouse(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_process)
