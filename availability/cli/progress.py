"""What a command tells its operator on stderr: progress bars (on a terminal), and for the
long-running commands a start-up banner, a status line per interval and the library logs'
level. stdout stays for results."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

STOP = "Ctrl-C or SIGTERM stops it"


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields `update(completed)`; a bar only when stderr is a terminal (a Meter without lines)."""
    with Meter(label, total, every=0) as meter:
        yield lambda done: meter.update("", done)


def days_ticked(events: Iterator[Any], advance: Callable[[int], None]) -> Iterator[Any]:
    """Pass events through, reporting how many local days have started (for the progress bar)."""
    day, seen = None, 0
    for ev in events:
        if ev.time.date() != day:
            day, seen = ev.time.date(), seen + 1
            advance(seen - 1)
        yield ev


def http_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def key_text(fingerprint: str, development: bool) -> str:
    """The banner's line on pseudonyms: which key, by its fingerprint (the same on every
    service that shares it). The development key's own warning is said once, elsewhere."""
    return f"pseudonyms with the key of fingerprint {fingerprint}" + (
        " (the public development key)" if development else ""
    )


class Console:
    """The banner and status lines of a long-running command on stderr; nothing with `quiet`
    (warnings and errors are logged, not said here, so they remain)."""

    def __init__(self, name: str, *, quiet: bool = False, status_every: float = 60.0, out: IO[str] | None = None):
        self.name = name
        self.quiet = quiet
        self.status_every = status_every
        self.out = out or sys.stderr
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                print(f"availability: {self.name}: {text}", file=self.out, flush=True)

    def banner(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        """`title` on the first line, then one indented line per (label, text)."""
        if self.quiet:
            return
        width = max((len(label) for label, _ in rows), default=0)
        lines = [f"availability: {self.name}: {title}", *(f"  {label:<{width}}  {text}" for label, text in rows)]
        with self._lock:
            print("\n".join(lines), file=self.out, flush=True)

    @contextmanager
    def ticking(
        self, totals: Callable[[], Mapping[str, int]], extra: Callable[[], str] | None = None
    ) -> Iterator[None]:
        """While the block runs: every `status_every` seconds one line with what changed since
        the last line and in total (`totals()`: label -> count, e.g. "events stored" -> 5120),
        and `extra()` (e.g. the consumer lag). Nothing when quiet or `status_every` is 0."""
        if self.quiet or self.status_every <= 0:
            yield
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._tick, args=(stop, totals, extra), name="status", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _tick(self, stop: threading.Event, totals: Callable[[], Mapping[str, int]], extra: Any) -> None:
        last, then = dict(totals()), time.monotonic()
        while not stop.wait(self.status_every):
            try:
                now, at = dict(totals()), time.monotonic()
                tail = extra() if extra is not None else ""
            except Exception as exc:  # a counter read mid-change: the next line will have it
                logging.getLogger(__name__).debug("status line skipped: %r", exc)
                continue
            self.say(status_line(last, now, at - then) + (f"; {tail}" if tail else ""))
            last, then = now, at


def counted(registry: CollectorRegistry | None, counter: str, **labels: str) -> int:
    """A Prometheus counter's value summed over its series that have these labels: a status line
    says what /metrics says, from the same registry."""
    if registry is None:
        return 0
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == f"{counter}_total" and labels.items() <= sample.labels.items():
                total += sample.value
    return int(total)


def status_line(before: Mapping[str, int], now: Mapping[str, int], seconds: float) -> str:
    """'in the last 60 s: 120 events stored, 0 rejected; since the start: 5120 events stored, 3 rejected'."""
    recent = ", ".join(f"{now[k] - before.get(k, 0)} {k}" for k in now)
    total = ", ".join(f"{v} {k}" for k, v in now.items())
    return f"in the last {seconds:.0f} s: {recent}; since the start: {total}"


class Meter:
    """Progress of a loop that runs in this thread (publish, the simulator). On a terminal a
    rich line, refreshed, with a bar when the total is known; elsewhere (a log, a pipe) the
    text as a plain line every `every` seconds, and at once for the first `update(now=True)`
    (a simulator about to wait minutes says so before it waits)."""

    def __init__(self, name: str, total: float | None, every: float) -> None:
        self.name, self.total, self.every = name, total, every
        self.terminal = sys.stderr.isatty()
        self._next = time.monotonic() + every
        self._bar: Any = None
        self._task: Any = None
        self._said = False

    def __enter__(self) -> Meter:
        if self.terminal:
            from rich.console import Console as RichConsole
            from rich.progress import (
                BarColumn,
                Progress,
                ProgressColumn,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            columns: list[ProgressColumn] = [TextColumn(self.name), TextColumn("{task.fields[text]}")]
            if self.total is not None:
                columns[1:1] = [BarColumn(), TaskProgressColumn()]
                columns.append(TimeRemainingColumn())
            self._bar = Progress(*columns, console=RichConsole(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total, text="")
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, text: str, completed: float | None = None, *, now: bool = False) -> None:
        if self._bar is not None:
            self._bar.update(self._task, text=text, **({"completed": completed} if completed is not None else {}))
            return
        at = time.monotonic()
        if self.every > 0 and (at >= self._next or (now and not self._said)):  # 0: never
            self._next, self._said = at + self.every, True
            print(f"availability: {self.name}: {text}", file=sys.stderr, flush=True)
