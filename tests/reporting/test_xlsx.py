"""The Excel workbook holds every number of the report, as a real number in its place: for each row
of model.rows() (the process, the period, the measure) the cell under the measure's header holds the
value, in Excel's unit and number format, with its target and the met mark beside it. Also: frozen
headers, a filter on every table, native charts of the right rows, the notices as banners."""

from __future__ import annotations

import io
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from dashboards.reporting import model
from dashboards.reporting.model import Channel, Lang, Row
from dashboards.reporting.xlsx import sheet_name, write_xlsx
from schemas.agreements import Agreements
from tests.conftest import importorfail

openpyxl = importorfail("openpyxl", "a dev dependency: pip install -e '.[dev]'")

# What the brief asks of each unit: the number format, and the factor from Excel's value back to the
# report's (a wait is a duration in days, a lead time is in hours).
FORMAT = {"count": "#,##0", "ratio": "0.0 %", "seconds": "[m]:ss", "hours": '0.0 "h"'}
BACK = {"count": 1, "ratio": 1, "seconds": 86_400, "hours": 3_600}
GOOD, BAD = "FFC6EFCE", "FFFFC7CE"  # the fills of a met and a missed mark
BANNER = "FFFFEB9C"
MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


# -- reading the workbook back ------------------------------------------------------------------------


def raw_numbers(data: bytes) -> dict[str, dict[tuple[int, int], str]]:
    """Every numeric cell of every sheet as the text stored in the file, by (row, column), 1-based.

    openpyxl turns a number under a duration format into a timedelta rounded to milliseconds; the
    stored text is the number Excel reads."""
    out: dict[str, dict[tuple[int, int], str]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        rels = {r.get("Id"): r.get("Target") for r in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))}
        for sheet in ElementTree.fromstring(book.read("xl/workbook.xml")).iter(f"{MAIN}sheet"):
            cells: dict[tuple[int, int], str] = {}
            xml = ElementTree.fromstring(book.read("xl/" + str(rels[sheet.get(RELS)]).removeprefix("/xl/")))
            for c in xml.iter(f"{MAIN}c"):
                v = c.find(f"{MAIN}v")
                if c.get("t", "n") == "n" and v is not None and v.text is not None:
                    letters, digits = re.fullmatch(r"([A-Z]+)(\d+)", str(c.get("r"))).groups()  # type: ignore[union-attr]
                    cells[(int(digits), openpyxl.utils.column_index_from_string(letters))] = v.text
            out[str(sheet.get("name"))] = cells
    return out


def header(cell_value: Any) -> str:
    """A header as one line (the workbook breaks long headers into lines)."""
    return str(cell_value).replace("\n", " ") if cell_value is not None else ""


@dataclass
class Table:
    """A table of a sheet: its header row, the columns by header (left to right), and its rows."""

    sheet: Any
    head: int
    columns: list[tuple[int, str]] = field(default_factory=list)
    rows: dict[tuple[str, ...], int] = field(default_factory=dict)

    def column(self, label: str, within: range | None = None) -> int:
        found = [c for c, h in self.columns if h == label and (within is None or c in within)]
        assert len(found) == 1, f"{label!r} is the header of columns {found} of {self.sheet.title}"
        return found[0]


def find_table(ws: Any, lang: Lang, keys: int) -> Table:
    """The table whose header row starts with the process header; rows keyed by the first `keys`
    cells (the process, and the period in a view)."""
    head = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == model.text("process", lang))
    table = Table(ws, head)
    table.columns = [(c, header(ws.cell(head, c).value)) for c in range(1, ws.max_column + 1)]
    for r in range(head + 1, ws.max_row + 1):
        key = tuple(str(ws.cell(r, c).value) for c in range(1, keys + 1))
        assert key not in table.rows, f"{key} twice in {ws.title}"
        table.rows[key] = r
    return table


@dataclass
class Book:
    data: bytes
    wb: Any
    numbers: dict[str, dict[tuple[int, int], str]]


def written(report: dict[str, Any], agreements: Agreements, lang: Lang) -> Book:
    out = io.BytesIO()
    write_xlsx(report, agreements, lang, out)
    return read(out.getvalue())


CASES = [("example_report", "example_agreements"), ("week_report", "shipped_agreements")]


