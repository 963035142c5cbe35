"""`availability generate [--check]`: the committed generated files (JSON Schemas, Grafana
dashboards, alert rules, Alertmanager configuration, docs/metrics.md) written from their code, or checked to be
what the code generates (CI fails on drift)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from availability.wiring import Wiring
from schemas.agreements import Agreements

# The repository: the generated files are committed beside the code that makes them.
ROOT = Path(__file__).resolve().parents[2]
# Files in these directories that nothing generates any more are reported as stale.
STALE = ("schemas/jsonschema/*.schema.json", "dashboards/generated/*.json", "deploy/clickhouse/*.sql")


def generated_files(
    agreements: Agreements, managers: Path | None = None, dashboard_url: str | None = None
) -> dict[Path, str]:
    """Repository-relative path -> text, for every generated file."""
    from dashboards import definitions_doc
    from dashboards.alerting import files as alerting
    from dashboards.grafana import files as grafana
    from schemas import cluster, jsonschema_gen

    alerts = alerting.generate(
        agreements, dashboard_url=dashboard_url or alerting.DASHBOARD_URL, managers_path=managers
    )
    docs = {Path(definitions_doc.PATH): definitions_doc.markdown()}
    return jsonschema_gen.files() | grafana.files(agreements) | alerts | cluster.generated_files() | docs


def drifted(root: Path, expected: Mapping[Path, str], stale: tuple[str, ...] = STALE) -> list[str]:
    """Relative paths under root that are missing or differ from `expected`, plus files
    matching a `stale` glob that are no longer generated."""
    changed = {str(name) for name, text in expected.items() if _read(root / name) != text}
    known = {str(name) for name in expected}
    gone = {str(p.relative_to(root)) for pattern in stale for p in root.glob(pattern)} - known
    return sorted(changed | gone)


def cmd_generate(args: argparse.Namespace, wiring: Wiring) -> int:
    root: Path = args.root
    expected = generated_files(wiring.agreements(args.agreements), args.managers, args.dashboard_url)
    changed = drifted(root, expected)
    if args.check:
        if changed:
            print(f"generated files out of date under {root}:", file=sys.stderr)
            for name in changed:
                print(f"  {name}", file=sys.stderr)
            print("run: availability generate", file=sys.stderr)
            return 1
        print(f"{len(expected)} generated files up to date under {root}")
        return 0
    for name in changed:
        target = root / name
        text = expected.get(Path(name))
        if text is None:
            print(f"{target} is no longer generated: remove it", file=sys.stderr)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
        print(f"wrote {target}")
    if not changed:
        print(f"{len(expected)} generated files already up to date under {root}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="write the generated files (JSON Schemas, dashboards, alert rules, Alertmanager configuration, "
        "docs/metrics.md)",
        description="Write the committed generated files from their code and the agreements, or with --check "
        "only compare them (exit 1, listing what drifted).",
    )
    p.add_argument("--check", action="store_true", help="only compare; exit 1 listing drifted files")
    p.add_argument("--root", type=Path, default=ROOT, help=f"the repository to write into (default {ROOT})")
    p.add_argument("--managers", type=Path, help="who gets which alerts (default deploy/alertmanager/managers.yaml)")
    p.add_argument("--dashboard-url", help="the wall's URL in the alert messages")
    # Not AVAILABILITY_AGREEMENTS: the committed files are made from the shipped agreements, and a
    # deployment's settings must not make `--check` fail or `generate` rewrite them.
    p.add_argument(
        "--agreements",
        metavar="A.yaml",
        help="service-agreements file (default: the shipped agreements, which the committed files are made from)",
    )
    p.set_defaults(run=cmd_generate)
