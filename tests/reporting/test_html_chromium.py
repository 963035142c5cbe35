"""The HTML report as a browser shows it: headless Chromium (offline) draws a page that is not
blank at desk and phone widths, holds every process and the summary's values in its text, and
prints to A4 pages."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dashboards.reporting import model
from dashboards.reporting.html import render_html
from schemas.agreements import Agreements
from tests.conftest import unavailable

TIMEOUT = 90  # seconds for one Chromium run
A4_POINTS = (595.28, 841.89)  # 210 x 297 mm in PDF points
OFFLINE = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: a page fetching anything shows the gap
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def page_file(
    tmp_path_factory: pytest.TempPathFactory, week_report: dict[str, Any], shipped_agreements: Agreements
) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(week_report, shipped_agreements, "sv"), encoding="utf-8")
    return path


def run(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess[bytes]:
    """One Chromium run over the page with its own profile directory, offline."""
    args = [chromium(), *OFFLINE, f"--user-data-dir={tmp / 'profile'}", *flags, page.as_uri()]
    done = subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


def screenshot(page: Path, tmp: Path, width: int, height: int) -> Image.Image:
    shot = tmp / f"shot-{width}.png"
    run(page, tmp, f"--screenshot={shot}", f"--window-size={width},{height}")
    return Image.open(shot).convert("RGB")


def assert_not_blank(image: Image.Image) -> None:
    """Text, tables and colour, not an empty or error page: many colours, and ink on a fair part."""
    raw = image.tobytes()  # RGB triples (getdata is deprecated in Pillow 12)
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    colours = len(set(pixels))
    ink = sum(1 for p in pixels if min(p) < 235) / len(pixels)
    assert colours > 200, f"only {colours} distinct colours"
    assert ink > 0.03, f"only {ink:.1%} of the pixels are not white"
    assert any(r > g + 40 for r, g, _ in pixels) and any(g > r + 20 for r, g, _ in pixels), "no red and green marks"


def test_a_desk_screen_shows_the_report(page_file: Path, tmp_path: Path) -> None:
    image = screenshot(page_file, tmp_path, 1280, 2000)
    assert image.size == (1280, 2000)
    assert_not_blank(image)


def test_a_phone_screen_shows_the_report(page_file: Path, tmp_path: Path) -> None:
    image = screenshot(page_file, tmp_path, 390, 1600)
    assert image.size == (390, 1600)
    assert_not_blank(image)


class _Text(HTMLParser):
    """The text a reader sees: everything outside <style> and <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("style", "head")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "head")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def summary_values(report: dict[str, Any], agreements: Agreements) -> Iterator[str]:
    """The summary's judged values as the model writes them."""
    for row in model.rows(report, agreements, "sv"):
        if row.view == "month" and row.target is not None:
            yield model.fmt(row.value, row.unit, "sv")


def test_the_rendered_text_holds_every_process_and_the_summary(
    page_file: Path, tmp_path: Path, week_report: dict[str, Any], shipped_agreements: Agreements
) -> None:
    dom = run(page_file, tmp_path, "--dump-dom").stdout.decode()
    reader = _Text()
    reader.feed(dom)
    text = " ".join(reader.parts)
    names = [q.name for q in shipped_agreements.queues.values()] + [
        m.name for m in shipped_agreements.mailboxes.values()
    ]
    assert [n for n in names if n not in text] == []
    values = list(summary_values(week_report, shipped_agreements))
    assert len(values) == 2 * len(shipped_agreements.queues) + len(shipped_agreements.mailboxes)
    assert [v for v in values if v not in text] == []


def test_it_prints_to_a4_pages(page_file: Path, tmp_path: Path) -> None:
    """A4 portrait, the wide per-day tables on A4 landscape pages of their own."""
    pdf = tmp_path / "report.pdf"
    run(page_file, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    boxes = [(float(w), float(h)) for w, h in re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)]
    assert len(boxes) > 1, "the report should span several pages"
    for width, height in boxes:
        assert sorted((width, height)) == pytest.approx(A4_POINTS, abs=2)
    portrait = [w < h for w, h in boxes]
    assert portrait[0] and portrait.count(True) > portrait.count(False) > 0
