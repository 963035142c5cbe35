"""Breach alerts: every rule defined once, rendered for Prometheus and for Grafana alerting.

The rules read the stream worker's live metrics (docs/live-metrics.md) and compare them with the
agreement the worker exports beside them (`availability_queue_service_level_target`, ...), so
one rule serves every queue or mailbox and a changed target needs no new rule file. The
service agreements are read only for the words of the messages: a process's display name and
what was promised to it ("80 % besvarade inom 60 s"), looked up by the queue or mailbox label
in the annotation templates. A queue the rule file does not know still alerts, under its id.

    python -m dashboards.alerts             # (re)write the generated files listed in OUTPUTS
    python -m dashboards.alerts --check     # exit 1, listing the drifted files, writing nothing

Outputs: the Prometheus rule file, the same rules as Grafana alert-rule provisioning, and the
Alertmanager configuration (dashboards/alertmanager.py, from deploy/alertmanager/managers.yaml).
docs/alerts.md explains each rule and its threshold.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from availability.generated import sync
from schemas.agreements import Agreements, Mailbox, Queue, default_agreements_path, load_agreements

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_RULES = Path("deploy/prometheus/rules/availability.rules.yml")
GRAFANA_RULES = Path("deploy/grafana/provisioning/alerting/availability-rules.yaml")
ALERTMANAGER_CONFIG = Path("deploy/alertmanager/alertmanager.yml")
MANAGERS = Path("deploy/alertmanager/managers.yaml")
OUTPUTS = (PROMETHEUS_RULES, GRAFANA_RULES, ALERTMANAGER_CONFIG)

DASHBOARD_URL = "https://grafana.example/d/availability-wall"
GRAFANA_DATASOURCE_UID = "prometheus"
GRAFANA_FOLDER = "Tillgänglighet"
GROUP = "availability"
GRAFANA_INTERVAL = "1m"

# -- thresholds (docs/alerts.md gives the reasons) ----------------------------------------------

SL_WINDOW = "30m"  # spec/metrics.md: live service level "over the last 30 minutes"
MIN_CONTACTS_WINDOW = 5  # service level over the window only from this many contacts in its base
MIN_CONTACTS_TODAY = 10  # answer rate since opening only from this many contacts in its base
LONG_WAIT_FACTOR = 3  # the oldest wait alerts above 3 × service_level_seconds
CALLGUIDE_SILENCE = "20m"  # no CallGuide event for this long while some queue was open all that time
MAILBOX_SILENCE = "4h"  # no event from imap/<mailbox> for this long while the mailbox was open all that time
PHONE_PROCESS = "telefoni"  # the `process` label of alerts about the phone platform as a whole

Severity = Literal["critical", "warning"]
Subject = Literal["queue", "mailbox", "phone"]
ValueFormat = Literal["percentage", "duration", "count"]

# The outcomes in the base of service level and answer rate (docs/live-metrics.md):
# offered − abandoned_short − callback = answered_in_sl + answered_late + abandoned.
BASE = 'outcome=~"answered_in_sl|answered_late|abandoned"'
ANSWERED = 'outcome=~"answered_in_sl|answered_late"'


@dataclass(frozen=True)
class AlertRule:
    """One alert. Texts are Swedish, with `{name}` (the process's display name), `{promise}`
    (what the agreement promises, from `promises`) and `{value}` (the alert's value, shown as
    `value_format`); the generators turn them into each system's templates."""

    alert: str
    uid: str  # Grafana's rule uid (at most 40 characters)
    subject: Subject
    expr: str
    for_: str
    severity: Severity
    title: str  # the mail subject: what is wrong, without numbers
    summary: str  # one line with the numbers
    description: str
    value_format: ValueFormat
    promises: Callable[[Agreements], dict[str, str]] | None = None

    @property
    def label(self) -> str | None:
        """The metric label that names the process (None: the phone platform as a whole)."""
        return {"queue": "queue", "mailbox": "mailbox", "phone": None}[self.subject]


# -- words ----------------------------------------------------------------------------------------


def percent(fraction: float) -> str:
    """0.8 -> `80 %` (Swedish style)."""
    return f"{round(fraction * 100, 2):g} %"


def hours(seconds: float) -> str:
    """28800 -> `8 h`, 5400 -> `1 h 30 min`, 1800 -> `30 min`."""
    h, rest = divmod(round(seconds), 3600)
    m = rest // 60
    parts = ([f"{h} h"] if h else []) + ([f"{m} min"] if m or not h else [])
    return " ".join(parts)


def seconds(value: float) -> str:
    return f"{value:g} s"


def sl_promise(q: Queue) -> str:
    return f"{percent(q.service_level_target)} besvarade inom {seconds(q.service_level_seconds)}"


def ar_promise(q: Queue) -> str:
    return f"{percent(q.answer_rate_target)} besvarade"


def wait_promise(q: Queue) -> str:
    limit = LONG_WAIT_FACTOR * q.service_level_seconds
    return f"{sl_promise(q)}; larmgräns {LONG_WAIT_FACTOR} × {seconds(q.service_level_seconds)} = {seconds(limit)}"


def mailbox_promise(m: Mailbox) -> str:
    text = f"svar inom {hours(m.response_target_seconds)} arbetstid"
    if m.priority_response_target_seconds != m.response_target_seconds:
        text += f", prioriterade ärenden inom {hours(m.priority_response_target_seconds)}"
    return text


def priority_promise(m: Mailbox) -> str:
    return f"prioriterade ärenden besvaras inom {hours(m.priority_response_target_seconds)} arbetstid"


def _queues(fn: Callable[[Queue], str]) -> Callable[[Agreements], dict[str, str]]:
    return lambda a: {qid: fn(q) for qid, q in a.queues.items()}


def _mailboxes(fn: Callable[[Mailbox], str]) -> Callable[[Agreements], dict[str, str]]:
    return lambda a: {mid: fn(m) for mid, m in a.mailboxes.items()}


# -- PromQL ---------------------------------------------------------------------------------------


def _sum(metric: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) ({metric}{{{selector}}})" if selector else f"sum by ({by}) ({metric})"


def _increase(selector: str, window: str) -> str:
    return f"sum by (queue) (increase(availability_queue_contacts_total{{{selector}}}[{window}]))"


QUEUE_OPEN = "max by (queue) (availability_queue_open) == 1"
MAILBOX_OPEN = "max by (mailbox) (availability_mailbox_open) == 1"


def rules(*, sl_window: str = SL_WINDOW) -> tuple[AlertRule, ...]:
    """The alert rules. `sl_window` only exists so that a test can shorten the window."""
    base = _increase(BASE, sl_window)
    met = _increase('outcome="answered_in_sl"', sl_window)
    base_today = _sum("availability_queue_today_contacts", "queue", BASE)
    answered_today = _sum("availability_queue_today_contacts", "queue", ANSWERED)
    return (
        AlertRule(
            alert="QueueServiceLevelBelowTarget",
            uid="availability-queue-service-level",
            subject="queue",
            # A queue with no answer in time has no answered_in_sl increase: `or 0 * base` makes it 0 %.
            expr=f"""
(
  ({met} or 0 * {base})
  /
  {base}
)
< on (queue) max by (queue) (availability_queue_service_level_target)
and on (queue) {base} >= {MIN_CONTACTS_WINDOW}
and on (queue) {QUEUE_OPEN}
""",
            for_="5m",
            severity="warning",
            title="Servicenivån under målet: {name}",
            summary="{name}: {value} besvarades inom servicenivåtiden de senaste 30 minuterna. Lovat: {promise}.",
            description=(
                "Av samtalen som avslutades i kön de senaste 30 minuterna besvarades {value} inom "
                "servicenivåtiden (korta avbrott och återuppringningar räknas inte). Serviceavtalet "
                f"lovar {{promise}}. Larmet gäller när kön är öppen och minst {MIN_CONTACTS_WINDOW} samtal "
                "har avslutats under perioden."
            ),
            value_format="percentage",
            promises=_queues(sl_promise),
        ),
        AlertRule(
            alert="QueueAnswerRateBelowTarget",
            uid="availability-queue-answer-rate",
            subject="queue",
            expr=f"""
(
  ({answered_today} or 0 * {base_today})
  /
  {base_today}
)
< on (queue) max by (queue) (availability_queue_answer_rate_target)
and on (queue) {base_today} >= {MIN_CONTACTS_TODAY}
and on (queue) {QUEUE_OPEN}
""",
            for_="10m",
            severity="warning",
            title="Svarsfrekvensen i dag under målet: {name}",
            summary="{name}: {value} av dagens samtal har besvarats. Lovat: {promise}.",
            description=(
                "Sedan kön öppnade i dag har {value} av samtalen besvarats (korta avbrott och "
                f"återuppringningar räknas inte). Serviceavtalet lovar {{promise}}. Larmet gäller när kön "
                f"är öppen och minst {MIN_CONTACTS_TODAY} samtal har avslutats i dag."
            ),
            value_format="percentage",
            promises=_queues(ar_promise),
        ),
        AlertRule(
            alert="QueueLongWait",
            uid="availability-queue-long-wait",
            subject="queue",
            expr=f"""
max by (queue) (availability_queue_oldest_wait_seconds)
> on (queue) {LONG_WAIT_FACTOR} * max by (queue) (availability_queue_service_level_seconds)
and on (queue) {QUEUE_OPEN}
""",
            for_="1m",
            severity="critical",
            title="Lång väntetid i kön: {name}",
            summary="{name}: en uppringare har väntat {value}. Lovat: {promise}.",
            description=(
                "Den som väntat längst i kön har väntat {value}, mer än "
                f"{LONG_WAIT_FACTOR} gånger servicenivåtiden. Serviceavtalet lovar {{promise}}."
            ),
            value_format="duration",
            promises=_queues(wait_promise),
        ),
        AlertRule(
            alert="QueueNoAgentReady",
            uid="availability-queue-no-agent-ready",
            subject="queue",
            # `unless` also covers a queue with no ready series at all.
            expr=f"""
sum by (queue) (availability_queue_waiting) > 0
unless on (queue) sum by (queue) (availability_queue_agents{{state="ready"}}) > 0
and on (queue) {QUEUE_OPEN}
""",
            for_="5m",
            severity="critical",
            title="Ingen handläggare redo: {name}",
            summary="{name}: samtal väntar (nu {value}) och ingen handläggare är redo. Lovat: {promise}.",
            description=(
                "Kön är öppen, samtal väntar (nu {value}) och ingen handläggare i kön har haft status "
                "Redo på 5 minuter. Serviceavtalet lovar {promise}."
            ),
            value_format="count",
            promises=_queues(sl_promise),
        ),
        AlertRule(
            alert="MailboxCaseBreached",
            uid="availability-mailbox-breached",
            subject="mailbox",
            expr=f"""
sum by (mailbox) (availability_mailbox_breached_cases) > 0
and on (mailbox) {MAILBOX_OPEN}
""",
            for_="1m",
            severity="warning",
            title="Ärenden över svarstiden: {name}",
            summary="{name}: öppna ärenden över svarstiden: {value}. Lovat: {promise}.",
            description=(
                "Obesvarade ärenden i funktionsbrevlådan vars ålder i arbetstid är över svarstiden: "
                "{value}. Serviceavtalet lovar {promise}."
            ),
            value_format="count",
            promises=_mailboxes(mailbox_promise),
        ),
        AlertRule(
            alert="MailboxPriorityCaseBreachingSoon",
            uid="availability-mailbox-priority-soon",
            subject="mailbox",
            expr=f"""
sum by (mailbox) (availability_mailbox_breaching_within_hour{{priority="true"}}) > 0
and on (mailbox) {MAILBOX_OPEN}
""",
            for_="1m",
            severity="critical",
            title="Prioriterade ärenden passerar snart svarstiden: {name}",
            summary=(
                "{name}: prioriterade ärenden som passerar svarstiden inom en arbetstimme: {value}. Lovat: {promise}."
            ),
            description=(
                "Obesvarade prioriterade ärenden (anstånd, makulering, avbetalningsplan och liknande) "
                "som passerar svarstiden inom en timme arbetstid: {value}. Serviceavtalet lovar {promise}."
            ),
            value_format="count",
            promises=_mailboxes(priority_promise),
        ),
        AlertRule(
            alert="CallGuideSilent",
            uid="availability-callguide-silent",
            subject="phone",
            expr=f"""
time() - max by (source) (availability_source_last_seen_timestamp_seconds{{source="callguide"}})
> {_seconds(CALLGUIDE_SILENCE)}
and on () min_over_time(max(availability_queue_open)[{CALLGUIDE_SILENCE}:1m]) == 1
""",
            for_="1m",
            severity="critical",
            title="Inga händelser från telefonin (CallGuide)",
            summary="Telefonin (CallGuide): inga händelser på {value} trots att köer är öppna.",
            description=(
                "Strömningsjobbet har inte fått någon händelse från CallGuide på {value}, och minst en kö "
                f"har varit öppen hela tiden ({hours(_seconds(CALLGUIDE_SILENCE))}). Tavlan och larmen för "
                "köerna visar inte läget just nu. Kontrollera CallGuide-webhooken, Kafka och strömningsjobbet."
            ),
            value_format="duration",
        ),
        AlertRule(
            alert="MailboxFeedSilent",
            uid="availability-mailbox-feed-silent",
            subject="mailbox",
            expr=f"""
label_replace(
  time() - max by (source) (availability_source_last_seen_timestamp_seconds{{source=~"imap/.+"}}),
  "mailbox", "$1", "source", "imap/(.+)"
)
> {_seconds(MAILBOX_SILENCE)}
and on (mailbox) min_over_time((max by (mailbox) (availability_mailbox_open))[{MAILBOX_SILENCE}:1m]) == 1
""",
            for_="5m",
            severity="warning",
            title="Inga händelser från funktionsbrevlådan: {name}",
            summary="{name}: inga händelser från funktionsbrevlådan på {value}.",
            description=(
                "Strömningsjobbet har inte sett något mejl tas emot, besvaras eller avslutas i "
                "brevlådan på {value}, fast den varit öppen hela tiden "
                f"({hours(_seconds(MAILBOX_SILENCE))}). Kontrollera IMAP-inläsningen."
            ),
            value_format="duration",
        ),
    )


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


# -- templates --------------------------------------------------------------------------------------


def _template_text(text: str) -> str:
    """Literal text inside a Go template."""
    return text.replace("{{", '{{ "{{" }}')


def _lookup(label: str, table: Mapping[str, str], fallback: str) -> str:
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
        fields["name"] = _lookup(label, _names(rule, agreements), f"{{{{ $labels.{label} }}}}") if label else ""
    if "{promise}" in text:
        if rule.promises is None or label is None:
            raise ValueError(f"{rule.alert}: text uses {{promise}} but the rule has no promises")
        fields["promise"] = _lookup(label, rule.promises(agreements), "se serviceavtalet")
    return text.format_map(fields)


def _process_label(rule: AlertRule) -> str:
    return f"{{{{ $labels.{rule.label} }}}}" if rule.label else PHONE_PROCESS


def _dashboard_link(rule: AlertRule, dashboard_url: str) -> str:
    return f"{dashboard_url}?var-{rule.label}={{{{ $labels.{rule.label} }}}}" if rule.label else dashboard_url


def _expr(rule: AlertRule) -> str:
    return rule.expr.strip("\n")


def _annotations(rule: AlertRule, agreements: Agreements, dashboard_url: str, value_ref: str) -> dict[str, str]:
    return {
        "title": _render(rule.title, rule, agreements, value_ref),
        "summary": _render(rule.summary, rule, agreements, value_ref),
        "description": _render(rule.description, rule, agreements, value_ref),
        "dashboard": _dashboard_link(rule, dashboard_url),
    }


def _labels(rule: AlertRule) -> dict[str, str]:
    return {"severity": rule.severity, "process": _process_label(rule)}


# -- generators -------------------------------------------------------------------------------------


def prometheus_rules(
    agreements: Agreements,
    *,
    dashboard_url: str = DASHBOARD_URL,
    for_override: str | None = None,
    definitions: Sequence[AlertRule] | None = None,
) -> dict[str, Any]:
    """The Prometheus rule file. `for_override` replaces every rule's `for` (tests)."""
    out = []
    for rule in definitions if definitions is not None else rules():
        out.append(
            {
                "alert": rule.alert,
                "expr": _expr(rule),
                "for": for_override if for_override is not None else rule.for_,
                "labels": _labels(rule),
                "annotations": _annotations(rule, agreements, dashboard_url, "$value"),
            }
        )
    return {"groups": [{"name": GROUP, "rules": out}]}


def grafana_rules(
    agreements: Agreements,
    *,
    dashboard_url: str = DASHBOARD_URL,
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
                "expr": _expr(rule),
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
                "labels": _labels(rule),
                "annotations": _annotations(rule, agreements, dashboard_url, "$values.A.Value"),
                "isPaused": False,
            }
        )
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": GROUP, "folder": GRAFANA_FOLDER, "interval": GRAFANA_INTERVAL, "rules": out}],
    }


