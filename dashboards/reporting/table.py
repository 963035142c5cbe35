"""The monthly report on a terminal, for a supervisor who reads it in an 80-column window.

Everything fits the width it is given: a summary that cannot fit in one table is split into
narrow tables that repeat the process column (which wraps rather than widens), and a view's
matrix is split by columns with its legend under each part. Every number, label, target and
mark comes from the model (dashboards/reporting/model.py); this module only lays them out. The
marks ✓/✗ carry met/missed on their own, so a pipe or a file (no colour) reads the same as a
terminal (colour as well).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dashboards.reporting.model import (
    MARK,
    TEXT,
    Channel,
    Lang,
    Measure,
    Unit,
    entry,
    fmt,
    generic,
    limit_of,
    local_time,
    met,
    notices,
    period_label,
    periods,
    phone_label,
    phone_measures,
    process_name,
    reference,
    target,
    text,
    value_of,
)
from dashboards.reporting.model import (
    ids as process_ids,
)
from schemas.agreements import Agreements

# Words only the terminal needs (candidates for model.TEXT).
WORDS: dict[str, dict[Lang, str]] = {
    "notice": {"sv": "Observera", "en": "Notice"},
    "promises": {"sv": "Löften", "en": "Promises"},
    "volumes": {"sv": "Volymer och väntetider", "en": "Volumes and waits"},
    "callers": {"sv": "Uppringare och kopplingar", "en": "Callers and transfers"},
    "cases": {"sv": "Ärenden", "en": "Cases"},
    "lead_time": {"sv": "Ledtid", "en": "Lead time"},
    "limit": {"sv": "Gräns", "en": "Limit"},
    "other_levels": {"sv": "Andra gränser", "en": "Other limits"},
}

# The summary tables: (title word, groups of measure keys). A group's columns stay in one
# table; a section too wide for the terminal is split between groups. "service_levels" stands
# for a queue's extra thresholds (model: service_levels.<threshold>), shown in one column.
EXTRA_LEVELS = "service_levels"
PHONE_SECTIONS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("promises", (("service_level",), ("answer_rate",), (EXTRA_LEVELS,))),
    (
        "volumes",
        (
            ("offered", "answered"),
            ("abandoned", "short_abandoned"),
            ("callbacks", "flowed_out", "out_of_hours"),
            ("asa_seconds", "wait_p90_seconds", "max_wait_seconds"),
        ),
    ),
    ("callers", (("callers", "callers_reached", "abandoned_recovered"), ("transferred_out", "internal_transfers"))),
)
MAIL_SECTIONS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("cases", (("received", "answered"), ("closed_without_reply", "open_at_end"))),
    (
        "lead_time",
        (
            ("within_target", "breached"),
            ("median_lead_seconds",),
            ("answered_within_1_working_day",),
            ("priority_received", "priority_within_target"),
        ),
    ),
)

# The process column wraps, but not into slivers: below this it is better to split the table.
PROCESS_MIN_WIDTH = 18
STYLE = {True: "green", False: "bold red", None: ""}


@dataclasses.dataclass(frozen=True)
class Column:
    """A column of numbers: never wrapped (its width is its widest cell). Its header wraps at
    spaces, unless `whole` (when the table has the room)."""

    header: str
    cells: list[Text]
    whole: bool = False

    @property
    def width(self) -> int:
        widest = max((cell_len(line) for cell in self.cells for line in cell.plain.split("\n")), default=0)
        head = [self.header] if self.whole else self.header.split()
        return max(widest, *(cell_len(word) for word in head))


Group = list[Column]


def judged(value: float | int | None, unit: Unit, kept: bool | None, lang: Lang) -> Text:
    """A value with its mark (✓/✗ readable without colour), coloured when the stream shows colour.
    `kept` is the model's judgement (model.met): None shows the value alone."""
    return Text(f"{fmt(value, unit, lang)} {MARK[kept]}".rstrip(), style=STYLE[kept])


