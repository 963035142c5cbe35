"""Pieces the `availability` commands share: loading, progress, argument types."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from availability.settings import Settings
from schemas.errors import InputError
from schemas.events import EARLIEST_TIME, LATEST_TIME


def input_files(names: list[str]) -> list[Path]:
    """The event files, each checked to exist before any work starts."""
    paths = [Path(name) for name in names]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    return paths


def agreements(path: str | None) -> Any:
    from schemas.agreements import load_agreements

    return load_agreements(path)


@contextmanager
def warehouse(target: str | None) -> Iterator[Any]:
    from stream_jobs.warehouse import Warehouse

    if not target:
        raise InputError("no warehouse given: use --warehouse DIR|URL or set AVAILABILITY_WAREHOUSE")
    wh = Warehouse.open(target)
    try:
        yield wh
    finally:
        wh.close()


def boundary(settings: Settings, agreements: Any) -> Any:
    """The ingest boundary, warning once when the public development key is in use."""
    from ingest.boundary import Boundary
    from ingest.pseudonymise import Pseudonymiser

    if settings.uses_development_key:
        print(
            "availability: warning: AVAILABILITY_PSEUDONYM_KEY is not set; pseudonyms use the public "
            "development key (fine for demos, not for real callers)",
            file=sys.stderr,
        )
    return Boundary(agreements, Pseudonymiser(settings.pseudonym_key_bytes(), agreements))


def pipeline(settings: Settings, agreements: Any, warehouse: Any) -> tuple[Any, Any]:
    from stream_jobs.core.deriver import Deriver

    return boundary(settings, agreements), Deriver(warehouse, agreements)


def incomplete_load_warnings(report: dict[str, Any]) -> list[str]:
    """One line per load that did not finish, telling the user what to run again."""
    return [
        f"warning: a load started {load['started_at']} did not finish ({', '.join(load['files'])}); "
        "the report may be partial: run `availability process` again over those files"
        for load in report.get("incomplete_loads", [])
    ]


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); silent otherwise. Yields `update(completed)`."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def days_ticked(events: Iterator[Any], advance: Callable[[int], None]) -> Iterator[Any]:
    """Pass events through, reporting how many local days have started (for the progress bar)."""
    day, seen = None, 0
    for ev in events:
        if ev.time.date() != day:
            day, seen = ev.time.date(), seen + 1
            advance(seen - 1)
        yield ev


def previous_month(today: date) -> str:
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


class RejectsWriter:
    """Rejected lines to a JSONL file (with the original line), or one line each on stderr.

    The file holds raw personal data (callers, senders, subjects), so it is the owner's only
    (0600), also when it existed before. It is checked before any work starts: never one of the
    input files (opening it would empty it), and its directory must exist."""

    def __init__(self, path: str | None, inputs: Sequence[Path] = ()) -> None:
        self.path = path
        self.handle = _open_rejects(path, inputs) if path else None

    def __call__(self, r: Any) -> None:
        if self.handle is not None:
            event = r.raw.decode("utf-8", "backslashreplace")  # Latin-1 bytes stay visible (\xe5)
            record = {"file": r.file, "line": r.line, "reason": r.reason, "event": event}
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            print(f"{r.file}:{r.line}: rejected: {r.reason}", file=sys.stderr)

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if self.handle is not None:
            self.handle.close()


def _open_rejects(name: str, inputs: Sequence[Path]) -> Any:
    path = Path(name)
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"--rejects {name}: cannot write (no such directory {parent})")
    for source in inputs:
        try:
            same = path.exists() and os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise InputError(f"--rejects {name}: is the input file {source}; name another file")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InputError(f"--rejects {name}: cannot write ({exc.strerror})") from None
    with contextlib.suppress(OSError):  # not ours to change: the open() above still succeeded
        os.fchmod(fd, 0o600)  # a file made earlier (or by a wider umask) becomes private too
    return os.fdopen(fd, "w", encoding="utf-8")


# -- argument types -----------------------------------------------------------------------------


FIRST_MONTH = f"{EARLIEST_TIME.year:04d}-{EARLIEST_TIME.month:02d}"
LAST_MONTH = f"{(LATEST_TIME - timedelta(days=1)).year:04d}-{(LATEST_TIME - timedelta(days=1)).month:02d}"


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
        raise argparse.ArgumentTypeError(f"invalid time '{text}' (outside {_z(EARLIEST_TIME)} to {_z(LATEST_TIME)})")
    return t


def _z(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
