"""The monthly report as an Excel workbook, for the controller who filters, pivots and charts it.

Every cell holds a real number in the unit Excel computes with, never text: a ratio is a fraction
shown as a percentage, a wait is a duration (days, shown [m]:ss), a lead time is hours. So a sum, a
pivot table or a chart made from the workbook computes with the report's own values. What is
shown (measures, labels, targets, met or missed, periods, notices) comes from `model`; this module
only lays it out:

- the summary: one row per process, the month's phone and mail measures, each judged measure beside
  its target and a ✓/✗ in colour, notices as banners on top;
- per view (day, hour of day, 13 months) and channel a long table (process, period, measures) with
  a filter, and native charts of the trends beside each process's rows;
- the definitions the report used.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import xlsxwriter  # type: ignore[import-untyped]  # XlsxWriter ships no type information

from dashboards.reporting import model
from dashboards.reporting.model import Channel, Lang, Measure, Target, Unit
from schemas.agreements import Agreements

CHANNELS: tuple[Channel, ...] = ("queues", "mailboxes")
VIEW_SHEETS = ("days", "hours", "months")

# Words only the workbook needs (the model has the rest).
WORDS: dict[str, dict[Lang, str]] = {
    "queues": {"sv": "telefoni", "en": "phone"},  # in sheet names, which Excel limits to 31 characters
    "mailboxes": {"sv": "brevlådor", "en": "mailboxes"},
    "threshold": {"sv": "Servicenivå, gräns", "en": "Service level threshold"},
    "reference": {"sv": "Ledtidsmål", "en": "Lead-time target"},
    "key": {"sv": "Nyckel", "en": "Key"},
    "definition": {"sv": "Definition", "en": "Definition"},
}

# The Excel value of a report value is value / SCALE[unit], shown with FORMATS[unit].
FORMATS: dict[str, str] = {"count": "#,##0", "ratio": "0.0 %", "seconds": "[m]:ss", "hours": '0.0 "h"'}
SCALE: dict[str, int] = {"count": 1, "ratio": 1, "seconds": 86_400, "hours": 3_600}
THRESHOLD_FORMAT = '"≤ "General" s"'  # a service-level threshold, in seconds as agreed

# Excel's own "Good" and "Bad" cell styles: what a met and a missed target look like.
TONES = {True: ("#C6EFCE", "#006100"), False: ("#FFC7CE", "#9C0006")}
BANNER = ("#FFEB9C", "#9C5700")  # Excel's "Neutral": a notice to read before the numbers
HEADER_FILL = "#DDEBF7"
ROW_PX = 20  # the default row height (15 pt) in pixels, to size a chart to the rows beside it
BANNER_WIDTH = 110  # characters: a banner wraps within about a screen's width
DEFINITION_WIDTH = 90  # characters
ONE_LINE = 14  # characters: a header this short is not broken


def sheet_name(view: str, lang: Lang, channel: Channel | None = None) -> str:
    """The sheet of a view: the month is the summary; a view has a sheet per channel."""
    if view == "month":
        return model.text("summary", lang)
    assert channel is not None
    return f"{model.text(view, lang)} – {WORDS[channel][lang]}"


# -- columns: what a table shows, decided from the model's measures --------------------------------

Kind = Literal["value", "target", "mark", "reference", "threshold"]


@dataclass(frozen=True)
class Column:
    """A column of a table: a measure's value, its target, met or missed, its reference, or a queue's
    service-level threshold (the queues of one table have different thresholds)."""

    kind: Kind
    channel: Channel
    measure: Measure
    header: str


def columns(agreements: Agreements, channel: Channel, view: str, lang: Lang) -> list[Column]:
    """The columns of a channel's table: every measure any of its processes has in the view, in the
    model's order, the extra service levels (by threshold) after service_level; beside a judged
    measure its target and mark, beside the median lead time the lead-time target."""
    ids = model.ids(agreements, channel)
    found: dict[str, Measure] = {}
    for process in ids:
        for m in model.measures(agreements, channel, process, view):
            found.setdefault(m.key, m)
    extras = sorted((k for k in found if k.startswith("service_levels.")), key=lambda k: float(k.split(".", 1)[1]))
    out: list[Column] = []
    for base in model.PHONE if channel == "queues" else model.MAIL:
        if base.key not in found:
            continue
        if base.key == "service_level":  # its label names one queue's threshold: a column shows each
            out.append(Column("threshold", channel, base, WORDS["threshold"][lang]))
        out.append(Column("value", channel, base, base.label(lang)))
        if any(model.target(agreements, channel, p, base.key) for p in ids):
            out.append(Column("target", channel, base, model.text("target", lang)))
            out.append(Column("mark", channel, base, model.text("met", lang)))
        if any(model.reference(agreements, channel, p, base.key) for p in ids):
            out.append(Column("reference", channel, base, WORDS["reference"][lang]))
        if base.key == "service_level":
            out += [Column("value", channel, found[k], found[k].label(lang)) for k in extras]
    return out


@dataclass(frozen=True)
class Cell:
    """What a column shows for one process: a value in a unit (or a mark), and met or missed."""

    value: float | int | str | None  # a str is a mark (✓/✗)
    unit: Unit | None  # None: a mark, or a threshold in seconds (as agreed, no unit conversion)
    met: bool | None = None


def cell(col: Column, agreements: Agreements, process: str, values: dict[str, Any] | None) -> Cell:
    key = col.measure.key
    value = model.value_of(values, key) if values is not None else None
    judge: Target | None = model.target(agreements, col.channel, process, key)
    met = model.met(agreements, col.channel, process, key, values)
    if col.kind == "value":
        return Cell(value, col.measure.unit, met)
    if col.kind == "mark":
        return Cell(model.MARK[met] or None, None, met)  # no data: an empty cell
    if col.kind == "threshold":
        return Cell(agreements.queues[process].service_level_seconds, None)
    shown = judge if col.kind == "target" else model.reference(agreements, col.channel, process, key)
    return Cell(shown.value, shown.unit) if shown is not None else Cell(None, col.measure.unit)


def excel_value(value: float | int, unit: Unit) -> float | int:
    """A report value in the unit Excel computes with: a wait in days, a lead time in hours."""
    return value if SCALE[unit] == 1 else value / SCALE[unit]


def blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- styles and widths -----------------------------------------------------------------------------


class Styles:
    """XlsxWriter formats, made once per look (a workbook holds a limited number of them)."""

    def __init__(self, workbook: Any) -> None:
        self.workbook = workbook
        self.made: dict[tuple[Any, ...], Any] = {}

    def get(self, *look: Any, **props: Any) -> Any:
        key = (*look, *sorted(props.items()))
        if key not in self.made:
            self.made[key] = self.workbook.add_format(props)
        return self.made[key]

    def cell(self, c: Cell, top: bool) -> Any:
        """A data cell: its number format, coloured when judged, a rule above a process's first row."""
        props: dict[str, Any] = {"valign": "top"}
        if isinstance(c.value, str):  # a mark
            props |= {"align": "center", "bold": True}
        else:
            props["num_format"] = THRESHOLD_FORMAT if c.unit is None else FORMATS[c.unit]
        if c.met is not None:
            props |= {"bg_color": TONES[c.met][0], "font_color": TONES[c.met][1]}
        if top:
            props |= {"top": 1, "top_color": "#808080"}
        return self.get("cell", **props)

    def text(self, top: bool = False, wrap: bool = False) -> Any:
        props: dict[str, Any] = {"valign": "top", "text_wrap": wrap}
        if top:
            props |= {"top": 1, "top_color": "#808080"}
        return self.get("text", **props)

    def header(self) -> Any:
        return self.get("header", bold=True, text_wrap=True, valign="bottom", bg_color=HEADER_FILL, bottom=1)

    def group(self) -> Any:
        return self.get("group", bold=True, indent=1, bg_color=HEADER_FILL, border=1)  # left: on screen

    def title(self) -> Any:
        return self.get("title", bold=True, font_size=14)

    def banner(self) -> Any:
        fill, font = BANNER
        return self.get("banner", bold=True, text_wrap=True, valign="top", bg_color=fill, font_color=font, border=1)

    def note(self) -> Any:
        return self.get("note", italic=True, text_wrap=True, valign="top", font_color="#404040")