def measure_columns(
    report: dict[str, Any], agreements: Agreements, channel: Channel, ids: Sequence[str], key: str, lang: Lang
) -> Group:
    """The columns of one measure over the processes: the value (with the model's mark when
    judged), then the target or the reference it is read against; a service level also shows its
    limit. No column for extra thresholds when no queue has one."""
    month = report["month"]
    found = [entry(report, channel, p, "month", month) for p in ids]
    if key == EXTRA_LEVELS:
        cells = []
        for p, e in zip(ids, found, strict=True):
            extra = [m for m in phone_measures(agreements, p) if m.key.startswith(f"{EXTRA_LEVELS}.")]
            lines = [f"{limit_of(agreements, p, m.key)}: {fmt(value_of(e or {}, m.key), m.unit, lang)}" for m in extra]
            cells.append(Text("\n".join(lines)))
        return [Column(WORDS["other_levels"][lang], cells)] if any(c.plain for c in cells) else []
    m = generic(channel, key)
    targets = [target(agreements, channel, p, key) for p in ids]  # shown, not judged here
    refs = [reference(agreements, channel, p, key) for p in ids]
    out = [
        Column(
            m.label(lang),
            [
                judged(value_of(e or {}, key), m.unit, met(agreements, channel, p, key, e), lang)
                for p, e in zip(ids, found, strict=True)
            ],
        )
    ]
    shown = targets if any(targets) else refs
    if any(shown):
        out.append(Column(TEXT["target"][lang], [Text(fmt(t.value, t.unit, lang) if t else "") for t in shown]))
    if key == "service_level":
        out.append(Column(WORDS["limit"][lang], [Text(limit_of(agreements, p, key)) for p in ids]))
    return out


def table(title: str | None, stub_header: str, stub: list[Text], columns: Group, stub_min: int) -> Table:
    """One table: the stub (process or period) wraps, the numbers keep their width; the table is
    as wide as its title at least (a narrow matrix would wrap it: "Cases / received")."""
    t = Table(
        title=title,
        min_width=cell_len(title) if title else None,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    t.add_column(stub_header, min_width=stub_min, overflow="fold", vertical="top")
    for c in columns:
        t.add_column(c.header, justify="right", width=c.width, vertical="top")
    for i, s in enumerate(stub):
        t.add_row(s, *(c.cells[i] for c in columns))
    return t


def pack(
    console: Console, title: str | None, stub_header: str, stub: list[Text], groups: list[Group], stub_min: int
) -> list[tuple[Table, Group]]:
    """The groups in as few tables as fit the console's width (each with the stub), in order,
    with the columns each table holds. A group too wide on its own is split into its columns; a
    column too wide on its own stands alone (rich then folds it: still within the width). Headers
    are written on one line where that leaves the stub unwrapped (a wide terminal)."""
    unbounded = console.options.update_width(sys.maxsize)

    def fits(columns: Group, wrapped: bool = True) -> bool:
        """Within the width with the stub wrapped as far as it may be, or not wrapped at all."""
        need = Measurement.get(console, unbounded, table(title, stub_header, stub, columns, stub_min))
        return (need.minimum if wrapped else need.maximum) <= console.width

    units = [unit for g in groups for unit in ([g] if len(g) == 1 or fits(g) else [[c] for c in g])]
    parts: list[Group] = []
    for unit in units:
        if parts and fits([*parts[-1], *unit]):
            parts[-1].extend(unit)
        else:
            parts.append(list(unit))
    for p in parts:  # unwrap headers, left to right, where that costs no wrapping of the stub
        for i, c in enumerate(p):
            whole = dataclasses.replace(c, whole=True)
            if fits([*p[:i], whole, *p[i + 1 :]], wrapped=False):
                p[i] = whole
    return [(table(title, stub_header, stub, p, stub_min), p) for p in parts]


def summary(
    console: Console,
    report: dict[str, Any],
    agreements: Agreements,
    channel: Channel,
    sections: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...],
    lang: Lang,
) -> None:
    """A channel's month per process, section by section, each split to fit."""
    ids = process_ids(agreements, channel)
    stub = [Text(process_name(agreements, channel, p)) for p in ids]
    for word, keyed in sections:
        groups = [
            [c for key in keys for c in measure_columns(report, agreements, channel, ids, key, lang)] for keys in keyed
        ]
        groups = [g for g in groups if g]  # a queue without extra thresholds has no column for them
        for t, _ in pack(console, WORDS[word][lang], TEXT["process"][lang], stub, groups, PROCESS_MIN_WIDTH):
            console.print(t)
            console.print()


def matrix(
    console: Console,
    title: str,
    rows: list[str],
    view: str,
    ids: Sequence[str],
    cell: Callable[[str, str], Text],
    legend: Callable[[str], str],
    lang: Lang,
) -> None:
    """A view as periods (rows) by processes (numbered columns), split by columns to fit; under
    each part the legend of its numbers."""
    stub = [Text(period_label(view, r, lang)) for r in rows]
    stub_min = max((s.cell_len for s in stub), default=0)
    numbered = {str(n): p for n, p in enumerate(ids, 1)}
    groups = [[Column(n, [cell(p, r) for r in rows])] for n, p in numbered.items()]
    for t, chosen in pack(console, title, TEXT["period"][lang], stub, groups, stub_min):
        console.print(t)
        key = Table.grid(padding=(0, 1))
        key.add_column(no_wrap=True)
        key.add_column()
        for c in chosen:
            key.add_row(Text(f"{c.header} ="), Text(legend(numbered[c.header])))
        console.print(key)
        console.print()


