"""`availability report` (the month in json, table, xlsx, html or csv) and `report send` (the
month mailed with the workbook and the page attached)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from availability.cli.args import SharedOptions, deliver, instant_arg, month_arg
from availability.wiring import Wiring
from schemas.errors import InputError

if TYPE_CHECKING:
    from dashboards.reporting.model import Lang
    from schemas.agreements import Agreements

FORMATS = ("json", "table", "xlsx", "html", "csv")
BINARY = {"xlsx"}


def month_or_last(text: str) -> str:
    """YYYY-MM, or `last` (the month before the current local month, resolved with the agreements)."""
    return text if text == "last" else month_arg(text)


def resolve_month(month: str, agreements: Agreements, now: datetime | None) -> str:
    from dashboards.reporting.mail import last_month

    return last_month(agreements, now or datetime.now(UTC)) if month == "last" else month


def cmd_report(args: argparse.Namespace, wiring: Wiring) -> int:
    if not args.month:
        raise InputError("report needs --month YYYY-MM (or --month last)")
    fmt = args.format or _format_of(args.out) or ("table" if sys.stdout.isatty() else "json")
    if fmt in BINARY and not args.out and sys.stdout.isatty():
        raise InputError(f"{fmt} is a binary file: give --out FILE.{fmt} (or redirect the output)")
    agreements = wiring.agreements(args.agreements)
    report = build(args, wiring, agreements)
    lang: Lang = args.lang or "sv"
    to_terminal = fmt == "table" and not args.out and sys.stdout.isatty()
    if not to_terminal:  # a table on the terminal shows them itself
        for line in notices(report, agreements):
            wiring.tell(f"warning: {line}")
    data = render(report, agreements, fmt, lang, width=None if not args.out else 120)
    deliver(data, args.out, f"{fmt} report of {report['month']}")
    return 0


def cmd_report_send(args: argparse.Namespace, wiring: Wiring) -> int:
    from dashboards.alerting.alertmanager import ADDRESS, load_managers
    from dashboards.reporting.mail import attachment_name, compose, first_working_day, send

    if args.format or args.out:
        raise InputError("report send attaches the workbook and the page: it takes no --format or --out")
    for address in args.to:
        if not ADDRESS.match(address):
            raise InputError(f"--to: not an e-mail address: {address!r}")
    agreements = wiring.agreements(args.agreements)
    if not args.managers:
        raise InputError(
            "no SMTP settings: use --managers FILE (the alerts' managers.yaml) or set AVAILABILITY_MANAGERS"
        )
    try:  # read every day the timer fires, so a broken file is noticed before the day it matters
        managers = load_managers(Path(args.managers), agreements)
    except ValueError as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    now = args.as_of or datetime.now(UTC)
    if args.only_first_working_day:
        today = now.astimezone(agreements.timezone).date()
        first = first_working_day(agreements, today.year, today.month)
        if today != first:
            wiring.tell(f"not the month's first working day ({first.isoformat()}): nothing sent")
            return 0
    args.month = args.month or "last"
    report = build(args, wiring, agreements)
    if report["no_events"] and not args.allow_empty:
        raise InputError(
            f"the warehouse holds no events for {report['month']}: nothing sent (check --warehouse and --month; "
            "--allow-empty sends the empty report anyway)"
        )
    for line in notices(report, agreements):
        wiring.tell(f"warning: {line}")
    lang: Lang = args.lang or "sv"
    html = render(report, agreements, "html", lang).decode()
    xlsx = render(report, agreements, "xlsx", lang)
    message = compose(report, agreements, sender=managers.sender, to=args.to, xlsx=xlsx, html=html, lang=lang)
    password = wiring.settings.smtp_password
    send(
        message,
        managers.smarthost,
        require_tls=managers.require_tls,
        user=wiring.settings.smtp_user,
        password=password.get_secret_value() if password is not None else None,
        tls_ca=args.tls_ca,
    )
    names = ", ".join(attachment_name(report["month"], ext) for ext in ("xlsx", "html"))
    print(f"sent the report of {report['month']} ({names}) to {', '.join(args.to)}", file=sys.stderr)
    return 0


def build(args: argparse.Namespace, wiring: Wiring, agreements: Agreements) -> dict[str, Any]:
    """The month's report from an existing warehouse (a report never creates one)."""
    from dashboards.report import monthly_report

    month = resolve_month(args.month, agreements, args.as_of)
    with wiring.warehouse(args.warehouse, create=False) as wh:
        return monthly_report(wh, agreements, month, now=args.as_of)


