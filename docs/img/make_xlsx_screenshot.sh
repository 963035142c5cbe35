#!/usr/bin/env bash
# The summary sheet of a report workbook as a PNG for the docs, drawn by LibreOffice as a reader
# would see it in a spreadsheet program.
#
#   docs/img/make_xlsx_screenshot.sh WORKBOOK.xlsx [OUT.png]   (default docs/img/report-summary-sheet.png)
#
# Write the workbook first, e.g. from a simulated month's JSON report:
#   .venv/bin/python -c 'import json, pathlib; from dashboards.reporting.xlsx import write_xlsx;
#     from schemas.agreements import load_agreements;
#     write_xlsx(json.load(open("report-2026-05.json")), load_agreements(), "sv", pathlib.Path("r.xlsx"))'
#
# Needs soffice with Calc and the graphic export filter (Debian: libreoffice-calc-nogui and
# libreoffice-draw-nogui, which holds the PNG filter), and Pillow (the dev extra) to crop the page.
#
# LibreOffice draws a sheet's first printed page at 96 dpi. The workbook prints the summary one A3
# page wide, too small to read on screen, so a copy gets a 34x44 inch page (Excel's paper size 26)
# before it is drawn; the page is then cropped to the sheet. Swedish number formatting (1 217,
# 86,8 %) comes from the locale given to LibreOffice.
set -euo pipefail

workbook=${1:?usage: $0 WORKBOOK.xlsx [OUT.png]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/report-summary-sheet.png}
python=${PYTHON:-$here/../../.venv/bin/python}
command -v soffice >/dev/null || { echo "soffice (LibreOffice) is not installed" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A copy of the workbook whose first sheet (the summary) prints on one large page.
"$python" - "$workbook" "$work/summary.xlsx" <<'EOF'
import re
import sys
import zipfile
from xml.etree import ElementTree

src, dst = sys.argv[1], sys.argv[2]
main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
rel = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
with zipfile.ZipFile(src) as book:
    first = ElementTree.fromstring(book.read("xl/workbook.xml")).find(f"{main}sheets/{main}sheet")
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels if r.get("Id") == first.get(rel))
    sheet = "xl/" + target.removeprefix("/xl/")
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in book.infolist():
            data = book.read(item)
            if item.filename == sheet:
                xml, found = re.subn(r'paperSize="\d+"', 'paperSize="26"', data.decode())
                if not found:
                    sys.exit(f"{src}: the first sheet has no page setup to enlarge")
                data = xml.encode()
            copy.writestr(item, data)
EOF

if ! LC_ALL=sv_SE.UTF-8 LANG=sv_SE.UTF-8 timeout 180 soffice -env:UserInstallation="file://$work/profile" --headless \
    --norestore --convert-to png --outdir "$work" "$work/summary.xlsx" >"$work/soffice.log" 2>&1 ||
    [ ! -s "$work/summary.png" ]; then
    cat "$work/soffice.log" >&2
    echo "LibreOffice drew no PNG (is libreoffice-draw-nogui, the graphic export filter, installed?)" >&2
    exit 1
fi

# The page cropped to what is drawn on it, with a white margin.
"$python" - "$work/summary.png" "$out" <<'EOF'
import sys

from PIL import Image, ImageOps

page = Image.open(sys.argv[1]).convert("RGB")
left, top, right, bottom = ImageOps.invert(page.convert("L")).getbbox()
margin = 16
# The left 1900 px: what a screen shows on opening (process names, the phone promises); the whole
# 38-column row would be unreadable at the README's width.
right = min(right + margin, left - margin + 1900)
page.crop((max(left - margin, 0), max(top - margin, 0), right, bottom + margin)).save(sys.argv[2], optimize=True)
print(f"{sys.argv[2]}: {right - max(left - margin, 0)}x{bottom - top + 2 * margin}")
EOF