def wrapped(text: str, width: int) -> list[str]:
    """A text's lines in a column `width` characters wide (breaking at spaces only)."""
    return textwrap.wrap(text, max(width, 1), break_long_words=False, break_on_hyphens=False) or [""]


def header_lines(text: str, room: int) -> list[str]:
    """A header broken into at most two lines (three when long), no narrower than `room`, the width
    its values need; a short one stays whole. The breaks are written into the header, so every
    program shows the same lines."""
    if len(text) <= max(room, ONE_LINE):
        return [text]
    most = 2 if len(text) <= 28 else 3
    width = max(room, max(len(w) for w in text.split()), math.ceil(len(text) / most))
    while len(wrapped(text, width)) > most:
        width += 1
    return wrapped(text, width)


@dataclass
class Widths:
    """Column widths that fit what they hold, in characters. Excel's width unit is a digit of the
    default font, wider than most letters; two more leave room for a wider substitute font
    (LibreOffice without Calibri), so no number shows ####."""

    chars: dict[int, int] = field(default_factory=dict)

    def fit(self, col: int, chars: int) -> None:
        self.chars[col] = max(self.chars.get(col, 0), chars)

    def excel(self, col: int) -> float:
        return max(3, self.chars.get(col, 6)) + 2

    def apply(self, ws: Any) -> None:
        for col in self.chars:
            ws.set_column(col, col, self.excel(col))