def render_table(
    report: dict[str, Any], agreements: Agreements, lang: Lang, stream: TextIO, width: int | None = None
) -> None:
    """Write the report to `stream` within `width` columns (default: the terminal's, COLUMNS
    honoured). Colour only when the stream is a terminal, so a pipe or file gets plain text."""
    tty = stream.isatty()
    console = Console(
        file=stream,
        width=width or shutil.get_terminal_size().columns,
        force_terminal=tty,
        highlight=False,
        emoji=False,
        markup=False,
    )
    month = report["month"]
    console.print(Text(text("title", lang, month=period_label("months", month, lang)), style="bold"))
    for notice in notices(report, agreements, lang):
        console.print(Panel(Text(notice), title=WORDS["notice"][lang], title_align="left", border_style="red"))

    queues = list(agreements.queues)
    mailboxes = list(agreements.mailboxes)
    sl = generic("queues", "service_level")
    rate = generic("queues", "answer_rate")
    ooh = generic("queues", "out_of_hours")
    received = generic("mailboxes", "received")
    breached = generic("mailboxes", "breached")

    def cell(channel: Channel, m: Measure, view: str) -> Callable[[str, str], Text]:
        """A process's value of `m` in a period, with the model's mark when it judges one."""

        def at(process: str, period: str) -> Text:
            values = entry(report, channel, process, view, period)
            kept = met(agreements, channel, process, m.key, values)
            return judged(value_of(values or {}, m.key), m.unit, kept, lang)

        return at

    def goal_legend(m: Measure) -> Callable[[str], str]:
        """`<queue>: Servicenivå ≤ 60 s, mål 80,0 %`: the queue's own label and target."""

        def legend(q: str) -> str:
            t = target(agreements, "queues", q, m.key)
            goal = f", {TEXT['target'][lang].lower()} {fmt(t.value, t.unit, lang)}" if t else ""
            return f"{process_name(agreements, 'queues', q)}: {phone_label(agreements, q, m.key, lang)}{goal}"

        return legend

    def name_legend(channel: Channel) -> Callable[[str], str]:
        return lambda p: process_name(agreements, channel, p)

    def rule(channel: str, view: str) -> None:
        console.rule(Text(f"{TEXT[channel][lang]} · {TEXT[view][lang]}", style="bold"))

    def with_data(channel: Channel, ids: list[str]) -> list[str]:
        """The hours of the day in which any of the processes had a contact or case."""
        return [h for h in periods(report, "hours") if any(entry(report, channel, p, "hours", h) for p in ids)]

    if queues:
        rule("phone", "summary")
        summary(console, report, agreements, "queues", PHONE_SECTIONS, lang)
    if mailboxes:
        rule("mail", "summary")
        summary(console, report, agreements, "mailboxes", MAIL_SECTIONS, lang)
    if queues:
        rule("phone", "days")
        days = periods(report, "days")
        matrix(console, sl.label(lang), days, "days", queues, cell("queues", sl, "days"), goal_legend(sl), lang)
        rule("phone", "hours")
        hours = with_data("queues", queues)
        if hours:
            matrix(console, sl.label(lang), hours, "hours", queues, cell("queues", sl, "hours"), goal_legend(sl), lang)
            names = name_legend("queues")
            matrix(console, ooh.label(lang), hours, "hours", queues, cell("queues", ooh, "hours"), names, lang)
        else:
            console.print(Text(TEXT["no_data"][lang]))
            console.print()
        rule("phone", "months")
        months = periods(report, "months")
        for m in (sl, rate):
            matrix(console, m.label(lang), months, "months", queues, cell("queues", m, "months"), goal_legend(m), lang)
    if mailboxes:
        names = name_legend("mailboxes")
        rule("mail", "days")
        days = periods(report, "days")
        matrix(console, breached.label(lang), days, "days", mailboxes, cell("mailboxes", breached, "days"), names, lang)
        rule("mail", "hours")
        hours = with_data("mailboxes", mailboxes)
        if hours:
            at = cell("mailboxes", received, "hours")
            matrix(console, received.label(lang), hours, "hours", mailboxes, at, names, lang)
        else:
            console.print(Text(TEXT["no_data"][lang]))
            console.print()
        rule("mail", "months")
        months = periods(report, "months")
        at = cell("mailboxes", breached, "months")
        matrix(console, breached.label(lang), months, "months", mailboxes, at, names, lang)

    evaluated = text("evaluated", lang, time=local_time(report["evaluated_at"], agreements))
    console.print(Text(evaluated, style="dim"))
    console.print(Text(TEXT["mark_legend"][lang]))
