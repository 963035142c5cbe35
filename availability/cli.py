"""The `availability` command (spec/cli.md).

User mistakes end as one line on stderr and a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from availability import __version__
from availability.errors import AvailabilityError, InputError
from availability.settings import Settings

EXIT_REJECTED = 2


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings()
    args = _parser(settings).parse_args(argv)
    try:
        code: int = args.run(args, settings)
        return code
    except AvailabilityError as exc:
        print(f"availability: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("availability: interrupted", file=sys.stderr)
        return 130


# -- commands -----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.simulator import simulate, write_jsonl

    agreements = _agreements(args.agreements)
    out = Path(args.out)
    try:
        with out.open("wb") as handle, _progress("simulating", total=args.days) as advance:
            count = write_jsonl(
                _days_ticked(simulate(agreements, args.start, args.days, args.seed, args.scale), advance), handle
            )
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror})") from None
    print(f"wrote {count} events for {args.days} days from {args.start} to {out}", file=sys.stderr)
    return 0


def cmd_process(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.jsonl import Rejected
    from stream_jobs.replay import replay

    paths = [Path(p) for p in args.files]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    agreements = _agreements(args.agreements)
    rejects_file = Path(args.rejects).open("w", encoding="utf-8") if args.rejects else None  # noqa: SIM115

    def on_reject(r: Rejected) -> None:
        if rejects_file is not None:
            record = {"file": r.file, "line": r.line, "reason": r.reason, "event": r.raw.decode("utf-8", "replace")}
            rejects_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            print(f"{r.file}:{r.line}: rejected: {r.reason}", file=sys.stderr)

    with _warehouse(args.warehouse) as wh:
        boundary, deriver = _pipeline(settings, agreements, wh)
        total = sum(p.stat().st_size for p in paths)
        try:
            with _progress("processing", total=total) as advance:
                result = replay(paths, boundary, deriver, on_reject, advance)
        finally:
            if rejects_file is not None:
                rejects_file.close()
    print(
        f"processed {result.accepted + result.rejected} events: {result.accepted} accepted, "
        f"{result.rejected} rejected" + (f" (see {args.rejects})" if args.rejects and result.rejected else ""),
        file=sys.stderr,
    )
    return EXIT_REJECTED if result.rejected else 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.report import monthly_report
    from dashboards.report_table import render

    agreements = _agreements(args.agreements)
    with _warehouse(args.warehouse) as wh:
        report = monthly_report(wh, agreements, args.month, now=args.as_of)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if fmt == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        render(report, agreements, sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.report import monthly_report
    from dashboards.report_table import render
    from ingest.simulator import simulate, write_jsonl
    from stream_jobs.replay import replay

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    month = args.month or _previous_month(date.today())
    start = date.fromisoformat(f"{month}-01")
    days = ((start.replace(day=28) + timedelta(days=4)).replace(day=1) - start).days
    agreements = _agreements(args.agreements)
    events_file = out / f"events-{month}.jsonl"
    print(f"simulating {month} ({days} days) of CallGuide and mailbox traffic -> {events_file}", file=sys.stderr)
    with events_file.open("wb") as handle, _progress("simulating", total=days) as advance:
        write_jsonl(_days_ticked(simulate(agreements, start, days, args.seed, args.scale), advance), handle)

    with _warehouse(str(out / "warehouse")) as wh:
        boundary, deriver = _pipeline(settings, agreements, wh)
        with _progress("processing", total=events_file.stat().st_size) as advance:
            result = replay([events_file], boundary, deriver, lambda r: None, advance)
        report = monthly_report(wh, agreements, month)
    report_file = out / f"report-{month}.json"
    report_file.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    render(report, agreements, sys.stdout)
    print(
        f"\n{result.accepted} events stored in {out / 'warehouse'} (embedded ClickHouse); report: {report_file}",
        file=sys.stderr,
    )
    return 0


# -- shared pieces ------------------------------------------------------------------------------


def _agreements(path: str | None) -> Any:
    from schemas.agreements import load_agreements

    return load_agreements(path)


@contextmanager
def _warehouse(target: str | None) -> Iterator[Any]:
    from availability.warehouse import Warehouse

    if not target:
        raise InputError("no warehouse given: use --warehouse DIR|URL or set AVAILABILITY_WAREHOUSE")
    wh = Warehouse.open(target)
    try:
        yield wh
    finally:
        wh.close()


def _pipeline(settings: Settings, agreements: Any, warehouse: Any) -> tuple[Any, Any]:
    from ingest.boundary import Boundary
    from ingest.pseudonymise import Pseudonymiser
    from stream_jobs.deriver import Deriver

    if settings.uses_development_key:
        print(
            "availability: warning: AVAILABILITY_PSEUDONYM_KEY is not set; pseudonyms use the public "
            "development key (fine for demos, not for real callers)",
            file=sys.stderr,
        )
    key = settings.pseudonym_key.get_secret_value().encode()
    return Boundary(agreements, Pseudonymiser(key, agreements)), Deriver(warehouse, agreements)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); silent otherwise. Yields `update(completed)`."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def _days_ticked(events: Iterator[Any], advance: Callable[[int], None]) -> Iterator[Any]:
    """Pass events through, reporting how many local days have started (for the progress bar)."""
    day, seen = None, 0
    for ev in events:
        if ev.time.date() != day:
            day, seen = ev.time.date(), seen + 1
            advance(seen - 1)
        yield ev


def _previous_month(today: date) -> str:
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


# -- argument parsing ---------------------------------------------------------------------------


def _month(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid month '{text}' (expected YYYY-MM)") from None
    return text


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date '{text}' (expected YYYY-MM-DD)") from None


def _instant(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"invalid time '{text}' (RFC 3339 with offset, e.g. 2026-05-01T00:00:00Z)")
    return t


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got '{text}'")
        return value

    return parse


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
    p.add_argument("--month", type=_month, help="month to simulate (default: last month)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=_positive(float), default=1.0)
    agreements_opt(p)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("simulate", help="write synthetic canonical events (deterministic per seed)")
    p.add_argument("--start", type=_date, required=True, metavar="DATE")
    p.add_argument("--days", type=_positive(int), required=True, metavar="N")
    p.add_argument("--seed", type=int, required=True, metavar="S")
    p.add_argument(
        "--scale", type=_positive(float), default=1.0, metavar="X", help="volume multiplier (1 = one centre)"
    )
    p.add_argument("--out", required=True, metavar="FILE.jsonl")
    agreements_opt(p)
    p.set_defaults(run=cmd_simulate)

    p = sub.add_parser("process", help="replay JSONL events into the warehouse (idempotent)", epilog=key_note)
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    agreements_opt(p)
    warehouse_opt(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_process)

    p = sub.add_parser("report", help="the monthly availability report")
    p.add_argument("--month", type=_month, required=True, metavar="YYYY-MM")
    agreements_opt(p)
    warehouse_opt(p)
    p.add_argument("--format", choices=["json", "table"], help="default: table on a terminal, else json")
    p.add_argument("--as-of", type=_instant, metavar="TIME", help="evaluate open cases as if now were TIME")
    p.set_defaults(run=cmd_report)
    return parser


if __name__ == "__main__":
    sys.exit(main())
