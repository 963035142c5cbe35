"""The terminal table: it fits the width it is given (80 columns included), it names processes
by their display names, writes every value as the model does, keeps met/missed readable without
colour, and shows local times. Last, the same in a real 80x60 terminal (tmux)."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from dashboards.reporting import model
from dashboards.reporting.table import EXTRA_LEVELS, MAIL_SECTIONS, PHONE_SECTIONS, WORDS, render_table
from schemas.agreements import Agreements, level_key
from tests.conftest import unavailable

REPORTS = [("example_report", "example_agreements"), ("week_report", "shipped_agreements")]
WIDTHS = (80, 100, 200)
ANSI = re.compile(r"\x1b\[")
BORDERS = "│╭╮╰╯─"


def rendered(
    report: dict[str, Any],
    agreements: Agreements,
    lang: model.Lang,
    width: int | None,
    stream: io.StringIO | None = None,
) -> str:
    out = stream or io.StringIO()
    render_table(report, agreements, lang, out, width)
    return out.getvalue()


def squash(text: str) -> str:
    """The words in order, without the panels' borders and the layout's spaces."""
    return " ".join(text.translate({ord(c): " " for c in BORDERS}).split())


def cells(line: str) -> list[str]:
    """A table line's cells: columns are at least two spaces apart; within a cell one space or
    a no-break space (`84,7 %`)."""
    return re.split(r" {2,}", line.strip())


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(params=REPORTS, ids=["example", "week"])
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Agreements]:
    report_name, agreements_name = request.param
    return request.getfixturevalue(report_name), request.getfixturevalue(agreements_name)


@pytest.mark.parametrize("lang", model.LANGS)
@pytest.mark.parametrize("width", WIDTHS)
def test_fits_the_width(case: tuple[dict[str, Any], Agreements], width: int, lang: model.Lang) -> None:
    report, agreements = case
    lines = rendered(report, agreements, lang, width).splitlines()
    assert lines
    assert max(cell_len(line) for line in lines) <= width


def test_default_width_is_the_terminals(
    week_report: dict[str, Any], shipped_agreements: Agreements, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No width given: COLUMNS (what shutil.get_terminal_size reads first) decides."""
    monkeypatch.setenv("COLUMNS", "80")
    lines = rendered(week_report, shipped_agreements, "sv", None).splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert any(cell_len(line) == 80 for line in lines)  # the section rules span the width


@pytest.mark.parametrize("lang", model.LANGS)
@pytest.mark.parametrize("width", WIDTHS)
def test_display_names_not_ids(case: tuple[dict[str, Any], Agreements], width: int, lang: model.Lang) -> None:
    """Every display name, wrapped or not; at 200 columns each on one line; no bare id."""
    report, agreements = case
    out = rendered(report, agreements, lang, width)
    words = set(squash(out).split())
    names = [model.process_name(agreements, "queues", q) for q in agreements.queues]
    names += [model.process_name(agreements, "mailboxes", m) for m in agreements.mailboxes]
    for name in names:
        assert set(name.split()) <= words, name
        if width == max(WIDTHS):
            assert name in out
    shown = {name.lower() for name in names}
    for process in (*agreements.queues, *agreements.mailboxes):
        if process not in shown:
            assert process not in out.lower(), process


@pytest.mark.parametrize("width", WIDTHS)
def test_plain_text_when_not_a_terminal(
    week_report: dict[str, Any], shipped_agreements: Agreements, width: int
) -> None:
    """A pipe or a file: no escape codes, and the marks say met/missed on their own."""
    out = rendered(week_report, shipped_agreements, "sv", width)
    assert "\x1b" not in out
    assert model.MARK[True] in out and model.MARK[False] in out
    assert model.TEXT["mark_legend"]["sv"] in squash(out)