@pytest.fixture(
    scope="module", params=[(r, a, lang) for r, a in CASES for lang in model.LANGS], ids=lambda p: f"{p[0]}-{p[2]}"
)
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Agreements, Lang, Book]:
    """A report, its agreements, a language and the workbook written from them (read back once)."""
    report_name, agreements_name, lang = request.param
    report = request.getfixturevalue(report_name)
    agreements = request.getfixturevalue(agreements_name)
    return report, agreements, lang, written(report, agreements, lang)


# -- where a row of the report belongs -----------------------------------------------------------------


def base_label(row: Row, lang: Lang) -> str:
    """The header of a measure's column: its label, but service_level's generic one (the queues of a
    table have different thresholds, shown in a column of their own)."""
    base = {m.key: m for m in (model.PHONE if row.channel == "queues" else model.MAIL)}
    return base[row.measure].label(lang) if row.measure in base else row.label


def group_columns(ws: Any, head: int, lang: Lang) -> dict[Channel, range]:
    """The summary's columns of each channel, from the merged group headers above the header row."""
    spans: dict[Channel, range] = {}
    for merged in ws.merged_cells.ranges:
        if merged.min_row == head - 1:
            value = ws.cell(merged.min_row, merged.min_col).value
            channel: Channel = "queues" if value == model.text("phone", lang) else "mailboxes"
            assert value == model.text("phone" if channel == "queues" else "mail", lang)
            spans[channel] = range(merged.min_col, merged.max_col + 1)
    assert set(spans) == {"queues", "mailboxes"}
    return spans


def check_number(book: Book, ws: Any, r: int, c: int, value: float | int | None, unit: str, lang: Lang) -> None:
    """The cell holds the value as a real number in Excel's unit (or is empty for no data)."""
    cell = ws.cell(r, c)
    raw = book.numbers[ws.title].get((r, c))
    where = f"{ws.title}!{cell.coordinate}"
    if value is None:
        assert cell.value is None and raw is None, where
        return
    assert raw is not None, f"{where} holds {cell.value!r}, not a number"
    assert cell.number_format == FORMAT[unit], where
    if unit == "count":
        assert isinstance(value, int) and raw == str(value), where  # an integer, exactly
    elif unit == "ratio":  # XlsxWriter writes 16 significant digits (Excel keeps 15)
        assert float(raw) == pytest.approx(value, rel=1e-15), where
    else:
        assert float(raw) * BACK[unit] == pytest.approx(value, rel=1e-12), where
    width = ws.column_dimensions[openpyxl.utils.get_column_letter(c)].width
    assert width >= len(model.fmt(value, unit, lang)), f"{where}: column too narrow"  # type: ignore[arg-type]


