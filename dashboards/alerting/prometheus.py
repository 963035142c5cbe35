"""The alert rules as a Prometheus rule file (dashboards/alerting/files.py writes it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.alerting.rules import GROUP, AlertRule, rules
from dashboards.alerting.templates import rule_annotations, rule_expr, rule_labels
from schemas.agreements import Agreements


def prometheus_rules(
    agreements: Agreements,
    *,
    dashboard_url: str,
    for_override: str | None = None,
    definitions: Sequence[AlertRule] | None = None,
) -> dict[str, Any]:
    """The Prometheus rule file. `for_override` replaces every rule's `for` (tests)."""
    out = []
    for rule in definitions if definitions is not None else rules():
        out.append(
            {
                "alert": rule.alert,
                "expr": rule_expr(rule),
                "for": for_override if for_override is not None else rule.for_,
                "labels": rule_labels(rule),
                "annotations": rule_annotations(rule, agreements, dashboard_url, "$value"),
            }
        )
    return {"groups": [{"name": GROUP, "rules": out}]}
