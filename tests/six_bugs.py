"""Put the six bugs of issue #16 back, one at a time, and show that the suite fails on each
(docs/testing.md, "Six bugs the suite now catches").

Each bug is one exact edit of the code as it is now; an edit whose text is no longer found is
an error, so this cannot pass by mutating nothing. The edits go into a copy of the tree under
mutants/six-bugs/ (never the real files); the unit tests and the report's warehouse tests run
against the copy, unmutated first (they must pass), then with each bug (they must fail).

    .venv/bin/python tests/six_bugs.py        # exit 0 when every bug is caught
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants" / "six-bugs"
TESTS = [
    "tests/unit",
    "tests/warehouse/test_report.py",
    "tests/warehouse/test_report_boundaries.py",
    "tests/warehouse/test_comparisons.py",
]
# (what the bug does, file, the text now, the text with the bug)
BUGS = [
    (
        "a reply exactly at the target counts as neither within nor breached",
        "dashboards/kpi_sql.py",
        'IN_TIME = "lead_seconds <= target_seconds"',
        'IN_TIME = "lead_seconds < target_seconds"',
    ),
    (
        "an open case exactly at its target counts as breached",
        "dashboards/kpi_sql.py",
        'f"{age} > target_seconds"',
        'f"{age} >= target_seconds"',
    ),
    (
        "the p90's nearest rank is rounded down",
        "dashboards/kpi_sql.py",
        "[intDiv(9 * length({waits}) + 9, 10)]",
        "[intDiv(9 * length({waits}), 10)]",
    ),
    (
        "a transfer chain within one second is taken in id order, not from the queue the call is in",
        "stream_jobs/core/calls.py",
        "elif cls in _FROM_QUEUE and ev.data.queue == here:",
        "elif cls in _FROM_QUEUE:",
    ),
    (
        "a call.queued after a callback or flow-out is an internal transfer (the rule of spec v1)",
        "stream_jobs/core/calls.py",
        "self.contacts.append(_Open(queue, at, internal=self.answered))",
        "self.contacts.append(_Open(queue, at, internal=self.answered or bool(self.contacts)))",
    ),
    (
        "the last of several call.ended wins",
        "stream_jobs/core/calls.py",
        "            if self.ended_at is None:\n                self.ended_at = ev.time",
        "            if True:\n                self.ended_at = ev.time",
    ),
]


def prepare() -> Path:
    if WORK.exists():
        shutil.rmtree(WORK)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("availability", "schemas", "ingest", "stream_jobs", "dashboards", "tests", "docs", "deploy"):
        shutil.copytree(ROOT / folder, WORK / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, WORK / name)
    return WORK


def run(work: Path) -> tuple[bool, list[str]]:
    """Run the tests in the copy (its packages first on sys.path); (passed, failed test ids)."""
    env = os.environ | {
        "PYTHONPATH": str(work),
        "AVAILABILITY_SHARED": os.environ.get("AVAILABILITY_SHARED", str(ROOT.parent / "shared")),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "-rf"]
    done = subprocess.run([*cmd, *TESTS], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    failed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    return done.returncode == 0, failed


def main() -> int:
    work = prepare()
    started = time.monotonic()
    passed, failed = run(work)
    print(f"unmutated: {'passes' if passed else 'FAILS: ' + ', '.join(failed)} ({time.monotonic() - started:.0f} s)")
    if not passed:
        return 2
    missed = []
    for what, file, now, bug in BUGS:
        path = work / file
        original = path.read_text(encoding="utf-8")
        if original.count(now) != 1:
            print(f"ERROR: {file} no longer holds {now!r} exactly once: update this script")
            return 2
        path.write_text(original.replace(now, bug), encoding="utf-8")
        try:
            passed, failed = run(work)
        finally:
            path.write_text(original, encoding="utf-8")
        print(f"{'MISSED' if passed else 'caught'}: {what} ({len(failed)} tests fail)")
        for test in failed:
            print(f"    {test}")
        if passed:
            missed.append(what)
    print(f"{len(BUGS) - len(missed)} of {len(BUGS)} bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