def shown(c: Cell, lang: Lang) -> str:
    """About what a cell shows (to size its column): the model's human form of the value."""
    if c.value is None or blank(c.value):
        return ""
    if isinstance(c.value, str):
        return c.value
    if c.unit is None:
        return model.limit(c.value)
    return model.fmt(c.value, c.unit, lang)


def write_cell(ws: Any, styles: Styles, row: int, col: int, c: Cell, top: bool) -> None:
    style = styles.cell(c, top)
    if c.value is None or blank(c.value):
        ws.write_blank(row, col, None, style)
    elif isinstance(c.value, str):
        ws.write_string(row, col, c.value, style)
    elif c.unit is None:
        ws.write_number(row, col, c.value, style)
    else:
        ws.write_number(row, col, excel_value(c.value, c.unit), style)


def write_headers(ws: Any, styles: Styles, widths: Widths, row: int, headers: Sequence[str]) -> None:
    """The header row, written once the values have sized the columns: each header broken into
    lines that fit its column (widened when a word needs it), the row as tall as the most lines."""
    most = 1
    for col, head in enumerate(headers):
        broken = header_lines(head, widths.chars.get(col, 0))
        ws.write_string(row, col, "\n".join(broken), styles.header())
        widths.fit(col, math.ceil(max(len(line) for line in broken) * 1.1))  # bold
        most = max(most, len(broken))
    ws.set_row(row, 15 * most + 3)


def write_paragraph(ws: Any, row: int, last: int, text: str, style: Any, widths: Widths) -> None:
    """A text over merged cells from column 0 (a banner, a note), about a screen wide, wrapped, in a
    row tall enough for it (estimated for a font wider than Calibri: a spare line, not a clipped one)."""
    end, room = 0, widths.excel(0)
    while end < last and room < BANNER_WIDTH:
        end += 1
        room += widths.excel(end)
    if end > 0:
        ws.merge_range(row, 0, row, end, text, style)
    else:
        ws.write_string(row, 0, text, style)
    ws.set_row(row, 15 * len(wrapped(text, int(room / 1.1))) + 4)


# -- the sheets ------------------------------------------------------------------------------------


def name_width(names: Sequence[str]) -> int:
    """A wrapped name column: wide enough for every name in two lines and for most in one."""
    two = max((len(w) for n in names for w in n.split()), default=10)  # no process at all: a plain column
    while any(len(wrapped(n, two)) > 2 for n in names):
        two += 1
    return max(two, max((len(n) for n in names if len(n) <= 48), default=0))


