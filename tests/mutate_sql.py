"""Mutation testing of the report's SQL (docs/testing.md, "Mutation testing").

mutmut mutates Python functions; the report's numbers are made by SQL text in module-level
strings of dashboards/kpi_sql.py and dashboards/report.py, which no Python mutation tool
changes. This does it: each mutant changes one operator, number or literal inside one SQL
string (docstrings and the report's prose DEFINITIONS are left alone), in a copy of the
tree under mutants/sql/, and runs the report's warehouse tests against that copy in a fresh
process. A mutant is killed when they fail, survives when they pass.

    .venv/bin/python tests/mutate_sql.py              # all mutants, 2 at a time
    .venv/bin/python tests/mutate_sql.py --list       # only print them
    .venv/bin/python tests/mutate_sql.py --only 3,17  # rerun some

The copy first runs unmutated (it must pass) and with one known-bad mutant (it must fail),
so a broken setup cannot report a score.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import shutil
import subprocess
import sys
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants" / "sql"
FILES = ("dashboards/kpi_sql.py", "dashboards/report.py", "dashboards/provenance.py")
NOT_SQL = {
    "DEFINITIONS",
    "QUEUE_KEYS",
    "MAILBOX_KEYS",
    "QUEUE_VIEW_KEYS",
    "_RATIOS",
    "AFFECTED",
    "_ALL_PHONE",
    "EVERYTHING",
    "SETTINGS",
    "BUCKETS",
}  # module names whose strings are not SQL
TESTS = [
    "tests/warehouse/test_report.py",
    "tests/warehouse/test_report_boundaries.py",
    "tests/warehouse/test_report_v2.py",
    "tests/warehouse/test_report_views.py",
    "tests/warehouse/test_comparisons.py",
    "tests/warehouse/test_mutants_report.py",
    "tests/warehouse/test_cli.py::test_the_worked_example_gives_the_expected_report",
    "tests/warehouse/test_dashboard_queries.py",
]

# (pattern, replacement): one mutant per match. Words are matched whole, operators with spaces
# around them where the SQL writes them so.
OPERATORS: list[tuple[str, str]] = [
    (r"<=", "<"),
    (r"(?<![<>!])<(?![=>])", "<="),
    (r">=", ">"),
    (r"(?<![<>=-])>(?!=)", ">="),
    (r" = ", " != "),
    (r"!=", "="),
    (r"\bAND\b", "OR"),
    (r"\bOR\b", "AND"),
    (r"\bNOT ", ""),
    (r"(?<!NOT )\bIN \(", "NOT IN ("),
    (r" \+ ", " - "),
    (r" - ", " + "),
    (r" \* ", " / "),
    (r"\bmaxIf\(", "minIf("),
    (r"\bavgIf\(", "sumIf("),
    (r"'(answered|abandoned|callback|replied|closed)'", "'XX\\1'"),
    (r"(?<![\w.])\d+(?![\w.])", "+1"),  # an integer n -> n + 1
]


@dataclass(frozen=True)
class Mutant:
    n: int
    file: str
    line: int
    before: str
    after: str
    source: str  # the whole mutated file

    def describe(self) -> str:
        return f"#{self.n} {self.file}:{self.line}: {self.before.strip()!r} -> {self.after.strip()!r}"


def sql_string_tokens(source: str) -> list[tokenize.TokenInfo]:
    """The string literals of `source` that hold SQL: not docstrings, not in NOT_SQL assignments."""
    tree = ast.parse(source)
    skip_lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            skip_lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in NOT_SQL for t in node.targets):
            skip_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    # A string only used as a subscript key or default of a dict literal in a function is not SQL
    # either: only module-level assignments and the bodies of kpi_sql's functions are taken.
    sql_lines: set[int] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.FunctionDef):
            if isinstance(stmt, ast.FunctionDef) and not _returns_sql(stmt):
                continue
            sql_lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [t for t in tokens if t.type == tokenize.STRING and t.start[0] in sql_lines - skip_lines]


def _returns_sql(func: ast.FunctionDef) -> bool:
    """kpi_sql's functions build SQL (they return an f-string); the report's Python is not SQL."""
    return any(isinstance(n, ast.Return) and isinstance(n.value, ast.JoinedStr) for n in ast.walk(func))


def _outside_fields(text: str, is_f: bool) -> list[tuple[int, int]]:
    """Spans of `text` that are literal SQL, not an f-string's {replacement field}."""
    if not is_f:
        return [(0, len(text))]
    spans, i, start, depth = [], 0, 0, 0
    while i < len(text):
        if text.startswith("{{", i) or text.startswith("}}", i):
            i += 2
            continue
        if text[i] == "{":
            if depth == 0:
                spans.append((start, i))
            depth += 1
        elif text[i] == "}" and depth:
            depth -= 1
            if depth == 0:
                start = i + 1
        i += 1
    spans.append((start, len(text)))
    return spans