def render(report: dict[str, Any], agreements: Agreements, fmt: str, lang: Lang, width: int | None = None) -> bytes:
    """The report in one format, as the bytes of its file."""
    if fmt == "json":
        return (json.dumps(report, ensure_ascii=False, indent=2) + "\n").encode()
    if fmt == "xlsx":
        from dashboards.reporting.xlsx import write_xlsx

        binary = io.BytesIO()
        write_xlsx(report, agreements, lang, binary)
        return binary.getvalue()
    if fmt == "html":
        from dashboards.reporting.html import render_html

        return render_html(report, agreements, lang).encode()
    text = io.StringIO(newline="")
    if fmt == "csv":
        from dashboards.reporting.csvfile import write_csv

        write_csv(report, agreements, lang, text)
        return ("\ufeff" + text.getvalue()).encode()  # the BOM: Excel then reads the file as UTF-8
    from dashboards.reporting.table import render_table

    if width is None and sys.stdout.isatty():  # straight to the terminal: its width, and colour
        render_table(report, agreements, lang, sys.stdout)
        return b""
    render_table(report, agreements, lang, text, width)
    return text.getvalue().encode()


def notices(report: dict[str, Any], agreements: Agreements) -> list[str]:
    """The report's warnings as the command's own lines (English, as every message of the CLI)."""
    from dashboards.reporting.model import notices as report_notices

    return report_notices(report, agreements, "en")


def _format_of(out: str | None) -> str | None:
    """`--out june.xlsx` means xlsx; `.txt` a table; an extension that names no format is an error
    (`--format` says which)."""
    if not out:
        return None
    suffix = Path(out).suffix.lower().lstrip(".")
    fmt = {"txt": "table", "htm": "html"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise InputError(f"--out {out}: cannot tell the format from its extension; add --format {'|'.join(FORMATS)}")
    return fmt


def add_command(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "report",
        usage="availability report --month YYYY-MM|last [--format F] [--out FILE] [options]\n"
        "       availability report send --to ADDR [ADDR ...] [--month YYYY-MM|last] [options]",
        help="the monthly availability report (json, table, xlsx, html, csv); `report send` mails it",
        description="The monthly availability report from the warehouse. Human formats are in Swedish unless "
        "--lang en. A warehouse directory that holds none is an error: a report never creates one.",
    )
    p.add_argument(
        "--month", type=month_or_last, metavar="YYYY-MM", help="the local month to report, or `last` (required)"
    )
    options.agreements(p)
    options.warehouse(p)
    _common(p)
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="default: from --out's extension; else table on a terminal, json otherwise",
    )
    p.add_argument("--out", metavar="FILE", help="write the report here instead of to standard output")
    p.set_defaults(run=cmd_report)

    actions = p.add_subparsers(title="actions", metavar="ACTION")
    s = actions.add_parser(
        "send",
        help="mail the month's report (xlsx and html attached) through the alerts' SMTP relay",
        description="Mail the report of a month with the workbook and the HTML page attached, through the SMTP "
        "relay of the alerts (the smtp section of deploy/alertmanager/managers.yaml). A relay that wants a login "
        "gets env AVAILABILITY_SMTP_USER and AVAILABILITY_SMTP_PASSWORD. A month with no events is not sent.",
    )
    # The options `report` has too take no default here: one given before `send` is kept.
    s.add_argument(
        "--month", type=month_or_last, default=argparse.SUPPRESS, metavar="YYYY-MM", help="YYYY-MM or last (default)"
    )
    s.add_argument("--to", nargs="+", required=True, metavar="ADDR", help="the recipients' addresses")
    s.add_argument(
        "--managers",
        metavar="FILE",
        default=options.settings.managers,
        help="the alerts' managers.yaml, for its smtp section (env AVAILABILITY_MANAGERS)",
    )
    s.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=options.settings.smtp_tls_ca,
        help="trust only this CA for the relay's certificate (env AVAILABILITY_SMTP_TLS_CA; default: the system's)",
    )
    s.add_argument(
        "--only-first-working-day",
        action="store_true",
        help="send only on the month's first working day (for a timer that fires on days 1-7)",
    )
    s.add_argument("--allow-empty", action="store_true", help="send a month that holds no events too")
    options.agreements(s, again=True)
    options.warehouse(s, again=True)
    _common(s, again=True)
    s.set_defaults(run=cmd_report_send)


def _common(p: argparse.ArgumentParser, *, again: bool = False) -> None:
    unset = argparse.SUPPRESS if again else None
    p.add_argument("--lang", choices=["sv", "en"], default=unset, help="language of the human formats (default: sv)")
    p.add_argument(
        "--as-of",
        type=instant_arg,
        default=unset,
        metavar="TIME",
        help="judge open cases as if now were TIME (RFC 3339, e.g. 2026-06-01T07:00:00+02:00)",
    )
