"""`availability wall`: the supervisors' wall in a terminal, from the stream worker's `/metrics`
(docs/live-wall.md). The numbers are dashboards/live_wall.py's, which computes what Grafana's
wall shows with the same formulas; this module fetches and draws. `demo --live`
(availability/cli/demo_live.py) shows its replay through the same screen.
"""

from __future__ import annotations

import argparse
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from availability.cli.args import SharedOptions, positive
from availability.wiring import Wiring
from dashboards.thresholds import WAIT_AMBER_SHARE, target_bounds
from schemas.errors import InputError

if TYPE_CHECKING:  # imported where used: `availability --version` need not load them
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from dashboards.live_wall import MailboxRow, QueueRow, Wall

TIMEOUT = 2.0  # seconds per scrape: a worker that does not answer is shown so, and asked again
NONE = "–"  # no value, as Grafana's "no value"
PRINT_WIDTH = 160  # columns when stdout is not a terminal (rich would assume 80 and cut cells)

WORDS = {
    "sv": {
        "title": "Tillgänglighet – väggen",
        "queue": "Kö",
        "open": "Öppet",
        "waiting": "Väntar",
        "oldest_wait": "Längsta\nväntan",
        "agents_ready": "Lediga",
        "sl_30m": "SL\n30 min",
        "sl_next_30m": "Väntat\n30 min",
        "sl_today": "SL\nidag",
        "ar_30m": "Svar\n30 min",
        "ar_today": "Svar\nidag",
        "legend": "SL: servicenivå, Svar: svarsfrekvens (mot målet: ✓ nått, ✗ inte nått); Lediga: handläggare redo; "
        "Väntat: servicenivån som väntas de närmaste 30 minuterna",
        "targets": "Mål\nSL / svar",
        "mailbox": "Brevlåda",
        "open_cases": "Öppna\närenden",
        "priority_cases": "varav\nprioriterade",
        "oldest_open": "Äldsta öppna\n(arbetstid)",
        "breached": "Brutna\nsvarstider",
        "breaching": "Bryter inom\nen timme",
        "is_open": "Öppet",
        "closed": "Stängt",
        "mailboxes": "Funktionsbrevlådor",
        "queues": "Telefonköer",
        "time": "Tid",
        "simulated": "Simulerad tid",
        "window": "30 min-siffrorna täcker bara {minutes} min: inga hämtningar före det (väggen nyss startad, "
        "eller ett avbrott)",
        "unreachable": "kan inte hämta {url}: {reason} – försöker igen",
        "stale": "senaste värden från {time}",
        "stop": "Ctrl-C avslutar",
        "waiting_for": "väntar på {url} …",
    },
    "en": {
        "title": "Availability – the wall",
        "queue": "Queue",
        "open": "Open",
        "waiting": "Waiting",
        "oldest_wait": "Longest\nwait",
        "agents_ready": "Ready",
        "sl_30m": "SL\n30 min",
        "sl_next_30m": "Next\n30 min",
        "sl_today": "SL\ntoday",
        "ar_30m": "Answer\n30 min",
        "ar_today": "Answer\ntoday",
        "legend": "SL: service level, Answer: answer rate (against the target: ✓ met, ✗ not met); Ready: agents ready; "
        "Next: the service level expected over the next 30 minutes",
        "targets": "Target\nSL / answer",
        "mailbox": "Mailbox",
        "open_cases": "Open\ncases",
        "priority_cases": "of which\npriority",
        "oldest_open": "Oldest open\n(business time)",
        "breached": "Breached",
        "breaching": "Breaching\nwithin an hour",
        "is_open": "Open",
        "closed": "Closed",
        "mailboxes": "Function mailboxes",
        "queues": "Phone queues",
        "time": "Time",
        "simulated": "Simulated time",
        "window": "the 30 min figures cover only {minutes} min: no scrapes before that (the wall just started, "
        "or a gap)",
        "unreachable": "cannot fetch {url}: {reason} – retrying",
        "stale": "last values from {time}",
        "stop": "Ctrl-C to stop",
        "waiting_for": "waiting for {url} …",
    },
}