def mutants() -> list[Mutant]:
    found: list[Mutant] = []
    for file in FILES:
        source = (ROOT / file).read_text(encoding="utf-8")
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        for tok in sql_string_tokens(source):
            start = offsets[tok.start[0] - 1] + tok.start[1]
            text = tok.string
            prefix = text[: min(i for i in (text.find('"'), text.find("'")) if i >= 0)]
            for lo, hi in _outside_fields(text, "f" in prefix.lower()):
                for pattern, replacement in OPERATORS:
                    for m in re.finditer(pattern, text[lo:hi]):
                        if lo + m.start() < len(prefix) + 1:  # the opening quote and prefix
                            continue
                        new = str(int(m.group()) + 1) if replacement == "+1" else m.expand(replacement)
                        a, b = start + lo + m.start(), start + lo + m.end()
                        line = source.count("\n", 0, a) + 1
                        mutated = source[:a] + new + source[b:]
                        bol, eol = source.rfind("\n", 0, a) + 1, source.find("\n", b)
                        before, after = source[bol:eol], mutated[bol : eol + len(new) - (b - a)]
                        found.append(Mutant(len(found) + 1, file, line, before, after, mutated))
    return found


def prepare(job: int) -> Path:
    """mutants/sql/jobN: a copy of dashboards/ and tests/ (and pyproject.toml) to mutate in."""
    work = WORK / f"job{job}"
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("dashboards", "tests"):
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    return work


KILLED, PASSED = "killed", "passed"  # anything else is an error: a crash, a timeout, no tests


def run_tests(work: Path, file: str, source: str | None) -> tuple[str, float, str]:
    """Write `source` (None: the original) to `file` in the copy, run the tests; (verdict, seconds, tail).

    Only pytest's "tests failed" (exit 1) kills a mutant: a crash, a usage error or no tests
    collected is an error, so a broken setup cannot raise the score."""
    original = (ROOT / file).read_text(encoding="utf-8")
    (work / file).write_text(original if source is None else source, encoding="utf-8")
    missing = [t for t in TESTS if not (work / t.split("::")[0]).exists()]
    if missing:
        raise SystemExit(f"tests/mutate_sql.py: these tests are gone, update TESTS: {missing}")
    # CI: a missing ../shared stops the run (exit 4, an error) instead of skipping the worked example.
    env = os.environ | {
        "CI": "true",
        "AVAILABILITY_SHARED": os.environ.get("AVAILABILITY_SHARED", str(ROOT.parent / "shared")),
    }
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    started = time.monotonic()
    try:
        # cwd is the copy, so its dashboards/ comes first on sys.path (pytest puts the rootdir there).
        done = subprocess.run([*cmd, *TESTS], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "error (timeout)", time.monotonic() - started, ""
    finally:
        (work / file).write_text(original, encoding="utf-8")
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    verdict = {0: PASSED, 1: KILLED}.get(done.returncode, f"error (exit {done.returncode})")
    return verdict, time.monotonic() - started, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated mutant numbers")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    every = mutants()
    chosen = [m for m in every if not args.only or str(m.n) in args.only.split(",")]
    if args.list:
        for m in chosen:
            print(m.describe())
        print(f"{len(chosen)} mutants")
        return 0
    works = [prepare(j) for j in range(args.jobs)]
    for work in works:  # every copy must pass unmutated and kill a known-bad mutant
        verdict, seconds, tail = run_tests(work, FILES[0], None)
        print(f"{work.name} unmutated: {verdict} ({seconds:.0f} s)", flush=True)
        broken = (ROOT / "dashboards/kpi_sql.py").read_text(encoding="utf-8") + "\nREPLIED = \"end = 'never'\"\n"
        bad = run_tests(work, "dashboards/kpi_sql.py", broken)[0]
        print(f"{work.name} a known-bad mutant: {bad}", flush=True)
        if verdict != PASSED or bad != KILLED:
            print(tail)
            return 2

    free = list(works)

    def one(m: Mutant) -> tuple[Mutant, str, float]:
        work = free.pop()
        try:
            verdict, secs, _ = run_tests(work, m.file, m.source)
        finally:
            free.append(work)
        return m, verdict, secs

    survived: list[Mutant] = []
    errors: list[Mutant] = []
    per_file: dict[str, list[int]] = {f: [0, 0] for f in FILES}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for m, verdict, secs in pool.map(one, chosen):
            per_file[m.file][1] += 1
            per_file[m.file][0] += verdict == KILLED
            shown = {PASSED: "SURVIVED", KILLED: "killed  "}.get(verdict, verdict.upper())
            print(f"{shown} {m.describe()} ({secs:.0f} s)", flush=True)
            (survived if verdict == PASSED else errors if verdict != KILLED else []).append(m)
    for file, (killed, total) in per_file.items():
        print(f"{file}: {killed}/{total} killed")
    print(f"survived: {' '.join(str(m.n) for m in survived) or 'none'}")
    if errors:
        print(f"errors (neither killed nor survived, run again with --only): {' '.join(str(m.n) for m in errors)}")
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main())
