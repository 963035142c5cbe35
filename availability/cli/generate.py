"""Generated, committed files (JSON Schemas, dashboards, alert rules): write them, or check
that what is committed is what the code generates (CI fails on drift)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def drifted(root: Path, expected: Mapping[str, str], stale_glob: str | None = None) -> list[str]:
    """Relative paths under root that are missing or differ from `expected`, plus files
    matching `stale_glob` that are no longer generated."""
    changed = [name for name, text in expected.items() if _read(root / name) != text]
    stale = [p.name for p in root.glob(stale_glob) if p.name not in expected] if stale_glob and root.is_dir() else []
    return sorted(changed + stale)


def sync(
    root: Path, expected: Mapping[str, str], *, check: bool, what: str, command: str, stale_glob: str | None = None
) -> int:
    """Write what changed (or, with `check`, only list it and return 1)."""
    changed = drifted(root, expected, stale_glob)
    if check:
        if changed:
            print(f"{what} out of date under {root}:", file=sys.stderr)
            for name in changed:
                print(f"  {name}", file=sys.stderr)
            print(f"run: {command}", file=sys.stderr)
            return 1
        print(f"{len(expected)} {what} up to date under {root}")
        return 0
    for name in changed:
        target = root / name
        if name in expected:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(expected[name].encode("utf-8"))
            print(f"wrote {target}")
        else:
            print(f"{target} is no longer generated: remove it", file=sys.stderr)
    if not changed:
        print(f"{len(expected)} {what} already up to date under {root}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
