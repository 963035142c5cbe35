"""Grafana dashboards as code: generated JSON, committed in dashboards/generated/.

The dashboards are built with grafana-foundation-sdk (dashboards/grafana/wall.py, history.py,
mailbox.py) from the service agreements, which give the template variable values and the
per-process thresholds. The JSON is generated, never edited by hand:

    availability generate            # (re)write dashboards/generated/*.json (and the other generated files)
    availability generate --check    # exit 1, listing the drifted files, writing nothing

`promql_expressions()` lists every PromQL expression the dashboards run, with the template
variables expanded as Grafana expands them, so they can be evaluated against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboards.grafana import history as grafana_history
from dashboards.grafana import mailbox as grafana_mailbox
from dashboards.grafana import wall as grafana_wall
from schemas.agreements import Agreements, load_agreements

Dashboard = dict[str, Any]

OUT_DIR = Path("dashboards/generated")  # repository-relative
BUILDERS: dict[str, Callable[[Agreements], Any]] = {
    f"{grafana_wall.UID}.json": grafana_wall.dashboard_json,
    f"{grafana_history.UID}.json": grafana_history.dashboard_json,
    f"{grafana_mailbox.UID}.json": grafana_mailbox.dashboard_json,
}


def generate(agreements: Agreements | None = None) -> dict[str, Dashboard]:
    """File name -> dashboard JSON, for every file in dashboards/generated/."""
    agreements = agreements or load_agreements()
    return {name: build(agreements) for name, build in BUILDERS.items()}


def files(agreements: Agreements | None = None) -> dict[Path, str]:
    """Repository-relative path -> text of every generated dashboard file."""
    return {OUT_DIR / name: render(dashboard) for name, dashboard in generate(agreements).items()}


def render(dashboard: Dashboard) -> str:
    """The committed text of a dashboard: deterministic, so a diff means a change."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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