# -- files ------------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the PromQL and the annotation templates)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indent lists under their key


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(data: Any, header: str) -> str:
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body


def _header(what: str, sources: str) -> str:
    return (
        f"{what}\n"
        f"Generated by `python -m dashboards.alerts` from {sources}.\n"
        "Do not edit: change the sources and regenerate. docs/alerts.md explains it all."
    )


def _source_name(source: Path) -> str:
    try:
        return str(source.resolve().relative_to(ROOT))
    except ValueError:
        return source.name


def generate(
    agreements: Agreements,
    *,
    dashboard_url: str = DASHBOARD_URL,
    managers_path: Path | None = None,
) -> dict[Path, str]:
    """Repository-relative path -> the text of every generated file."""
    from dashboards import alertmanager

    managers_file = managers_path or ROOT / MANAGERS
    managers = alertmanager.load_managers(managers_file, agreements)
    rule_sources = f"dashboards/alerts.py and the service agreements ({_source_name(Path(agreements.source))})"
    return {
        PROMETHEUS_RULES: render_yaml(
            prometheus_rules(agreements, dashboard_url=dashboard_url),
            _header("Prometheus alert rules: availability breaches.", rule_sources),
        ),
        GRAFANA_RULES: render_yaml(
            grafana_rules(agreements, dashboard_url=dashboard_url),
            _header("Grafana alert-rule provisioning: the same rules as Grafana-managed alerts.", rule_sources),
        ),
        ALERTMANAGER_CONFIG: render_yaml(
            alertmanager.config(managers),
            _header(
                "Alertmanager: each process's alerts to its managers by e-mail, every alert to the chat.",
                f"dashboards/alertmanager.py and {_source_name(managers_file)}",
            ),
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.alerts",
        description="Generate the Prometheus and Grafana alert rules and the Alertmanager configuration.",
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 listing drifted files")
    parser.add_argument("--agreements", type=Path, help=f"service agreements (default {default_agreements_path()})")
    parser.add_argument("--managers", type=Path, help=f"managers file (default {MANAGERS})")
    parser.add_argument("--dashboard-url", default=DASHBOARD_URL, help=f"the wall's URL (default {DASHBOARD_URL})")
    parser.add_argument("--root", type=Path, default=ROOT, help="write under this directory (default the repository)")
    args = parser.parse_args(argv)
    root: Path = args.root

    agreements = load_agreements(args.agreements)
    expected = generate(agreements, dashboard_url=args.dashboard_url, managers_path=args.managers)
    files = {str(path): text for path, text in expected.items()}
    return sync(root, files, check=args.check, what="alerting files", command="python -m dashboards.alerts")


if __name__ == "__main__":
    raise SystemExit(main())
