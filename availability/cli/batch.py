"""The `availability` command (spec/cli.md).

User mistakes end as one line on stderr and a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from pydantic import ValidationError

from availability import __version__
from availability.cli import common
from availability.settings import Settings
from schemas.errors import AvailabilityError, InputError

EXIT_REJECTED = 2


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"availability: {_setting_problem(exc)}", file=sys.stderr)
        return 1
    args = _parser(settings).parse_args(argv)
    _interruptible()
    try:
        code: int = args.run(args, settings)
        return code
    except AvailabilityError as exc:
        print(f"availability: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("availability: interrupted", file=sys.stderr)
        return 130


def _interruptible() -> None:
    """Ctrl-C (SIGINT) stops every command with exit 130, also when the process started with
    SIGINT ignored: a shell starts the background jobs of a script that way (`availability
    process … &`), and Python then keeps ignoring it, so a `kill -INT` let the run go on to the
    end and exit 0. A load stopped this way is marked unfinished in the warehouse (item 6)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _setting_problem(exc: ValidationError) -> str:
    """The first invalid setting as one line naming its environment variable (not its value,
    which may be a secret)."""
    error = exc.errors()[0]
    name = str(error["loc"][0]).upper() if error["loc"] else "?"
    variable = name if name.startswith(("AVAILABILITY_", "KAFKA_")) else f"AVAILABILITY_{name}"
    return f"invalid setting {variable}: {error['msg']}"


# -- commands -----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.simulator.traffic import simulate, write_jsonl

    agreements = common.agreements(args.agreements)
    if args.to_kafka:
        from availability.cli.stream import publish_simulation

        return publish_simulation(args, settings, simulate(agreements, args.start, args.days, args.seed, args.scale))
    if not args.out:
        raise InputError("simulate needs --out FILE.jsonl or --to-kafka")
    out = Path(args.out)
    try:
        with out.open("wb") as handle, common.progress("simulating", total=args.days) as advance:
            count = write_jsonl(
                common.days_ticked(simulate(agreements, args.start, args.days, args.seed, args.scale), advance), handle
            )
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    print(f"wrote {count} events for {args.days} days from {args.start} to {out}", file=sys.stderr)
    return 0


def cmd_process(args: argparse.Namespace, settings: Settings) -> int:
    from stream_jobs.core.deriver import Deriver
    from stream_jobs.replay import replay

    paths = common.input_files(args.files)
    agreements = common.agreements(args.agreements)
    boundary = common.boundary(settings, agreements)
    # The rejects file is checked (and made) before the warehouse: a mistake costs no work.
    with common.RejectsWriter(args.rejects, inputs=paths) as on_reject, common.warehouse(args.warehouse) as wh:
        load = wh.start_load([str(p.resolve()) for p in paths])
        total = sum(p.stat().st_size for p in paths)
        with common.progress("processing", total) as advance:
            result = replay(paths, boundary, Deriver(wh, agreements), on_reject, advance)
        wh.finish_load(load)  # only now: an interrupted or crashed run stays marked unfinished
    print(
        f"processed {result.accepted + result.rejected} events: {result.accepted} accepted, "
        f"{result.rejected} rejected" + (f" (see {args.rejects})" if args.rejects and result.rejected else ""),
        file=sys.stderr,
    )
    return EXIT_REJECTED if result.rejected else 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.report import monthly_report
    from dashboards.report_table import render

    agreements = common.agreements(args.agreements)
    with common.warehouse(args.warehouse) as wh:
        report = monthly_report(wh, agreements, args.month, now=args.as_of)
    for warning in common.incomplete_load_warnings(report):
        print(f"availability: {warning}", file=sys.stderr)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if fmt == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        render(report, agreements, sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.report import monthly_report
    from dashboards.report_table import render
    from ingest.simulator.traffic import simulate, write_jsonl
    from stream_jobs.replay import replay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    month = args.month or common.previous_month(date.today())
    start = date.fromisoformat(f"{month}-01")
    days = ((start.replace(day=28) + timedelta(days=4)).replace(day=1) - start).days
    agreements = common.agreements(args.agreements)
    events_file = out / f"events-{month}.jsonl"
    print(f"simulating {month} ({days} days) of CallGuide and mailbox traffic -> {events_file}", file=sys.stderr)
    with events_file.open("wb") as handle, common.progress("simulating", total=days) as advance:
        write_jsonl(common.days_ticked(simulate(agreements, start, days, args.seed, args.scale), advance), handle)

    with common.warehouse(str(out / "warehouse")) as wh:
        boundary, deriver = common.pipeline(settings, agreements, wh)
        load = wh.start_load([str(events_file.resolve())], command="demo")
        with common.progress("processing", total=events_file.stat().st_size) as advance:
            result = replay([events_file], boundary, deriver, lambda r: None, advance)
        wh.finish_load(load)
        report = monthly_report(wh, agreements, month)
    report_file = out / f"report-{month}.json"
    report_file.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    render(report, agreements, sys.stdout)
    print(
        f"\n{result.accepted} events stored in {out / 'warehouse'} (embedded ClickHouse); report: {report_file}",
        file=sys.stderr,
    )
    return 0


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="availability",
        description="Availability analytics for CallGuide phone queues and function mailboxes.",
    )
    parser.add_argument("--version", action="version", version=f"availability {__version__}")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def agreements_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--agreements",
            metavar="A.yaml",
            default=settings.agreements,
            help="service-agreements file (env AVAILABILITY_AGREEMENTS; default: the shipped agreements)",
        )

    def warehouse_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--warehouse",
            metavar="W",
            default=settings.warehouse,
            help="a directory (embedded ClickHouse) or http://user:pass@host:8123/db (env AVAILABILITY_WAREHOUSE)",
        )

    key_note = "Pseudonyms use the secret in env AVAILABILITY_PSEUDONYM_KEY."

    p = sub.add_parser("demo", help="simulate a month, process it, print and write the report", epilog=key_note)
    p.add_argument("--out", metavar="DIR", default="./availability-demo", help="where to put everything")
    p.add_argument("--month", type=common.month_arg, help="month to simulate (default: last month)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=common.positive(float), default=1.0)
    agreements_opt(p)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("simulate", help="write synthetic canonical events (deterministic per seed)")
    p.add_argument("--start", type=common.date_arg, required=True, metavar="DATE")
    p.add_argument("--days", type=common.positive(int), required=True, metavar="N")
    p.add_argument("--seed", type=int, required=True, metavar="S")
    p.add_argument(
        "--scale", type=common.positive(float), default=1.0, metavar="X", help="volume multiplier (1 = one centre)"
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE.jsonl")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish through the ingest boundary to Kafka (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument("--speed", type=common.positive(float), help="with --to-kafka: replay at N× real time")
    agreements_opt(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("process", help="replay JSONL events into the warehouse (idempotent)", epilog=key_note)
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    agreements_opt(p)
    warehouse_opt(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_process)

    p = sub.add_parser("report", help="the monthly availability report")
    p.add_argument("--month", type=common.month_arg, required=True, metavar="YYYY-MM")
    agreements_opt(p)
    warehouse_opt(p)
    p.add_argument("--format", choices=["json", "table"], help="default: table on a terminal, else json")
    p.add_argument("--as-of", type=common.instant_arg, metavar="TIME", help="evaluate open cases as if now were TIME")
    p.set_defaults(run=cmd_report)

    from availability.cli.stream import add_commands

    add_commands(sub, settings, agreements_opt)
    return parser


if __name__ == "__main__":
    sys.exit(main())
