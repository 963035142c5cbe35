"""The alert rules as Grafana alert-rule provisioning: the same rules as Grafana-managed alerts
(dashboards/alerting/files.py writes the file).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.alerting.rules import GROUP, AlertRule, rules
from dashboards.alerting.templates import rule_annotations, rule_expr, rule_labels
from schemas.agreements import Agreements

GRAFANA_DATASOURCE_UID = "prometheus"
GRAFANA_FOLDER = "Tillgänglighet"
GRAFANA_INTERVAL = "1m"


def grafana_rules(
    agreements: Agreements,
    *,
    dashboard_url: str,
    datasource_uid: str = GRAFANA_DATASOURCE_UID,
    definitions: Sequence[AlertRule] | None = None,
) -> dict[str, Any]:
    """Grafana alert-rule provisioning (apiVersion 1) for the same rules.

    Each rule: A is the rule's PromQL as an instant query, which returns only the offending
    series (the comparison with the target is in the PromQL, as in Prometheus); C is the
    condition `is_number($A)`, true for every series A returned. No data means nothing is
    wrong (`noDataState: OK`); a failing query is an error, not an alert."""
    out = []
    for rule in definitions if definitions is not None else rules():
        query = {
            "refId": "A",
            "relativeTimeRange": {"from": 600, "to": 0},
            "datasourceUid": datasource_uid,
            "model": {
                "datasource": {"type": "prometheus", "uid": datasource_uid},
                "editorMode": "code",
                "expr": rule_expr(rule),
                "instant": True,
                "range": False,
                "intervalMs": 60000,
                "maxDataPoints": 43200,
                "refId": "A",
            },
        }
        condition = {
            "refId": "C",
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": "__expr__",
            "model": {
                "datasource": {"type": "__expr__", "uid": "__expr__"},
                "type": "math",
                "expression": "is_number($A)",
                "refId": "C",
            },
        }
        out.append(
            {
                "uid": rule.uid,
                # The title is Grafana's alertname: the same as Prometheus's, so that one
                # Alertmanager configuration, its grouping and inhibitions, and silences serve both.
                "title": rule.alert,
                "condition": "C",
                "data": [query, condition],
                "noDataState": "OK",
                "execErrState": "Error",
                "for": rule.for_,
                "labels": rule_labels(rule),
                "annotations": rule_annotations(rule, agreements, dashboard_url, "$values.A.Value"),
                "isPaused": False,
            }
        )
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": GROUP, "folder": GRAFANA_FOLDER, "interval": GRAFANA_INTERVAL, "rules": out}],
    }
