"""Pieces the `availability` commands share: loading, progress, argument types."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from availability.errors import InputError
from availability.settings import Settings


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
    from availability.warehouse import Warehouse

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
    key = settings.pseudonym_key.get_secret_value().encode()
    return Boundary(agreements, Pseudonymiser(key, agreements))


def pipeline(settings: Settings, agreements: Any, warehouse: Any) -> tuple[Any, Any]:
    from stream_jobs.deriver import Deriver

    return boundary(settings, agreements), Deriver(warehouse, agreements)


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
    """Rejected lines to a JSONL file (with the original line), or one line each on stderr."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.handle = Path(path).open("w", encoding="utf-8") if path else None  # noqa: SIM115

    def __call__(self, r: Any) -> None:
        if self.handle is not None:
            record = {"file": r.file, "line": r.line, "reason": r.reason, "event": r.raw.decode("utf-8", "replace")}
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            print(f"{r.file}:{r.line}: rejected: {r.reason}", file=sys.stderr)

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if self.handle is not None:
            self.handle.close()


# -- argument types -----------------------------------------------------------------------------


def month_arg(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid month '{text}' (expected YYYY-MM)") from None
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
