"""`availability staffing`: the agents each phone queue needs per 15 minutes of a week, from the
arrivals its history leads to expect (table, csv, xlsx); `--backtest` forecasts past weeks from
the history before each and compares (docs/staffing.md)."""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from availability.cli.args import SharedOptions, deliver, positive
from availability.cli.progress import progress
from availability.wiring import Wiring
from schemas.errors import InputError
from schemas.events import EARLIEST_TIME, LATEST_TIME

if TYPE_CHECKING:
    from dashboards.reporting.model import Lang
    from dashboards.staffing.plan import Backtest, Plan

FORMATS = ("table", "csv", "xlsx")
HISTORY_WEEKS = 8  # dashboards/staffing/plan.py HISTORY_WEEKS (not imported: --help loads no model)
BACKTEST_WEEKS = 13
MAX_WEEKS = 520
_WEEK = re.compile(r"(\d{4})-?[Ww](\d{1,2})")


def week_arg(text: str) -> date:
    """An ISO week `2026-W23` -> its Monday."""
    found = _WEEK.fullmatch(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"invalid week '{text}' (expected YYYY-Www, e.g. 2026-W23)")
    year, week = int(found.group(1)), int(found.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        weeks = date(year, 12, 28).isocalendar()[1]  # 28 December is always in the year's last week
        raise argparse.ArgumentTypeError(f"invalid week '{text}' ({year} has ISO weeks 1 to {weeks})") from None
    _inside(text, monday)
    return monday


def monday_arg(text: str) -> date:
    """A Monday `2026-04-06`, or an ISO week `2026-W15` (its Monday)."""
    if _WEEK.fullmatch(text.strip()):
        return week_arg(text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date '{text}' (expected a Monday YYYY-MM-DD or a week YYYY-Www)"
        ) from None
    if day.weekday() != 0:
        monday = day - timedelta(days=day.weekday())
        raise argparse.ArgumentTypeError(
            f"{text} is a {day.strftime('%A')}: give the Monday a week starts on ({monday.isoformat()}) "
            f"or the week ({monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d})"
        )
    _inside(text, day)
    return day


def _inside(text: str, monday: date) -> None:
    if not (EARLIEST_TIME.date() <= monday and monday + timedelta(days=7) <= LATEST_TIME.date()):
        raise argparse.ArgumentTypeError(
            f"invalid week '{text}' (outside {EARLIEST_TIME.year} to {LATEST_TIME.year - 1})"
        )


def cmd_staffing(args: argparse.Namespace, wiring: Wiring) -> int:
    fmt = args.format or _format_of(args.output) or "table"
    if fmt == "xlsx" and not args.output and sys.stdout.isatty():
        raise InputError("xlsx is a binary file: give --output FILE.xlsx (or redirect the output)")
    if args.backtest:
        if args.week is not None:
            raise InputError("--week is the week to plan; a backtest takes --from and --weeks")
    elif args.start is not None or args.weeks is not None:
        raise InputError("--from and --weeks are for --backtest; a plan takes --week")
    agreements = wiring.agreements(args.agreements)
    if not agreements.queues:
        raise InputError(f"{agreements.source}: the agreements define no phone queue to staff")
    lang: Lang = args.lang
    with wiring.warehouse(args.warehouse, create=False) as wh:
        if args.backtest:
            data = _backtest_output(run_backtest(args, wh, agreements, wiring.tell), fmt, lang)
            what = "backtest"
        else:
            plan = run_plan(args, wh, agreements)
            if fmt != "table" or args.output:  # the table shows them itself
                for note in plan.notes:
                    wiring.tell(f"warning: {note}")
            data = _plan_output(plan, fmt, lang)
            what = f"staffing plan of {plan.week}"
    deliver(data, args.output, f"{fmt} {what}")
    return 0


def run_plan(args: argparse.Namespace, wh: Any, agreements: Any) -> Plan:
    from dashboards.staffing.history import read_history
    from dashboards.staffing.plan import plan_week, window

    monday = args.week or _next_monday(agreements)
    first, end = window(monday, args.history_weeks)
    history = read_history(wh, agreements, first, end)
    return plan_week(history, agreements, monday, history_weeks=args.history_weeks, wrap_up=args.wrap_up)


def run_backtest(args: argparse.Namespace, wh: Any, agreements: Any, tell: Callable[[str], None]) -> Backtest:
    from dashboards.staffing.history import last_day, read_history
    from dashboards.staffing.plan import backtest, iso_week

    weeks = args.weeks or BACKTEST_WEEKS
    start = args.start
    if start is None:
        newest = last_day(wh, agreements)
        if newest is None:
            raise InputError(
                "the warehouse holds no calls to backtest with: load them with `availability process`, "
                "or check --warehouse"
            )
        # The last whole week the warehouse holds (one that ends on its newest day counts as whole).
        end = newest - timedelta(days=newest.weekday()) + timedelta(days=7 if newest.weekday() == 6 else 0)
        start = end - timedelta(weeks=weeks)
        tell(
            f"backtest of {iso_week(start)} to {iso_week(end - timedelta(days=7))}, the last {weeks} whole "
            f"week{'s' if weeks > 1 else ''} in the warehouse"
        )
    mondays = [start + timedelta(weeks=i) for i in range(weeks)]
    history = read_history(wh, agreements, start - timedelta(weeks=args.history_weeks), mondays[-1] + timedelta(days=7))
    with progress("backtest", total=len(mondays)) as advance:
        return backtest(
            history, agreements, mondays, history_weeks=args.history_weeks, wrap_up=args.wrap_up, advance=advance
        )


def _next_monday(agreements: Any) -> date:
    today = datetime.now(UTC).astimezone(agreements.timezone).date()
    return today + timedelta(days=7 - today.weekday())


def _plan_output(plan: Plan, fmt: str, lang: Lang) -> bytes:
    from dashboards.staffing import formats

    return _rendered(
        fmt,
        lambda out: formats.plan_xlsx(plan, lang, out),
        lambda out: formats.plan_csv(plan, out),
        lambda out: formats.plan_table(plan, lang, out),
    )


def _backtest_output(bt: Backtest, fmt: str, lang: Lang) -> bytes:
    from dashboards.staffing import formats

    return _rendered(
        fmt,
        lambda out: formats.backtest_xlsx(bt, lang, out),
        lambda out: formats.backtest_csv(bt, out),
        lambda out: formats.backtest_table(bt, lang, out),
    )


def _rendered(
    fmt: str,
    xlsx: Callable[[io.BytesIO], None],
    csv: Callable[[io.StringIO], None],
    table: Callable[[io.StringIO], None],
) -> bytes:
    """The bytes of one format: a workbook, CSV with a BOM (Excel then reads it as UTF-8), or text."""
    if fmt == "xlsx":
        binary = io.BytesIO()
        xlsx(binary)
        return binary.getvalue()
    text = io.StringIO(newline="")
    if fmt == "csv":
        csv(text)
        return ("\ufeff" + text.getvalue()).encode()
    table(text)
    return text.getvalue().encode()


def _format_of(output: str | None) -> str | None:
    if not output:
        return None
    suffix = Path(output).suffix.lower().lstrip(".")
    fmt = {"txt": "table"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise InputError(
            f"--output {output}: cannot tell the format from its extension; add --format {'|'.join(FORMATS)}"
        )
    return fmt


def wrap_up_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:  # also NaN and inf
        raise argparse.ArgumentTypeError(f"must be seconds from 0 to 3600, got '{text}'")
    return value


def weeks_arg(text: str) -> int:
    value: int = positive(int)(text)
    if value > MAX_WEEKS:
        raise argparse.ArgumentTypeError(f"at most {MAX_WEEKS} weeks, got {value}")
    return value


def add_command(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "staffing",
        usage="availability staffing [--week YYYY-Www] [--format table|csv|xlsx] [--output FILE] [options]\n"
        "       availability staffing --backtest [--from MONDAY|YYYY-Www] [--weeks N] [options]",
        help="agents needed per queue and 15 minutes of a week, from the forecast arrivals (Erlang A); "
        "--backtest: the forecast of past weeks against what came",
        description="Forecast each phone queue's calls per 15 minutes of a week (local time) from the weeks of "
        "history before it (weekday, time of day, the month's first working days, the calendars' holidays and "
        "reduced days), and give the fewest agents with which Erlang A expects the queue's service level and "
        "answer rate targets. With --backtest, each week of a range is forecast from the history before it only "
        "and compared with what came (WAPE, MAPE, agents). Reads an existing warehouse; see docs/staffing.md.",
        epilog="Exit status: 0 done; 1 a mistake said in one line (no history, no warehouse, a file that cannot be "
        "written); 2 a wrong option (argparse); 130 interrupted.",
    )
    p.add_argument(
        "--week",
        type=week_arg,
        metavar="YYYY-Www",
        help="the ISO week to plan, e.g. 2026-W23 (default: next week, in the agreements' time zone)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from --output's extension (.csv, .xlsx, .txt), else table",
    )
    p.add_argument("--output", "--out", metavar="FILE", help="write here instead of to standard output")
    p.add_argument(
        "--history-weeks",
        type=weeks_arg,
        default=HISTORY_WEEKS,
        metavar="N",
        help=f"forecast each week from the N weeks before it (default {HISTORY_WEEKS})",
    )
    p.add_argument(
        "--wrap-up",
        type=wrap_up_arg,
        metavar="SECONDS",
        help="after-call work added to each answered call's talk time (default: measured from the agents' "
        "wrap_up states in the history, else 45)",
    )
    p.add_argument(
        "--lang", choices=["sv", "en"], default="sv", help="language of the table and workbook (default: sv)"
    )
    p.add_argument(
        "--backtest",
        action="store_true",
        help="forecast past weeks, each from the history before it, and compare with what came",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=monday_arg,
        metavar="MONDAY",
        help="--backtest: the first week, a Monday (2026-04-06) or a week (2026-W15) (default: the range that ends "
        "with the warehouse's last whole week)",
    )
    p.add_argument(
        "--weeks",
        type=weeks_arg,
        metavar="N",
        help=f"--backtest: how many weeks (default {BACKTEST_WEEKS})",
    )
    options.agreements(p)
    options.warehouse(p)
    p.set_defaults(run=cmd_staffing)