def write_summary(wb: Any, styles: Styles, report: dict[str, Any], agreements: Agreements, lang: Lang) -> None:
    """One row per process: its phone measures, then its mail measures, of the month, under a title,
    the notices as banners, the evaluation time and the legend of the marks."""
    ws = wb.add_worksheet(sheet_name("month", lang))
    tables = {ch: columns(agreements, ch, "month", lang) for ch in CHANNELS}
    ordered = [c for ch in CHANNELS for c in tables[ch]]
    last = len(ordered)
    procs = model.processes(agreements)
    cells: list[list[Cell | None]] = []
    for process, _ in procs:
        line: list[Cell | None] = []
        for col in ordered:
            holder = agreements.queues if col.channel == "queues" else agreements.mailboxes
            line.append(cell(col, agreements, process, report[col.channel].get(process)) if process in holder else None)
        cells.append(line)
    widths = Widths()
    widths.fit(0, name_width([name for _, name in procs]))
    for i in range(last):
        widths.fit(i + 1, max((len(shown(c, lang)) for row in cells if (c := row[i]) is not None), default=1))

    # Rows: the title, the banners and notes, a blank row, the channels, the header, the processes.
    notes = [(n, styles.banner()) for n in model.notices(report, agreements, lang)]
    evaluated = model.text("evaluated", lang, time=model.local_time(report["evaluated_at"], agreements))
    notes += [(evaluated, styles.note()), (model.text("mark_legend", lang), styles.note())]
    header = len(notes) + 3
    write_headers(ws, styles, widths, header, [model.text("process", lang), *(c.header for c in ordered)])
    month = model.period_label("months", report["month"], lang)
    ws.write_string(0, 0, model.text("title", lang, month=month), styles.title())
    ws.set_row(0, 24)
    for row, (note, style) in enumerate(notes, start=1):
        write_paragraph(ws, row, last, note, style, widths)
    first = 1
    for ch in CHANNELS:  # a group header over each channel's columns
        if n := len(tables[ch]):
            group = model.text("phone" if ch == "queues" else "mail", lang)
            ws.merge_range(header - 1, first, header - 1, first + n - 1, group, styles.group())
        first += n

    for n, ((_, name), line) in enumerate(zip(procs, cells, strict=True)):
        row = header + 1 + n
        ws.write_string(row, 0, name, styles.text(top=True, wrap=True))
        for i, c in enumerate(line):
            if c is None:
                ws.write_blank(row, i + 1, None, styles.text(top=True))
            else:
                write_cell(ws, styles, row, i + 1, c, top=True)
        ws.set_row(row, 15 * len(wrapped(name, widths.chars[0])) + 3)

    widths.apply(ws)
    ws.freeze_panes(header + 1, 1)
    ws.autofilter(header, 0, header + len(cells), last)
    ws.set_landscape()
    ws.set_paper(8)  # A3, one page wide: the summary is wide
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(header - 1, header)
    ws.repeat_columns(0)


def write_view(
    wb: Any, styles: Styles, report: dict[str, Any], agreements: Agreements, lang: Lang, view: str, channel: Channel
) -> None:
    """A long table: every process's every period of the view, its measures in columns, and the
    charts of the trend beside each process's rows."""
    name = sheet_name(view, lang, channel)
    ws = wb.add_worksheet(name)
    cols = columns(agreements, channel, view, lang)
    ids = model.ids(agreements, channel)
    widths = Widths()
    header = 2
    row = header + 1
    blocks: dict[str, tuple[int, int]] = {}
    for process in ids:
        pname = model.process_name(agreements, channel, process)
        widths.fit(0, len(pname))  # not wrapped: a period's row stays one line, beside its chart
        start = row
        for period in model.periods(report, view):
            top = row == start
            label = model.period_label(view, period, lang)
            widths.fit(1, len(label))
            ws.write_string(row, 0, pname, styles.text(top))
            ws.write_string(row, 1, label, styles.text(top))
            values = model.entry(report, channel, process, view, period)
            for i, col in enumerate(cols):
                c = cell(col, agreements, process, values)
                widths.fit(i + 2, len(shown(c, lang)))
                write_cell(ws, styles, row, i + 2, c, top)
            row += 1
        blocks[process] = (start, row - 1)

    headers = [model.text("process", lang), model.text("period", lang), *(c.header for c in cols)]
    write_headers(ws, styles, widths, header, headers)
    group = model.text("phone" if channel == "queues" else "mail", lang)
    month = model.period_label("months", report["month"], lang)
    ws.write_string(
        0, 0, f"{model.text('title', lang, month=month)} · {model.text(view, lang)} · {group}", styles.title()
    )
    ws.set_row(0, 24)
    widths.apply(ws)
    ws.freeze_panes(header + 1, 2)
    ws.autofilter(header, 0, row - 1, len(headers) - 1)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(header)
    where = {(c.kind, c.measure.key): i + 2 for i, c in enumerate(cols)}
    charts(wb, ws, name, agreements, channel, view, header, blocks, where, len(headers) + 1)


