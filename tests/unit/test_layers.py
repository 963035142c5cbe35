"""The house plan is checked, not hoped for (docs/architecture.md): `lint-imports` keeps the
layers and the pure cores, and fails when an import climbs. CI runs the same command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("availability", "dashboards", "stream_jobs", "ingest", "schemas")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        unavailable(f"import-linter is not installed at {LINT_IMPORTS} (pip install -e '.[dev]')")
    env = os.environ | {"PYTHONPATH": str(root)}  # the copy's packages, not the installed ones
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_code(tmp: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__", "generated"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def climb(module: Path, line: str) -> None:
    text = module.read_text(encoding="utf-8")
    head, tail = text.split("from __future__ import annotations\n", 1)
    module.write_text(f"{head}from __future__ import annotations\n{line}\n{tail}", encoding="utf-8")


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the contracts reaching for the shell's settings: the first climb the plan removed
        ("schemas/events.py", "import availability.settings", "Layers"),
        # the warehouse writer reaching for the report
        ("stream_jobs/warehouse.py", "import dashboards.report", "Layers"),
        # the pure derivations reaching for ClickHouse
        ("stream_jobs/core/calls.py", "import clickhouse_connect", "The stream core runs without servers"),
        # the boundary reaching for a transport
        ("ingest/boundary.py", "import ingest.kafka.publisher", "The ingest boundary is pure"),
    ],
)
def test_a_climbing_import_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = copy_of_the_code(tmp_path)
    climb(root / module, line)
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout[-3000:]
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout[-3000:]


def test_the_architecture_doc_lists_every_module_and_no_other() -> None:
    """docs/architecture.md gives each module one line; a module added or removed without it
    fails here, so the map stays the territory."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = doc.split("```\navailability/\n", 1)[1].split("```", 1)[0]
    listed, package = set(), "availability"
    for line in tree.splitlines():
        if line.endswith("/") and not line.startswith(" "):
            package = line.rstrip("/")
        elif line.startswith("  ") and not line.startswith("   "):
            listed.add(f"{package}/{line.split()[0]}")
    real = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py" or path.parent.name == "cli"  # the CLI's __init__ is its entry
    }
    assert sorted(real - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(name for name in listed - real if not name.endswith("*.sql")) == [], "listed but absent"