# -- fetching ---------------------------------------------------------------------------------


def metrics_url(text: str) -> str:
    """An http(s) URL of a worker's metrics; a bare `http://host:port` gets `/metrics`. A
    malformed one is one line (InputError) before anything starts."""
    url = urlsplit(text.strip())
    try:
        port_ok = url.port is None or 0 < url.port < 65536
    except ValueError:
        port_ok = False
    if url.scheme not in ("http", "https") or not url.hostname or not port_ok:
        raise InputError(f"--metrics-url {text!r} is not an http(s) URL (e.g. http://127.0.0.1:6066/metrics)")
    return urlunsplit(url._replace(path=url.path if url.path not in ("", "/") else "/metrics"))


class FetchError(Exception):
    pass


def fetch(url: str, timeout: float = TIMEOUT) -> str:
    """The text of `url`; FetchError (one short reason) when it does not answer with it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise FetchError(reason.strerror or str(reason) if isinstance(reason, OSError) else str(reason)) from None
    except (OSError, ValueError) as exc:  # a timeout while reading, a reset connection
        raise FetchError(str(exc) or type(exc).__name__) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError("the answer is not UTF-8 text") from None


@dataclass
class Frame:
    """One scrape of every URL: the wall, or why there is none (and the last good one)."""

    at: datetime  # the clock's time of the scrape (the simulated one in demo --live)
    wall: Wall | None
    errors: list[str] = field(default_factory=list)
    stale_since: datetime | None = None  # the time of the wall shown, when this scrape failed


class Scraper:
    """Scrapes the URLs into one wall (several workers' series get an `instance` label each, so
    they aggregate as in Prometheus). `clock` is the time shown; the 30-minute history is timed
    by `timer` (seconds; default `clock`'s), scraped about every `interval` of its seconds."""

    def __init__(
        self,
        urls: Sequence[str],
        clock: Callable[[], datetime],
        lang: str = "sv",
        interval: float = 2.0,
        timer: Callable[[], float] | None = None,
    ) -> None:
        from dashboards.live_wall import SLACK_SECONDS, History

        self.urls = list(urls)
        self.clock = clock
        self.timer = timer
        self.words = WORDS[lang]
        # The window's first scrape may lie up to two refreshes before its start (a slow scrape
        # stretches one): the window is then "30 min"; a longer gap makes it shorter, and says so.
        self.history = History(slack=max(SLACK_SECONDS, 2 * interval))
        self.last: Frame | None = None

    def scrape(self) -> Frame:
        from dashboards.live_wall import build, parse

        samples, errors, answered = [], [], 0
        for url in self.urls:
            try:
                text = fetch(url)
                samples += parse(text, **({"instance": url} if len(self.urls) > 1 else {}))
                answered += 1
            except FetchError as exc:
                errors.append(self.words["unreachable"].format(url=url, reason=exc))
            except ValueError:
                errors.append(self.words["unreachable"].format(url=url, reason="not Prometheus metrics"))
        at = self.clock()
        if not answered:
            last = self.last
            return Frame(at, last.wall if last else None, errors, (last.stale_since or last.at) if last else None)
        # As Grafana: the workers that answered are shown, the others named above them (their
        # counters resume from their last scrape when they answer again, as in Prometheus).
        frame = Frame(
            at, build(samples, self.history.add(self.timer() if self.timer else at.timestamp(), samples)), errors
        )
        self.last = frame
        return frame


# -- drawing ----------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.0f} %"


def count(value: float | None) -> str:
    return NONE if value is None else f"{value:.0f}"


def duration(value: float | None) -> str:
    """Whole seconds elapsed as M:SS, or H:MM:SS from an hour."""
    if value is None:
        return NONE
    s = int(value)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def against(value: float | None, target: float | None, *, mark: bool = True) -> Text:
    """A share with ✓ (at or above the target) or ✗ (without: `mark` False, an expectation, not
    a promise kept or broken), coloured as the wall's tiles."""
    from rich.text import Text

    if value is None or target is None:
        return Text(pct(value))
    red_below, amber_below = target_bounds(target)  # as Grafana's tiles
    if value < red_below:
        return Text(f"{pct(value)} ✗" if mark else pct(value), style="bold red")
    return Text(f"{pct(value)} ✓" if mark else pct(value), style="yellow" if value < amber_below else "green")


def _wait(row: QueueRow) -> Text:
    from rich.text import Text

    v, limit = row.oldest_wait, row.sl_seconds
    style = ""
    if v is not None and limit:
        style = "bold red" if v >= limit else "yellow" if v >= limit * WAIT_AMBER_SHARE else ""
    return Text(duration(v), style=style)


def _flag(value: float | None, w: dict[str, str]) -> Text:
    from rich.text import Text

    if value is None:
        return Text(NONE)
    return Text(w["is_open"], style="green") if value == 1 else Text(w["closed"], style="dim")


def queue_cells(row: QueueRow, w: dict[str, str]) -> list[Text]:
    from rich.text import Text

    ready = Text(count(row.agents_ready))
    if row.agents_ready is not None:
        ready.stylize("bold red" if row.agents_ready < 1 else "green")
    return [
        Text(row.queue, style="bold" if row.is_open else "dim"),
        _flag(row.open, w),
        Text(count(row.waiting)),
        _wait(row),
        ready,
        against(row.sl_30m, row.sl_target),
        against(row.sl_next_30m, row.sl_target, mark=False),
        against(row.sl_today, row.sl_target),
        against(row.ar_30m, row.ar_target),
        against(row.ar_today, row.ar_target),
        Text(f"{pct(row.sl_target)}/{pct(row.ar_target)}", style="dim"),
    ]


def mailbox_cells(row: MailboxRow, w: dict[str, str]) -> list[Text]:
    from rich.text import Text

    breached = Text(count(row.breached), style="bold red" if row.breached else "")
    soon = Text(count(row.breaching_within_hour), style="yellow" if row.breaching_within_hour else "")
    return [
        Text(row.mailbox, style="bold" if row.is_open else "dim"),
        _flag(row.open, w),
        Text(count(row.open_cases)),
        Text(count(row.priority_cases)),
        Text(duration(row.oldest_open)),
        breached,
        soon,
    ]


def _table(title: str, headings: Sequence[str], rows: Sequence[list[Text]]) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SQUARE, header_style="bold", pad_edge=True)
    # The first column (the queue's or mailbox's name) is never cut: too narrow a terminal cuts
    # the others' cells first.
    first = max((len(cells[0]) for cells in rows), default=0)
    for i, heading in enumerate(headings):
        if i == 0:
            table.add_column(heading, justify="left", no_wrap=True, min_width=first, overflow="fold")
        else:
            table.add_column(heading, justify="right", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    return table


def render(frame: Frame, lang: str, status: Sequence[Text | str] = (), time_label: str | None = None) -> RenderableType:
    """The screen: the title and the scrape's time (labelled `time_label`, default "Time"), the
    caller's status lines, the queues and the mailboxes."""
    from rich.console import Group
    from rich.text import Text

    w = WORDS[lang]
    head = Text(w["title"], style="bold")
    head.append(f"   {time_label or w['time']} {frame.at.strftime('%Y-%m-%d %H:%M:%S')}")
    parts: list[RenderableType] = [head, *(Text(s) if isinstance(s, str) else s for s in status)]
    for error in frame.errors:
        parts.append(Text(error, style="bold red"))
    if frame.errors and frame.stale_since is not None:
        parts.append(Text(w["stale"].format(time=frame.stale_since.strftime("%H:%M:%S")), style="yellow"))
    wall = frame.wall
    if wall is not None:
        if wall.window_seconds < 30 * 60 - 1:
            parts.append(Text(w["window"].format(minutes=int(wall.window_seconds // 60)), style="dim"))
        q_head = [w[k] for k in ("queue", "open", "waiting", "oldest_wait", "agents_ready", "sl_30m", "sl_next_30m")]
        q_head.append(w["sl_today"])
        q_head += [w["ar_30m"], w["ar_today"], w["targets"]]
        parts.append(_table(w["queues"], q_head, [queue_cells(r, w) for r in wall.queues]))
        parts.append(Text(w["legend"], style="dim"))
        m_head = [w[k] for k in ("mailbox", "open", "open_cases", "priority_cases", "oldest_open", "breached")]
        m_head.append(w["breaching"])
        parts.append(_table(w["mailboxes"], m_head, [mailbox_cells(r, w) for r in wall.mailboxes]))
    return Group(*parts)


# -- running ----------------------------------------------------------------------------------


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) stop the screen as Ctrl-C does, so the terminal
    is restored and a demo's worker is stopped."""

    def interrupt(signum: int, _: Any) -> None:
        raise KeyboardInterrupt

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def show(
    scraper: Scraper,
    lang: str,
    interval: float,
    status: Callable[[Frame], Sequence[Text | str]] = lambda _: (),
    time_label: str | None = None,
    console: Console | None = None,
) -> None:
    """Scrape and draw every `interval` seconds until Ctrl-C (KeyboardInterrupt, raised to the
    caller). On a terminal the screen is redrawn in place (the alternate screen, restored at the
    end); otherwise each frame is printed after the other."""
    from rich.live import Live

    console = console or printer()
    if not console.is_terminal:
        while True:
            frame = scraper.scrape()
            console.print(render(frame, lang, status(frame), time_label))
            time.sleep(interval)
    with Live(console=console, screen=True, auto_refresh=False, vertical_overflow="crop") as live:
        while True:
            started = time.monotonic()
            frame = scraper.scrape()
            live.update(render(frame, lang, status(frame), time_label), refresh=True)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))


def printer() -> Console:
    """The console: the terminal's size on a terminal; otherwise PRINT_WIDTH columns (rich would
    assume 80, or $COLUMNS, and cut the table's cells)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PRINT_WIDTH)


def cmd_wall(args: argparse.Namespace, wiring: Wiring) -> int:
    from rich.text import Text

    urls = [metrics_url(u) for u in args.metrics_url]
    # The history is timed by the monotonic clock: a wall-clock step (NTP, a changed time zone
    # setting) neither stops the wall nor bends its 30 minutes; the screen shows the wall clock.
    scraper = Scraper(urls, lambda: datetime.now().astimezone(), args.lang, args.interval, time.monotonic)
    words = WORDS[args.lang]
    if args.once:
        frame = scraper.scrape()
        printer().print(render(frame, args.lang, [", ".join(urls)]))
        return 1 if frame.errors else 0
    try:
        with stopped_by_signals():
            show(scraper, args.lang, args.interval, lambda _: [Text(f"{', '.join(urls)} · {words['stop']}", "dim")])
    except KeyboardInterrupt:
        pass
    return 0  # Ctrl-C is how the wall ends: not an error


def add_command(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "wall",
        help="the supervisors' live wall in the terminal, from a running stream worker's /metrics",
        description="The numbers of the Grafana wall, computed with its formulas from the worker's own metrics "
        "(docs/live-wall.md), refreshed until Ctrl-C (exit 0).",
    )
    p.add_argument(
        "--metrics-url",
        metavar="URL",
        action="append",
        required=True,
        help="the worker's metrics, e.g. http://127.0.0.1:6066/metrics (`/metrics` is added to a bare host:port "
        "URL); repeat for several workers: their series are summed or maxed as Prometheus would",
    )
    p.add_argument(
        "--interval", type=positive(float), default=2.0, metavar="S", help="seconds between refreshes (default 2)"
    )
    p.add_argument(
        "--once", action="store_true", help="print one frame and exit (1 if a worker did not answer), for scripts"
    )
    p.add_argument("--lang", choices=sorted(WORDS), default="sv", help="headings' language (default sv, as Grafana's)")
    p.set_defaults(run=cmd_wall)