def charts(
    wb: Any,
    ws: Any,
    sheet: str,
    agreements: Agreements,
    channel: Channel,
    view: str,
    header: int,
    blocks: dict[str, tuple[int, int]],
    where: dict[tuple[Kind, str], int],
    at: int,
) -> None:
    """Native charts beside each process's rows: over 13 months a queue's service level against its
    target and a mailbox's cases within and past the lead time; over the hours of the day a queue's
    demand in and out of opening hours and a mailbox's cases received."""
    plans: dict[tuple[str, Channel], tuple[str, list[tuple[Kind, str, dict[str, Any]]]]] = {
        ("months", "queues"): (
            "line",
            [
                ("value", "service_level", {"marker": {"type": "circle", "size": 5}, "line": {"width": 2.25}}),
                ("target", "service_level", {"line": {"color": TONES[False][1], "dash_type": "dash", "width": 1.5}}),
            ],
        ),
        ("months", "mailboxes"): (
            "column_stacked",
            [
                ("value", "within_target", {"fill": {"color": "#70AD47"}}),
                ("value", "breached", {"fill": {"color": "#C00000"}}),
            ],
        ),
        ("hours", "queues"): (
            "column_stacked",
            [
                ("value", "offered", {"fill": {"color": "#4472C4"}}),
                ("value", "out_of_hours", {"fill": {"color": "#A5A5A5"}}),
            ],
        ),
        ("hours", "mailboxes"): ("column", [("value", "received", {"fill": {"color": "#4472C4"}})]),
    }
    plan = plans.get((view, channel))
    if plan is None:
        return
    kind, series = plan
    chart_type, _, subtype = kind.partition("_")
    for process, (first, last) in blocks.items():
        chart = wb.add_chart({"type": chart_type, **({"subtype": subtype} if subtype else {})})
        for col_kind, key, look in series:
            col = where[(col_kind, key)]
            chart.add_series(
                {
                    "name": [sheet, header, col],
                    "categories": [sheet, first, 1, last, 1],
                    "values": [sheet, first, col, last, col],
                    **look,
                }
            )
        chart.set_title({"name": model.process_name(agreements, channel, process), "name_font": {"size": 11}})
        axis: dict[str, Any] = {"min": 0, "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}}
        if chart_type == "line":  # a service level: a share, 0 to 100 %
            axis |= {"max": 1, "num_format": "0 %"}
        chart.set_y_axis(axis)
        chart.set_x_axis({"num_font": {"rotation": -45 if view == "months" else -90, "size": 8}})
        chart.set_legend({"position": "bottom"})
        if chart_type == "column":
            chart.set_chartarea({"border": {"none": True}})
        chart.set_size({"width": 560, "height": max(ROW_PX * (last - first + 1), 240)})
        ws.insert_chart(first, at, chart)


def write_definitions(wb: Any, styles: Styles, report: dict[str, Any], lang: Lang) -> None:
    """The definitions the report used, by key; a measure's key also by its label."""
    ws = wb.add_worksheet(model.text("definitions", lang))
    labels = {m.key: m.label(lang) for m in (*model.PHONE, *model.MAIL)}
    widths = Widths()
    widths.fit(2, DEFINITION_WIDTH)
    used = model.definitions(report, lang)
    for row, (key, definition) in enumerate(used.items(), start=1):
        ws.write_string(row, 0, key, styles.text())
        widths.fit(0, len(key))
        if key in labels:
            ws.write_string(row, 1, labels[key], styles.text())
            widths.fit(1, len(labels[key]))
        ws.write_string(row, 2, definition, styles.text(wrap=True))
        ws.set_row(row, 15 * len(wrapped(definition, int(DEFINITION_WIDTH / 1.2))) + 3)
    write_headers(ws, styles, widths, 0, [WORDS["key"][lang], model.text("measure", lang), WORDS["definition"][lang]])
    widths.apply(ws)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, len(used), 2)


def write_xlsx(report: dict[str, Any], agreements: Agreements, lang: Lang, out: BinaryIO | Path) -> None:
    """The report as a workbook: the summary, per day, per hour of day, 13 months, definitions."""
    target: str | BinaryIO = str(out) if isinstance(out, Path) else out
    wb = xlsxwriter.Workbook(target, {"in_memory": True})
    month = model.period_label("months", report["month"], lang)
    wb.set_properties({"title": model.text("title", lang, month=month)})
    styles = Styles(wb)
    write_summary(wb, styles, report, agreements, lang)
    for view in VIEW_SHEETS:
        for channel in CHANNELS:
            write_view(wb, styles, report, agreements, lang, view, channel)
    write_definitions(wb, styles, report, lang)
    wb.close()
