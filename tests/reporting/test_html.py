"""The HTML report shows every number of the report exactly as the model writes it, and needs
nothing from the network: each number cell is checked against model.rows() through its data-*
attributes (exact JSON value) and its text (model.fmt)."""

from __future__ import annotations

import copy
import math
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import Any

import pytest

from dashboards.reporting import model
from dashboards.reporting.html import render_html
from schemas.agreements import Agreements

Key = tuple[str, str, str, str, str]
REPORTS = [("example_report", "example_agreements"), ("week_report", "shipped_agreements")]


@dataclass
class Cell:
    attrs: dict[str, str]
    text: str = ""

    @property
    def key(self) -> Key:
        a = self.attrs
        return (a["data-channel"], a["data-process"], a["data-view"], a["data-period"], a["data-measure"])


GEOMETRY = ("x", "y", "width", "height", "cx", "cy", "r", "x1", "x2", "y1", "y2")


class Page(HTMLParser):
    """What the tests read from the page: the cells by table row, the banners, the references,
    the style sheet, the charts' shapes and the text a reader sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[Cell]] = []
        self.alerts: list[str] = []
        self.refs: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.svg_shapes: list[tuple[str, dict[str, str]]] = []
        self.styles = ""
        self._text: list[str] = []
        self._cell: Cell | None = None
        self._alert: list[str] | None = None
        self._alert_depth = 0
        self._svg_depth = 0
        self._in = ""

    @property
    def text(self) -> str:
        return "".join(self._text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        self.refs += [(tag, k, v) for k, v in a.items() if k in ("src", "href", "srcset", "xlink:href", "action")]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = Cell(a)
            self.rows[-1].append(self._cell)
        if a.get("role") == "alert":
            self._alert = []
        if self._alert is not None:
            self._alert_depth += 1
        if tag == "svg":
            self._svg_depth += 1
        elif self._svg_depth:
            self.svg_shapes.append((tag, a))
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None
        if tag == "svg":
            self._svg_depth -= 1
        if self._alert is not None:
            self._alert_depth -= 1
            if not self._alert_depth:
                self.alerts.append("".join(self._alert))
                self._alert = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.styles += data
            return
        self._text.append(data)
        if self._cell is not None:
            self._cell.text += data
        if self._alert is not None:
            self._alert.append(data)

    def cells(self) -> list[Cell]:
        return [c for row in self.rows for c in row if "data-measure" in c.attrs]


def parse(html_text: str) -> Page:
    page = Page()
    page.feed(html_text)
    page.close()
    return page


def number(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def flag(met: bool | None) -> str:
    return "" if met is None else str(met).lower()


@pytest.fixture(params=REPORTS, ids=["example", "week"])
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Agreements]:
    report_name, agreements_name = request.param
    return request.getfixturevalue(report_name), request.getfixturevalue(agreements_name)


@pytest.mark.parametrize("lang", model.LANGS)
def test_every_number_of_the_report_has_its_exact_cell(
    case: tuple[dict[str, Any], Agreements], lang: model.Lang
) -> None:
    report, agreements = case
    assert_every_number_has_its_cell(report, agreements, lang, render_html(report, agreements, lang))


def assert_every_number_has_its_cell(
    report: dict[str, Any], agreements: Agreements, lang: model.Lang, html_text: str
) -> None:
    """Each model row has a cell with its exact value, text, target and mark (also used on the page
    `availability report` writes)."""
    cells: dict[Key, list[Cell]] = defaultdict(list)
    for cell in parse(html_text).cells():
        cells[cell.key].append(cell)
    rows = list(model.rows(report, agreements, lang))
    assert {r.view for r in rows} == set(model.VIEWS), "the fixture should exercise every view"
    for r in rows:
        found = cells.get((r.channel, r.process, r.view, r.period, r.measure))
        assert found, f"no cell for {r}"
        for cell in found:
            assert cell.attrs["data-value"] == number(r.value), r
            assert cell.text == model.fmt(r.value, r.unit, lang), r
            assert cell.attrs.get("data-target", "") == number(r.target), r
            assert cell.attrs.get("data-met", "") == flag(r.met), r


def test_no_cell_shows_a_number_the_model_does_not_have(case: tuple[dict[str, Any], Agreements]) -> None:
    report, agreements = case
    keys = {(r.channel, r.process, r.view, r.period, r.measure) for r in model.rows(report, agreements)}
    cells = parse(render_html(report, agreements, "sv")).cells()
    assert cells
    assert {c.key for c in cells} <= keys


def test_a_judged_value_carries_its_mark_and_colour(
    week_report: dict[str, Any], shipped_agreements: Agreements
) -> None:
    """✓/✗ in text beside a month's judged value (it survives black-and-white print), and the
    met/missed colour class on every judged cell; the per-day and per-period cells mark it by class."""
    page = parse(render_html(week_report, shipped_agreements, "sv"))
    judged_rows = 0
    for row in page.rows:
        judged = [c for c in row if c.attrs.get("data-met") and c.attrs.get("data-view") == "month"]
        marks = [c.text for c in row if "mark" in c.attrs.get("class", "").split()]
        if judged:
            judged_rows += 1
            assert marks == [model.MARK[c.attrs["data-met"] == "true"] for c in judged]
    assert judged_rows >= len(shipped_agreements.queues) + len(shipped_agreements.mailboxes)
    met_seen = set()
    for cell in page.cells():
        classes = cell.attrs["class"].split()
        met = cell.attrs.get("data-met", "")
        met_seen.add(met)
        assert ("met" in classes) == (met == "true") and ("missed" in classes) == (met == "false"), cell
        if cell.attrs["data-view"] != "month" and met:
            assert "marked" in classes, cell
    assert {"true", "false"} <= met_seen, "the week should both meet and miss a target"


@pytest.mark.parametrize("lang", model.LANGS)
def test_the_page_is_self_contained_and_printable(
    week_report: dict[str, Any], shipped_agreements: Agreements, lang: model.Lang
) -> None:
    text = render_html(week_report, shipped_agreements, lang)
    page = parse(text)
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert all(v.startswith("#") for _, _, v in page.refs), page.refs
    assert "url(" not in page.styles and "@import" not in page.styles
    assert not re.search(r"(https?:)?//[a-z0-9]", text, re.IGNORECASE)
    html_tag = next(a for t, a in page.tags if t == "html")
    assert html_tag["lang"] == lang
    metas = [a for t, a in page.tags if t == "meta"]
    assert {"charset": "utf-8"} in metas
    assert any(a.get("name") == "viewport" and "width=device-width" in a["content"] for a in metas)
    assert re.search(r"@page\s*\{[^}]*size:\s*A4", page.styles)
    assert "@media print" in page.styles and "@media (max-width:600px)" in page.styles
    # a wide table scrolls sideways in its own box on a narrow screen, not the page; the month's
    # measure tables (label, value, target, mark) fit a card one column wide
    tables = [(i, a) for i, (t, a) in enumerate(page.tags) if t == "table"]
    assert tables
    for i, a in tables:
        assert a.get("class") == "measures" or page.tags[i - 1][1].get("class") == "scroll", a


@pytest.mark.parametrize("lang", model.LANGS)
def test_the_page_names_every_process_the_month_and_the_definitions(
    week_report: dict[str, Any], shipped_agreements: Agreements, lang: model.Lang
) -> None:
    page = parse(render_html(week_report, shipped_agreements, lang))
    month = model.period_label("months", week_report["month"], lang)
    assert model.text("title", lang, month=month) in page.text
    assert model.local_time(week_report["evaluated_at"], shipped_agreements) in page.text
    names = [q.name for q in shipped_agreements.queues.values()] + [
        m.name for m in shipped_agreements.mailboxes.values()
    ]
    for name in names:
        assert name in page.text
    for meaning in model.definitions(week_report, lang).values():
        assert meaning in page.text
    # a chart per process and channel for the hours and for the 13 months, named for a screen reader
    charts = [a for t, a in page.tags if t == "svg"]
    assert len(charts) == 2 * (len(shipped_agreements.queues) + len(shipped_agreements.mailboxes))
    assert all(a.get("role") == "img" and a.get("aria-labelledby") for a in charts)


def test_the_charts_draw_inside_their_frames(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """Every coordinate a finite number within the chart's view box, no bar of negative height:
    an axis scaled from the data (a zero, an empty bucket, a ratio of 1) stays drawable."""
    page = parse(render_html(week_report, shipped_agreements, "sv"))
    boxes = {a["viewbox"] for t, a in page.tags if t == "svg"}
    assert len(boxes) == 1
    width, height = (float(n) for n in boxes.pop().split()[2:])
    shapes = [(t, k, float(v)) for t, a in page.svg_shapes for k, v in a.items() if k in GEOMETRY]
    assert {t for t, _, _ in shapes} >= {"rect", "line", "circle", "text"}
    for tag, key, value in shapes:
        assert math.isfinite(value), (tag, key)
        assert 0 <= value <= (width if key in ("x", "cx", "x1", "x2", "width") else height), (tag, key, value)
    points = [
        float(n) for t, a in page.svg_shapes if t == "polyline" for pair in a["points"].split() for n in pair.split(",")
    ]
    assert points and all(0 <= n <= width for n in points)


@pytest.mark.parametrize("lang", model.LANGS)
def test_an_empty_month_shows_its_notice_as_a_banner(
    example_report: dict[str, Any], example_agreements: Agreements, lang: model.Lang
) -> None:
    assert parse(render_html(example_report, example_agreements, lang)).alerts == []
    empty = copy.deepcopy(example_report) | {"no_events": True, "conflicting_duplicates": 2}
    notices = model.notices(empty, example_agreements, lang)
    assert len(notices) == 2
    alerts = parse(render_html(empty, example_agreements, lang)).alerts
    assert len(alerts) == 1
    assert all(n in alerts[0] for n in notices)


def test_text_from_the_agreements_is_escaped(example_report: dict[str, Any], example_agreements: Agreements) -> None:
    name = '<script>alert("x")</script> & "Kund"'
    queue = replace(example_agreements.queues["kundreskontra"], name=name)
    agreements = replace(example_agreements, queues={**example_agreements.queues, "kundreskontra": queue})
    text = render_html(example_report, agreements, "sv")
    assert "<script>" not in text
    assert name in parse(text).text
