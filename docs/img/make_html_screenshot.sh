#!/usr/bin/env bash
# The HTML report as PNGs for the docs, drawn by headless Chromium as a reader's browser would:
# the top of the page at 1280 px, and a phone's width (390 px).
#
#   docs/img/make_html_screenshot.sh PAGE.html [OUT_DIR]   (default docs/img: report-html.png, report-html-phone.png)
#
# Write the page first, e.g. `availability report --month 2026-05 --warehouse availability-demo/warehouse
# --out report.html` after `availability demo --month 2026-05`. Needs Debian's chromium, and Pillow (the dev
# extra) to reduce the PNGs to 256 colours (no visible loss, a fifth of the size). The browser runs offline.
set -euo pipefail

page=${1:?usage: $0 PAGE.html [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here}
python=${PYTHON:-$here/../../.venv/bin/python}
command -v chromium >/dev/null || { echo "chromium is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"

shoot() {  # WIDTHxHEIGHT FILE
    timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" \
        --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars --window-size="$1" \
        --screenshot="$2" "$url" >"$work/chromium.log" 2>&1 || { cat "$work/chromium.log" >&2; exit 1; }
}
shoot 1280,2000 "$work/report-html.png"
shoot 390,1500 "$work/report-html-phone.png"

"$python" - "$work" "$out" <<'PY'
import sys
from pathlib import Path

from PIL import Image

work, out = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("report-html.png", "report-html-phone.png"):
    image = Image.open(work / name).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(out / name, optimize=True)
    print(f"{out / name}: {image.width}x{image.height}")
PY