def test_colour_on_a_terminal(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """A terminal gets colour as well as the marks, and the escapes take no columns."""
    out = rendered(week_report, shipped_agreements, "en", 80, Terminal())
    assert ANSI.search(out)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert model.MARK[True] in plain and model.MARK[False] in plain
    assert max(cell_len(line) for line in plain.splitlines()) <= 80


@pytest.mark.parametrize("lang", model.LANGS)
def test_month_values_of_every_process(
    week_report: dict[str, Any], shipped_agreements: Agreements, lang: model.Lang
) -> None:
    """At 200 columns a queue's promises are one line: its name, service level with its mark,
    target and limit, answer rate with its mark and target. At 80 every month value still appears,
    written by the model."""
    agreements = shipped_agreements
    wide = rendered(week_report, agreements, lang, 200).splitlines()
    narrow = rendered(week_report, agreements, lang, 80)
    for q in agreements.queues:
        values = week_report["queues"][q]
        expected = [model.process_name(agreements, "queues", q)]
        for key in ("service_level", "answer_rate"):
            t = model.target(agreements, "queues", q, key)
            assert t is not None
            mark = model.MARK[model.met(agreements, "queues", q, key, values)]
            expected.append(f"{model.fmt(values[key], 'ratio', lang)} {mark}")
            expected.append(model.fmt(t.value, t.unit, lang))
            if key == "service_level":
                expected.append(f"≤ {level_key(agreements.queues[q].service_level_seconds)} s")
        assert any(cells(line)[: len(expected)] == expected for line in wide), (q, expected)
        for m in model.phone_measures(agreements, q):
            assert model.fmt(model.value_of(values, m.key), m.unit, lang) in narrow, (q, m.key)
    for mb in agreements.mailboxes:
        values = week_report["mailboxes"][mb]
        for m in model.mail_measures():
            assert model.fmt(values[m.key], m.unit, lang) in narrow, (mb, m.key)
        ref = model.reference(agreements, "mailboxes", mb, "median_lead_seconds")
        assert ref is not None
        assert model.fmt(ref.value, ref.unit, lang) in narrow


def test_headers_are_the_models_labels(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """On a wide terminal a header is the model's label on one line ("Avslutade utan svar",
    "Closed without reply"); on a narrow one its words, wrapped."""
    closed = next(m for m in model.MAIL if m.key == "closed_without_reply")
    for lang in model.LANGS:
        assert closed.label(lang) in rendered(week_report, shipped_agreements, lang, 200)
        assert set(closed.label(lang).split()) <= set(rendered(week_report, shipped_agreements, lang, 80).split())


def test_sections_show_every_measure() -> None:
    """Each measure of the model has its column: a new measure fails here until it is placed."""
    phone = {k for _, groups in PHONE_SECTIONS for keys in groups for k in keys}
    mail = {k for _, groups in MAIL_SECTIONS for keys in groups for k in keys}
    assert phone == {m.key for m in model.PHONE} | {EXTRA_LEVELS}
    assert mail == {m.key for m in model.MAIL}


Parts = dict[tuple[str, str], list[list[tuple[str, ...]]]]


def matrices(out: str, lang: model.Lang) -> Parts:
    """The view matrices of a rendering, in order: (section rule, title) -> its parts (one per
    table it was split into), each the header cells (`Period`, `1`, `2`, …) then the rows' cells."""
    found: Parts = {}
    section = ""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("─") and " · " in line:
            section = line.strip("─ ")
        elif i + 2 < len(lines) and cells(lines[i + 1])[0] == model.TEXT["period"][lang] and "─" in lines[i + 2]:
            part = [tuple(cells(lines[i + 1]))]
            for row in lines[i + 3 :]:
                if not row.strip() or re.match(r"\d+ = ", row):
                    break
                part.append(tuple(cells(row)))
            found.setdefault((section, line.strip()), []).append(part)
    return found


def section(lang: model.Lang, channel: str, view: str) -> str:
    return f"{model.TEXT[channel][lang]} · {model.TEXT[view][lang]}"


def hours_with_data(report: dict[str, Any], agreements: Agreements, channel: model.Channel) -> list[str]:
    ids = agreements.queues if channel == "queues" else agreements.mailboxes
    return [h for h in model.periods(report, "hours") if any(model.entry(report, channel, p, "hours", h) for p in ids)]


def expected_matrices(
    report: dict[str, Any], agreements: Agreements, lang: model.Lang
) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """Every matrix the terminal shows, in order, as the model writes it: per period (row), per
    process (column) the value with the model's mark (model.met on the period's entry), or – for
    no data. Phone views first (service level per day; service level and out-of-hours calls per
    hour with data; service level and answer rate over 13 months), then mail views (cases past
    lead time per day, cases received per hour with data, cases past lead time over 13 months)."""

    def judged(channel: model.Channel, key: str, process: str, view: str, period: str) -> str:
        values = model.entry(report, channel, process, view, period)
        unit = next(m.unit for m in (*model.PHONE, *model.MAIL) if m.channel == channel and m.key == key)
        mark = model.MARK[model.met(agreements, channel, process, key, values)]
        return f"{model.fmt(model.value_of(values or {}, key), unit, lang)} {mark}".rstrip()

    def matrix(channel: model.Channel, key: str, view: str, periods: list[str]) -> list[tuple[str, ...]]:
        ids = agreements.queues if channel == "queues" else agreements.mailboxes
        return [(model.period_label(view, t, lang), *(judged(channel, key, p, view, t) for p in ids)) for t in periods]

    def label(channel: model.Channel, key: str) -> str:
        return next(m.label(lang) for m in (*model.PHONE, *model.MAIL) if m.channel == channel and m.key == key)

    wanted: list[tuple[model.Channel, str, str, str, list[str]]] = []
    if agreements.queues:
        wanted += [
            ("queues", "phone", "service_level", "days", model.periods(report, "days")),
            ("queues", "phone", "service_level", "hours", hours_with_data(report, agreements, "queues")),
            ("queues", "phone", "out_of_hours", "hours", hours_with_data(report, agreements, "queues")),
            ("queues", "phone", "service_level", "months", model.periods(report, "months")),
            ("queues", "phone", "answer_rate", "months", model.periods(report, "months")),
        ]
    if agreements.mailboxes:
        wanted += [
            ("mailboxes", "mail", "breached", "days", model.periods(report, "days")),
            ("mailboxes", "mail", "received", "hours", hours_with_data(report, agreements, "mailboxes")),
            ("mailboxes", "mail", "breached", "months", model.periods(report, "months")),
        ]
    return {
        (section(lang, word, view), label(channel, key)): matrix(channel, key, view, periods)
        for channel, word, key, view, periods in wanted
        if periods
    }


@pytest.mark.parametrize("lang", model.LANGS)
@pytest.mark.parametrize("width", WIDTHS)
def test_day_hour_and_month_matrices(case: tuple[dict[str, Any], Agreements], width: int, lang: model.Lang) -> None:
    """Each matrix, in its section and in order, split into parts that fit the width: every part's
    columns are numbered processes, together each process once, and each cell is the value the
    model writes with the model's mark (service level, answer rate, past lead time) or without
    (out-of-hours calls, cases received), or – without data. At 200 columns each is one table."""
    report, agreements = case
    expected = expected_matrices(report, agreements, lang)
    found = matrices(rendered(report, agreements, lang, width), lang)
    assert list(found) == list(expected)
    for name, rows in expected.items():
        parts = found[name]
        numbers = [int(n) for part in parts for n in part[0][1:]]
        assert sorted(numbers) == list(range(1, len(rows[0]))), name
        if width == max(WIDTHS):
            assert len(parts) == 1, name
        for part in parts:
            columns = [0, *(int(n) for n in part[0][1:])]
            assert part[1:] == [tuple(row[c] for c in columns) for row in rows], (name, part[0])


def test_matrices_week_has_every_view(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """The simulated week fills each view: no matrix is left out for lack of data, and the marks
    appear in the trend (answer rate, mail past lead time) as well."""
    expected = expected_matrices(week_report, shipped_agreements, "en")
    assert len(expected) == 8
    months = section("en", "mail", "months"), "Past lead time"
    assert any(model.MARK[True] in c or model.MARK[False] in c for row in expected[months] for c in row[1:])
    rates = section("en", "phone", "months"), "Answer rate"
    assert any(model.MARK[False] in c for row in expected[rates] for c in row[1:])


@pytest.mark.parametrize("lang", model.LANGS)
def test_mailbox_without_cases_is_not_met(
    week_report: dict[str, Any], shipped_agreements: Agreements, lang: model.Lang
) -> None:
    """A mailbox that received no case kept no promise: its 0 cases past lead time show no ✓ (nor
    ✗), in the summary and in the matrices, while the other mailboxes keep their marks."""
    agreements = shipped_agreements
    report = copy.deepcopy(week_report)
    mb = next(iter(agreements.mailboxes))
    month = report["month"]
    day = next(iter(report["views"]["days"]["mailboxes"][mb]))
    emptied = [
        report["mailboxes"][mb],
        report["views"]["months"]["mailboxes"][mb][month],
        report["views"]["days"]["mailboxes"][mb][day],
    ]
    for values in emptied:
        values.update(received=0, breached=0)
        assert model.met(agreements, "mailboxes", mb, "breached", values) is None
    out = rendered(report, agreements, lang, 200)
    values = report["mailboxes"][mb]
    t = model.target(agreements, "mailboxes", mb, "breached")
    assert t is not None
    lines = out.splitlines()
    lead = lines[[line.strip() for line in lines].index(WORDS["lead_time"][lang]) :]  # the lead-time table on
    row = next(cells(line) for line in lead if cells(line)[0] == model.process_name(agreements, "mailboxes", mb))
    assert row[:4] == [row[0], model.fmt(values["within_target"], "count", lang), "0", model.fmt(t.value, t.unit, lang)]
    assert not {model.MARK[True], model.MARK[False]} & set("".join(row))
    found = matrices(out, lang)
    expected = expected_matrices(report, agreements, lang)
    label = next(m.label(lang) for m in model.MAIL if m.key == "breached")
    for view, period in (("days", day), ("months", month)):
        name = section(lang, "mail", view), label
        (part,) = found[name]
        assert part[1:] == expected[name]
        row_of = next(r for r in part[1:] if r[0] == model.period_label(view, period, lang))
        assert row_of[1] == "0", (view, row_of)  # column 1: the first mailbox
    other = next(p for p in agreements.mailboxes if p != mb)
    assert model.met(agreements, "mailboxes", other, "breached", report["mailboxes"][other]) is not None


def test_matrix_legend_numbers_the_processes(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """Under each part of a split matrix, its numbers: `1 = <display name>` for every queue."""
    out = squash(rendered(week_report, shipped_agreements, "sv", 80))
    for n, q in enumerate(shipped_agreements.queues, 1):
        assert f"{n} = {model.process_name(shipped_agreements, 'queues', q)}" in out


@pytest.mark.parametrize("lang", model.LANGS)
def test_notices_come_first(week_report: dict[str, Any], shipped_agreements: Agreements, lang: model.Lang) -> None:
    report = copy.deepcopy(week_report)
    report["no_events"] = True
    report["conflicting_duplicates"] = 3
    wanted = model.notices(report, shipped_agreements, lang)
    assert len(wanted) == 2
    for width in WIDTHS:
        out = rendered(report, shipped_agreements, lang, width)
        assert max(cell_len(line) for line in out.splitlines()) <= width
        flat = squash(out)
        first_table = flat.index(model.TEXT["phone"][lang])
        for notice in wanted:
            assert 0 <= flat.index(" ".join(notice.split())) < first_table
    assert not model.notices(week_report, shipped_agreements, lang)


@pytest.mark.parametrize("lang", model.LANGS)
def test_local_evaluation_time(case: tuple[dict[str, Any], Agreements], lang: model.Lang) -> None:
    report, agreements = case
    out = rendered(report, agreements, lang, 80)
    local = model.local_time(report["evaluated_at"], agreements)
    assert model.text("evaluated", lang, time=local) in squash(out)
    assert report["evaluated_at"] not in out
    assert report["evaluated_at"][:16].replace("T", " ") != local  # Stockholm is never UTC


# -- a real terminal --------------------------------------------------------------------------------

PANE = (80, 60)
ROOT = Path(__file__).resolve().parents[2]  # the project, importable from the pane
RENDER = (
    "import json, sys\n"
    "from dashboards.reporting.table import render_table\n"
    "from schemas.agreements import load_agreements\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    report = json.load(f)\n"
    "render_table(report, load_agreements(), 'sv', sys.stdout)\n"
    "print(sys.argv[2])\n"
)


def test_real_terminal_80_columns(week_report: dict[str, Any], shipped_agreements: Agreements, tmp_path: Path) -> None:
    """Rendered by a process whose stdout is an 80x60 tmux pane (width detected, not given): the
    captured screen and history have no line wider than the pane, and keep names and marks."""
    tmux = shutil.which("tmux")
    if tmux is None:
        unavailable("tmux is not installed (needed to render into a real 80-column terminal)")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(week_report, ensure_ascii=False), encoding="utf-8")
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g history-limit 100000\nset -g remain-on-exit on\n", encoding="utf-8")
    done = f"RENDERED-{uuid.uuid4().hex}"
    command = " ".join(
        shlex.quote(a) for a in ("env", "-u", "COLUMNS", "-u", "LINES", "PYTHONIOENCODING=utf-8",
                                 sys.executable, "-c", RENDER, str(path), done)
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    socket = f"table-test-{uuid.uuid4().hex[:12]}"
    base = [tmux, "-u", "-L", socket, "-f", str(conf)]
    width, height = PANE
    socket_path: str | None = None
    try:
        subprocess.run(
            [*base, "new-session", "-d", "-x", str(width), "-y", str(height), "-c", str(ROOT), command],
            check=True, env=env, timeout=30, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            captured = subprocess.run(
                [*base, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"],
                check=True, env=env, timeout=30, capture_output=True, text=True, encoding="utf-8",
            ).stdout  # fmt: skip
            if done in captured or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        size, socket_path = subprocess.run(
            [*base, "display-message", "-p", "#{pane_width}x#{pane_height} #{socket_path}"],
            check=True, env=env, timeout=30, capture_output=True, text=True,
        ).stdout.strip().split(" ", 1)  # fmt: skip
    finally:
        subprocess.run([*base, "kill-server"], env=env, timeout=30, capture_output=True)
        if socket_path:  # tmux 3.3 leaves its socket file behind
            Path(socket_path).unlink(missing_ok=True)
    assert done in captured, captured[-2000:]
    assert size == f"{width}x{height}"
    lines = captured[: captured.index(done)].splitlines()
    assert len(lines) > height  # the history is there, not only the last screen
    assert "Traceback" not in captured
    assert max(cell_len(line) for line in lines) <= width
    assert any(cell_len(line.rstrip()) == width for line in lines)  # the width was detected as the pane's
    assert model.MARK[True] in captured and model.MARK[False] in captured
    first = model.process_name(shipped_agreements, "queues", next(iter(shipped_agreements.queues)))
    assert first.split()[0] in captured
    assert set(first.split()) <= set(squash(captured).split())
