"""The workbook in a real spreadsheet program: LibreOffice (headless) opens it, saves it again as
xlsx with the same numbers, strings, merges and charts, and shows the summary's values as meant
(percentages, m:ss, hours, whole counts), read from its CSV export of the cells as shown."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dashboards.reporting.xlsx import sheet_name, write_xlsx
from schemas.agreements import Agreements
from tests.conftest import importorfail, unavailable
from tests.reporting.test_xlsx import find_table, raw_numbers

openpyxl = importorfail("openpyxl", "a dev dependency: pip install -e '.[dev]'")

TIMEOUT = 120  # seconds for one LibreOffice run
# Every sheet to its own CSV (token 12: -1), UTF-8 (76), cells as shown (token 9: true).
CSV_AS_SHOWN = "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,true,false,false,-1"


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        unavailable("LibreOffice is not installed (Debian: apt-get install libreoffice-calc-nogui)")
    return found


def convert(source: Path, to: str, outdir: Path, profile: Path) -> None:
    """One headless LibreOffice run with its own profile (parallel runs do not share one), in
    American English so the cells are shown the same on every machine."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}  # UTF-8 file names, en-US formats
    args = [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore"]
    args += ["--convert-to", to, "--outdir", str(outdir), str(source)]
    done = subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-2000:]


@pytest.fixture(scope="module")
def converted(
    tmp_path_factory: pytest.TempPathFactory, week_report: dict[str, Any], shipped_agreements: Agreements
) -> dict[str, Path]:
    """The simulated week's workbook (Swedish), and what LibreOffice made of it."""
    soffice()
    tmp = tmp_path_factory.mktemp("libreoffice")
    original = tmp / "report.xlsx"
    write_xlsx(week_report, shipped_agreements, "sv", original)
    convert(original, "xlsx:Calc MS Excel 2007 XML", tmp / "xlsx", tmp / "profile")
    convert(original, CSV_AS_SHOWN, tmp / "csv", tmp / "profile")
    return {"original": original, "xlsx": tmp / "xlsx" / "report.xlsx", "csv": tmp / "csv"}


def test_saved_again_with_the_same_content(converted: dict[str, Path]) -> None:
    """Every sheet keeps every number at its cell (to Excel's 15 significant digits, which LibreOffice
    writes); the summary keeps its strings and merged cells; the charts survive."""
    ours, theirs = converted["original"].read_bytes(), converted["xlsx"].read_bytes()
    mine, saved = raw_numbers(ours), raw_numbers(theirs)
    assert list(saved) == list(mine)
    for sheet, cells in mine.items():
        assert set(saved[sheet]) == set(cells), sheet
        for at, text in cells.items():
            assert float(saved[sheet][at]) == pytest.approx(float(text), rel=1e-14), (sheet, at)
    summary = sheet_name("month", "sv")
    a = openpyxl.load_workbook(io.BytesIO(ours))[summary]
    b = openpyxl.load_workbook(io.BytesIO(theirs))[summary]
    assert (a.max_row, a.max_column) == (b.max_row, b.max_column)
    for row_a, row_b in zip(a.iter_rows(), b.iter_rows(), strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x.value, str):
                assert y.value == x.value, x.coordinate
    assert {str(m) for m in b.merged_cells.ranges} == {str(m) for m in a.merged_cells.ranges}
    assert a.auto_filter.ref == b.auto_filter.ref

    def charts(data: bytes) -> int:
        return sum(
            bool(re.fullmatch(r"xl/charts/chart\d+\.xml", n)) for n in zipfile.ZipFile(io.BytesIO(data)).namelist()
        )

    assert charts(theirs) == charts(ours) > 0


def shown_sheet(converted: dict[str, Path], sheet: str) -> list[list[str]]:
    path = converted["csv"] / f"report-{sheet}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_every_sheet_exported(converted: dict[str, Path]) -> None:
    book = openpyxl.load_workbook(converted["original"])
    for ws in book.worksheets:
        assert len(shown_sheet(converted, ws.title)) == ws.max_row, ws.title


def test_the_summary_shows_its_values(converted: dict[str, Path]) -> None:
    """Each cell of the summary's table, as LibreOffice shows it, is the workbook's value in its
    format: a percentage with one decimal, m:ss, hours with one decimal, a whole count."""
    data = converted["original"].read_bytes()
    ws = openpyxl.load_workbook(io.BytesIO(data))[sheet_name("month", "sv")]
    numbers = raw_numbers(data)[ws.title]
    shown = shown_sheet(converted, ws.title)
    table = find_table(ws, "sv", keys=1)
    seen: set[str] = set()
    for r in range(table.head, ws.max_row + 1):
        for c in range(1, ws.max_column + 1):
            text, cell = shown[r - 1][c - 1], ws.cell(r, c)
            if (r, c) not in numbers:
                assert text == (cell.value or ""), cell.coordinate
                continue
            value, fmt = float(numbers[(r, c)]), cell.number_format
            seen.add(fmt)
            if fmt == "#,##0":
                assert int(text.replace(",", "")) == value, cell.coordinate
            elif fmt == "0.0 %":
                assert re.fullmatch(r"\d+\.\d %", text) and abs(float(text[:-2]) / 100 - value) <= 5e-4 + 1e-12
            elif fmt == "[m]:ss":
                minutes, seconds = (int(p) for p in text.split(":"))
                assert abs(minutes * 60 + seconds - value * 86_400) <= 0.5 + 1e-9, (cell.coordinate, text)
            elif fmt == '0.0 "h"':
                assert re.fullmatch(r"\d+\.\d h", text) and abs(float(text[:-2]) - value) <= 0.05 + 1e-12
            else:  # a service-level threshold, in seconds as agreed
                assert text == f"≤ {value:g} s", (cell.coordinate, fmt)
    assert seen >= {"#,##0", "0.0 %", "[m]:ss", '0.0 "h"'}
    assert [row[0] for row in shown[table.head :]] == [row[0] for row in table.rows]  # every process
