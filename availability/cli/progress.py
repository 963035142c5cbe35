"""A progress bar on a terminal (stderr), silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields `update(completed)`; a bar only when stderr is a terminal."""
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
