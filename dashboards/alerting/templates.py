"""The Go templates of the alert rules' labels and annotations, the same in Prometheus and Grafana
(but for the reference to the alert's value): the rule texts with the process's display name and
what the agreement promises, looked up by the queue or mailbox label.
"""

from __future__ import annotations

from collections.abc import Mapping

from dashboards.alerting.rules import PHONE_PROCESS, AlertRule, ValueFormat
from schemas.agreements import Agreements


def _template_text(text: str) -> str:
    """Literal text inside a Go template."""
    return text.replace("{{", '{{ "{{" }}')


def lookup(label: str, table: Mapping[str, str], fallback: str) -> str:
    """A Go template choosing the text for the label's value, `fallback` for any other value.
    One branch a line; `{{-` removes the line breaks from the output."""
    if not table:
        return fallback
    lines = []
    for i, (key, text) in enumerate(table.items()):
        keyword = "{{ if" if i == 0 else "{{- else if"
        lines.append(f'{keyword} eq $labels.{label} "{key}" }}}}{_template_text(text)}')
    lines.append(f"{{{{- else }}}}{fallback}")
    return "\n".join(lines) + "\n{{- end }}"


def _value(fmt: ValueFormat, ref: str) -> str:
    if fmt == "percentage":
        return f"{{{{ {ref} | humanizePercentage }}}}"
    if fmt == "duration":
        return f"{{{{ {ref} | humanizeDuration }}}}"
    return f'{{{{ printf "%.0f" {ref} }}}}'


def _names(rule: AlertRule, agreements: Agreements) -> dict[str, str]:
    if rule.subject == "queue":
        return {qid: q.name for qid, q in agreements.queues.items()}
    if rule.subject == "mailbox":
        return {mid: m.name for mid, m in agreements.mailboxes.items()}
    return {}


def _render(text: str, rule: AlertRule, agreements: Agreements, value_ref: str) -> str:
    """A rule text as a Go template (the same in Prometheus and Grafana but for the value)."""
    fields: dict[str, str] = {"value": _value(rule.value_format, value_ref)}
    label = rule.label
    if "{name}" in text:
        fields["name"] = lookup(label, _names(rule, agreements), f"{{{{ $labels.{label} }}}}") if label else ""
    if "{promise}" in text:
        if rule.promises is None or label is None:
            raise ValueError(f"{rule.alert}: text uses {{promise}} but the rule has no promises")
        fields["promise"] = lookup(label, rule.promises(agreements), "se serviceavtalet")
    return text.format_map(fields)


def _process_label(rule: AlertRule) -> str:
    return f"{{{{ $labels.{rule.label} }}}}" if rule.label else PHONE_PROCESS


def _dashboard_link(rule: AlertRule, dashboard_url: str) -> str:
    return f"{dashboard_url}?var-{rule.label}={{{{ $labels.{rule.label} }}}}" if rule.label else dashboard_url


def rule_expr(rule: AlertRule) -> str:
    return rule.expr.strip("\n")


def rule_annotations(rule: AlertRule, agreements: Agreements, dashboard_url: str, value_ref: str) -> dict[str, str]:
    return {
        "title": _render(rule.title, rule, agreements, value_ref),
        "summary": _render(rule.summary, rule, agreements, value_ref),
        "description": _render(rule.description, rule, agreements, value_ref),
        "dashboard": _dashboard_link(rule, dashboard_url),
    }


def rule_labels(rule: AlertRule) -> dict[str, str]:
    return {"severity": rule.severity, "process": _process_label(rule)}
