"""Grafana dashboards as code: generated JSON, committed in dashboards/generated/.

The dashboards are built with grafana-foundation-sdk (dashboards/grafana_wall.py,
grafana_history.py, grafana_mailbox.py) from the service agreements, which give the template
variable values and the per-process thresholds. The JSON is generated, never edited by hand:

    python -m dashboards.grafana            # (re)write dashboards/generated/*.json
    python -m dashboards.grafana --check    # exit 1, listing the drifted files, writing nothing

`promql_expressions()` lists every PromQL expression the dashboards run, with the template
variables expanded as Grafana expands them, so they can be evaluated against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboards import grafana_history, grafana_mailbox, grafana_wall
from schemas.agreements import Agreements, load_agreements

Dashboard = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parent / "generated"
BUILDERS: dict[str, Callable[[Agreements], Any]] = {
    f"{grafana_wall.UID}.json": grafana_wall.dashboard_json,
    f"{grafana_history.UID}.json": grafana_history.dashboard_json,
    f"{grafana_mailbox.UID}.json": grafana_mailbox.dashboard_json,
}


def generate(agreements: Agreements | None = None) -> dict[str, Dashboard]:
    """File name -> dashboard JSON, for every file in dashboards/generated/."""
    agreements = agreements or load_agreements()
    return {name: build(agreements) for name, build in BUILDERS.items()}


def render(dashboard: Dashboard) -> str:
    """The committed text of a dashboard: deterministic, so a diff means a change."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def drifted(out_dir: Path, expected: Mapping[str, str]) -> list[str]:
    """Files in out_dir that are missing, differ from `expected`, or are no longer generated."""
    names = [n for n, text in expected.items() if _read(out_dir / n) != text]
    stale = [p.name for p in out_dir.glob("*.json") if p.name not in expected] if out_dir.is_dir() else []
    return sorted(names + stale)


def targets(dashboard: Dashboard) -> Iterator[tuple[Dashboard, Dashboard]]:
    """(panel, target) for every query of a dashboard, rows' collapsed panels included."""
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner, target


def datasource_type(panel: Dashboard, target: Dashboard) -> str:
    source = target.get("datasource") or panel.get("datasource") or {}
    return str(source.get("type", ""))


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def expand_promql(expr: str, values: Mapping[str, Sequence[str]]) -> str:
    """`$var` / `${var}` as Grafana's Prometheus datasource interpolates a multi-value variable:
    values regex-escaped, one value as itself, several as `(a|b)`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in values:
            return match.group(0)
        escaped = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in values[name]]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return _VARIABLE.sub(replace, expr)


def promql_expressions(agreements: Agreements | None = None, *, expand: bool = True) -> list[str]:
    """Every PromQL expression of the dashboards (sorted, distinct). With `expand`, the
    `queue` and `mailbox` variables are expanded as for "All" (every process and mailbox of the
    agreements); without, the expressions are as stored in the dashboards."""
    agreements = agreements or load_agreements()
    values = {"queue": list(agreements.queues), "mailbox": list(agreements.mailboxes)}
    exprs = set()
    for dashboard in generate(agreements).values():
        for panel, target in targets(dashboard):
            if datasource_type(panel, target) == "prometheus":
                expr = str(target["expr"])
                exprs.add(expand_promql(expr, values) if expand else expr)
    return sorted(exprs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.grafana", description="Generate the Grafana dashboards' JSON."
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 listing drifted files")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output directory (default {OUT_DIR})")
    parser.add_argument("--agreements", type=Path, help="service-agreements file (default: the shipped one)")
    args = parser.parse_args(argv)
    out_dir: Path = args.out

    expected = {name: render(d) for name, d in generate(load_agreements(args.agreements)).items()}
    changed = drifted(out_dir, expected)
    if args.check:
        if changed:
            print(f"Grafana dashboards out of date in {out_dir}:", file=sys.stderr)
            for name in changed:
                print(f"  {name}", file=sys.stderr)
            print("run: python -m dashboards.grafana", file=sys.stderr)
            return 1
        print(f"{len(expected)} Grafana dashboards up to date in {out_dir}")
        return 0

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in changed:
        if name in expected:
            (out_dir / name).write_bytes(expected[name].encode("utf-8"))
            print(f"wrote {out_dir / name}")
        else:
            print(f"{out_dir / name} is no longer generated: remove it", file=sys.stderr)
    if not changed:
        print(f"{len(expected)} Grafana dashboards already up to date in {out_dir}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