def test_every_number_of_the_report_is_in_its_place(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    report, agreements, lang, book = case
    assert_every_number_in_place(report, agreements, lang, book)


def read(data: bytes) -> Book:
    """A workbook's bytes, read back as openpyxl and as the raw numbers of its sheets."""
    return Book(data, openpyxl.load_workbook(io.BytesIO(data)), raw_numbers(data))


def assert_every_number_in_place(report: dict[str, Any], agreements: Agreements, lang: Lang, book: Book) -> None:
    """Each model row's value in the workbook, at its process, period and measure, with its target
    and mark beside it (also used on the workbook `availability report` writes)."""
    names = dict(model.processes(agreements))
    summary = find_table(book.wb[sheet_name("month", lang)], lang, keys=1)
    spans = group_columns(summary.sheet, summary.head, lang)
    views: dict[tuple[str, Channel], Table] = {}
    checked: dict[str, int] = defaultdict(int)
    for row in model.rows(report, agreements, lang):
        label = base_label(row, lang)
        if row.view == "month":
            table = summary
            r = table.rows[(names[row.process],)]
            c = table.column(label, spans[row.channel])
        else:
            if (row.view, row.channel) not in views:
                views[(row.view, row.channel)] = find_table(book.wb[sheet_name(row.view, lang, row.channel)], lang, 2)
            table = views[(row.view, row.channel)]
            r = table.rows[(row.process_name, model.period_label(row.view, row.period, lang))]
            c = table.column(label)
        ws = table.sheet
        check_number(book, ws, r, c, row.value, row.unit, lang)
        if row.target is not None:  # the target beside, then the mark in colour
            assert header(ws.cell(table.head, c + 1).value) == model.text("target", lang)
            check_number(book, ws, r, c + 1, row.target, row.unit, lang)
            assert header(ws.cell(table.head, c + 2).value) == model.text("met", lang)
            mark = ws.cell(r, c + 2)
            assert mark.value == (model.MARK[row.met] or None), f"{ws.title}!{mark.coordinate}"
            if row.met is not None:
                assert mark.fill.fgColor.rgb == (GOOD if row.met else BAD)
                assert ws.cell(r, c).fill.fgColor.rgb == (GOOD if row.met else BAD)  # the value too
        ref = model.reference(agreements, row.channel, row.process, row.measure)
        if ref is not None:  # the lead-time target beside the median, not judged
            check_number(book, ws, r, c + 1, ref.value, ref.unit, lang)
            assert ws.cell(r, c + 1).fill.fgColor.rgb != BAD
        checked[row.view] += 1
    assert all(checked[view] > 0 for view in model.VIEWS), checked


def test_a_row_per_process_and_period(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    """The summary lists every process once; each view every process in every period, in order."""
    report, agreements, lang, book = case
    summary = find_table(book.wb[sheet_name("month", lang)], lang, keys=1)
    assert list(summary.rows) == [(name,) for _, name in model.processes(agreements)]
    for view in ("days", "hours", "months"):
        for channel in ("queues", "mailboxes"):
            table = find_table(book.wb[sheet_name(view, lang, channel)], lang, keys=2)
            ids = agreements.queues if channel == "queues" else agreements.mailboxes
            assert list(table.rows) == [
                (model.process_name(agreements, channel, p), model.period_label(view, period, lang))
                for p in ids
                for period in model.periods(report, view)
            ]


def test_tables_hold_numbers_not_text(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    """Right of the process and period, a cell is a number, empty, or a mark under the met header."""
    _, _, lang, book = case
    for ws in book.wb.worksheets[:-1]:  # the definitions are text
        keys = 1 if ws.title == sheet_name("month", lang) else 2
        table = find_table(ws, lang, keys)
        for r in table.rows.values():
            for c, head in table.columns[keys:]:
                value = ws.cell(r, c).value
                if head == model.text("met", lang):
                    assert value in (None, *model.MARK.values())
                else:
                    assert value is None or (r, c) in book.numbers[ws.title], f"{ws.title}!{ws.cell(r, c).coordinate}"


def test_sheets_frozen_filtered_and_named(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    _, _, lang, book = case
    expected = [
        sheet_name("month", lang),
        *(sheet_name(view, lang, ch) for view in ("days", "hours", "months") for ch in ("queues", "mailboxes")),
        model.text("definitions", lang),
    ]
    assert book.wb.sheetnames == expected
    assert all(len(name) <= 31 for name in expected)  # Excel's limit
    assert model.text("days", lang) in expected[1] and model.text("months", lang) in expected[-2]
    for ws in book.wb.worksheets:
        if ws.title == model.text("definitions", lang):
            head, keys = 1, 0
        else:
            keys = 1 if ws.title == expected[0] else 2
            head = find_table(ws, lang, keys).head
        assert ws.freeze_panes == f"{openpyxl.utils.get_column_letter(keys + 1)}{head + 1}", (
            ws.title
        )  # header and names stay
        last = f"{openpyxl.utils.get_column_letter(ws.max_column)}{ws.max_row}"
        assert ws.auto_filter.ref == f"A{head}:{last}", ws.title


def test_summary_title_and_notes(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    report, agreements, lang, book = case
    ws = book.wb[sheet_name("month", lang)]
    month = model.period_label("months", report["month"], lang)
    assert ws["A1"].value == model.text("title", lang, month=month)
    top = [ws.cell(r, 1).value for r in range(2, find_table(ws, lang, 1).head)]
    evaluated = model.text("evaluated", lang, time=model.local_time(report["evaluated_at"], agreements))
    assert evaluated in top and model.text("mark_legend", lang) in top
    assert not model.notices(report, agreements, lang)  # neither report has anything to warn about
    assert all(ws.cell(r, 1).fill.fgColor.rgb != BANNER for r in range(1, ws.max_row + 1))


def test_definitions(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    report, _, lang, book = case
    ws = book.wb[model.text("definitions", lang)]
    shown = {ws.cell(r, 1).value: ws.cell(r, 3).value for r in range(2, ws.max_row + 1)}
    assert shown == model.definitions(report, lang)
    assert ws.cell(2, 3).alignment.wrap_text


def chart_series(data: bytes) -> list[list[tuple[str, str, int, int]]]:
    """Each chart's series values as (sheet, column letter, first row, last row)."""
    charts = []
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        for name in sorted(n for n in book.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)):
            refs = re.findall(r"<c:val><c:numRef><c:f>(.*?)</c:f>", book.read(name).decode())
            series = []
            for ref in refs:
                sheet, col, first, last = re.fullmatch(r"'?(.*?)'?!\$([A-Z]+)\$(\d+):\$[A-Z]+\$(\d+)", ref).groups()  # type: ignore[union-attr]
                series.append((sheet.replace("''", "'"), col, int(first), int(last)))
            charts.append(series)
    return charts


def test_charts_plot_each_process_trend(case: tuple[dict[str, Any], Agreements, Lang, Book]) -> None:
    """Native charts: per queue its service level against its target over 13 months and its demand
    in and out of opening hours per hour; per mailbox its cases within and past the lead time over
    13 months and its cases per hour. Each series is one process's rows of its sheet, all periods."""
    report, agreements, lang, book = case
    label = {(m.channel, m.key): m.label(lang) for m in (*model.PHONE, *model.MAIL)}
    expected: set[tuple[str, str, tuple[str, ...]]] = set()
    for q in agreements.queues:
        name = model.process_name(agreements, "queues", q)
        expected.add(
            (sheet_name("months", lang, "queues"), name, (label["queues", "service_level"], model.text("target", lang)))
        )
        expected.add(
            (sheet_name("hours", lang, "queues"), name, (label["queues", "offered"], label["queues", "out_of_hours"]))
        )
    for m in agreements.mailboxes:
        name = model.process_name(agreements, "mailboxes", m)
        within, breached = label["mailboxes", "within_target"], label["mailboxes", "breached"]
        expected.add((sheet_name("months", lang, "mailboxes"), name, (within, breached)))
        expected.add((sheet_name("hours", lang, "mailboxes"), name, (label["mailboxes", "received"],)))
    charts = chart_series(book.data)
    assert len(charts) == len(expected)
    found = set()
    for series in charts:
        sheets = {s for s, *_ in series}
        assert len(sheets) == 1
        ws = book.wb[sheets.pop()]
        head = find_table(ws, lang, 2).head
        view = "months" if ws.title.startswith(model.text("months", lang)) else "hours"
        processes = set()
        for _, _, first, last in series:
            assert last - first + 1 == len(model.periods(report, view))
            processes |= {ws.cell(r, 1).value for r in range(first, last + 1)}
        assert len(processes) == 1  # one process's rows
        headers = tuple(header(ws[f"{col}{head}"].value) for _, col, _, _ in series)
        found.add((ws.title, processes.pop(), headers))
    assert found == expected


def test_notices_are_banners(example_report: dict[str, Any], example_agreements: Agreements) -> None:
    """An empty month (and conflicting duplicates) warn on top of the summary, in a coloured merged row."""
    report = {**example_report, "no_events": True, "conflicting_duplicates": 3}
    for lang in model.LANGS:
        notices = model.notices(report, example_agreements, lang)
        assert len(notices) == 2
        ws = written(report, example_agreements, lang).wb[sheet_name("month", lang)]
        banners = {
            ws.cell(m.min_row, 1).value: m
            for m in sorted(ws.merged_cells.ranges, key=lambda m: m.min_row)
            if m.min_col == 1 and ws.cell(m.min_row, 1).fill.fgColor.rgb == BANNER
        }
        assert list(banners) == notices
        assert [m.min_row for m in banners.values()] == [2, 3]  # under the title, before the table
        assert all(m.max_col > 1 and ws.cell(m.min_row, 1).alignment.wrap_text for m in banners.values())
        assert model.text("no_events", lang, month=report["month"]) in banners


def test_writes_to_a_path(tmp_path: Path, example_report: dict[str, Any], example_agreements: Agreements) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(example_report, example_agreements, "sv", path)
    assert openpyxl.load_workbook(path).sheetnames[0] == "Sammanfattning"
