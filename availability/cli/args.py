"""Argument types and the options many commands share. A wrong value is one line from
argparse (exit 2), before any work starts."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from availability.settings import Settings
from schemas.errors import InputError
from schemas.events import EARLIEST_TIME, LATEST_TIME, utc_z

FIRST_MONTH = f"{EARLIEST_TIME.year:04d}-{EARLIEST_TIME.month:02d}"
LAST_MONTH = f"{(LATEST_TIME - timedelta(days=1)).year:04d}-{(LATEST_TIME - timedelta(days=1)).month:02d}"
KEY_NOTE = "Pseudonyms use the secret in env AVAILABILITY_PSEUDONYM_KEY."
KAFKA_ENV = "env KAFKA_BOOTSTRAP_SERVERS, AVAILABILITY_TOPIC_PREFIX"


class SharedOptions:
    """--agreements and --warehouse, defaulting to their settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def agreements(self, p: argparse.ArgumentParser, *, again: bool = False) -> None:
        """`again`: on a subcommand whose parent already has the option (`report send`): no
        default of its own, so one given before the subcommand's name is kept."""
        p.add_argument(
            "--agreements",
            metavar="A.yaml",
            default=argparse.SUPPRESS if again else self.settings.agreements,
            help="service-agreements file (env AVAILABILITY_AGREEMENTS; default: the shipped agreements)",
        )

    def warehouse(self, p: argparse.ArgumentParser, *, again: bool = False) -> None:
        p.add_argument(
            "--warehouse",
            metavar="W",
            default=argparse.SUPPRESS if again else self.settings.warehouse,
            help="a directory (embedded ClickHouse) or http://user:pass@host:8123/db (env AVAILABILITY_WAREHOUSE)",
        )


def input_files(names: list[str]) -> list[Path]:
    """The event files, each checked to exist before any work starts."""
    paths = [Path(name) for name in names]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    return paths


def deliver(data: bytes, path: str | None, what: str) -> None:
    """A command's output to the file at `path` (saying so on stderr), or to stdout; a file that
    cannot be written is one line (InputError)."""
    if path:
        out = Path(path)
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise InputError(f"{out}: cannot write ({exc.strerror})") from None
        print(f"wrote the {what} to {out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def month_arg(text: str) -> str:
    """YYYY-MM, from the month of EARLIEST_TIME to the month before LATEST_TIME (the times the
    warehouse accepts; the business clock is undefined before 2000)."""
    try:
        datetime.strptime(text, "%Y-%m")
        valid = len(text) == 7
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"invalid month '{text}' (expected YYYY-MM)")
    if not FIRST_MONTH <= text <= LAST_MONTH:
        raise argparse.ArgumentTypeError(
            f"invalid month '{text}' (expected YYYY-MM from {FIRST_MONTH} to {LAST_MONTH})"
        )
    return text


def date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date '{text}' (expected YYYY-MM-DD)") from None


def instant_arg(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"invalid time '{text}' (RFC 3339 with offset, e.g. 2026-05-01T00:00:00Z)")
    try:
        inside = EARLIEST_TIME <= t < LATEST_TIME
    except OverflowError:  # year 1 or 9999 with an offset that crosses the calendar's end
        inside = False
    if not inside:
        window = f"{utc_z(EARLIEST_TIME)} to {utc_z(LATEST_TIME)}"
        raise argparse.ArgumentTypeError(f"invalid time '{text}' (outside {window})")
    return t


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got '{text}'")
        return value

    return parse


def listen_arg(text: str) -> tuple[str, int] | None:
    """HOST:PORT (IPv6 in brackets), or `off`."""
    if text.strip().lower() in ("off", "none", ""):
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8123) or off")
    return host, int(port)


def non_negative(text: str) -> float:
    """Seconds, 0 or more, at most what a thread can wait (`inf` would end in a traceback)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= threading.TIMEOUT_MAX:  # also NaN and inf
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number of seconds, got '{text}'")
    return value


def console_options(p: argparse.ArgumentParser, counts: str, *, loglevel: str = "warning") -> None:
    """--quiet, --status-every and --loglevel of a long-running command; `counts` names what
    its status line counts. The sources keep `info` (a line per request, poll or batch); the
    worker `warning`."""
    p.add_argument(
        "--status-every",
        type=non_negative,
        default=60.0,
        metavar="SECONDS",
        help=f"print a status line this often: {counts}, since the last line and in total (default 60; 0: never)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no start-up banner and no status lines (warnings and errors remain)"
    )
    p.add_argument(
        "--loglevel",
        default=loglevel,
        choices=["debug", "info", "warning", "error"],
        help=f"the level of the log lines on stderr (default {loglevel}; the Kafka and Faust libraries' own "
        "start-up and connection lines only at debug)",
    )
