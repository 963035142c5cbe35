"""The breach alert rules, each defined once: thresholds, the words of the messages, the PromQL.

The rules read the stream worker's live metrics (docs/live-metrics.md), with the expressions of
dashboards/kpi_promql.py that the wall shows too, and compare them with the agreement the worker
exports beside them, so one rule serves every queue or mailbox. The generators
(dashboards/alerting/prometheus.py, dashboards/alerting/grafana.py) render them for each system;
dashboards/alerting/files.py renders the files. docs/alerts.md explains each rule and its threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dashboards import kpi_promql
from schemas.agreements import Agreements, Mailbox, Queue
from stream_jobs.core import outlook

GROUP = "availability"  # the rule group, in Prometheus and in Grafana

# -- thresholds (docs/alerts.md gives the reasons) ----------------------------------------------

SL_WINDOW = "30m"  # spec/metrics.md: live service level "over the last 30 minutes"
# Service level over the window only from this many contacts in its base (the outlook's time to
# breach judges the window the same way).
MIN_CONTACTS_WINDOW = outlook.MIN_CONTACTS_WINDOW
MIN_CONTACTS_TODAY = 10  # answer rate since opening only from this many contacts in its base
LONG_WAIT_FACTOR = 3  # the oldest wait alerts above 3 × service_level_seconds
CALLGUIDE_SILENCE = "21m"  # no CallGuide event for this long while some queue was open all that time
MAILBOX_SILENCE = "4h"  # no event from imap/<mailbox> for this long while the mailbox was open all that time
AT_RISK_WITHIN = 900  # seconds: the outlook warns of a breach expected this soon
PHONE_PROCESS = "telefoni"  # the `process` label of alerts about the phone platform as a whole

Severity = Literal["critical", "warning"]
Subject = Literal["queue", "mailbox", "phone"]
ValueFormat = Literal["percentage", "duration", "count"]


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


# -- PromQL (the expressions the wall shows too: dashboards/kpi_promql.py) --------------------------

QUEUE_OPEN = f"{kpi_promql.queue_open()} == 1"
MAILBOX_OPEN = f"{kpi_promql.mailbox_open()} == 1"


def rules(*, sl_window: str = SL_WINDOW) -> tuple[AlertRule, ...]:
    """The alert rules. `sl_window` only exists so that a test can shorten the window."""
    per = kpi_promql.per
    base = kpi_promql.contacts(kpi_promql.BASE, sl_window)
    base_today = kpi_promql.contacts(kpi_promql.BASE, None)
    return (
        AlertRule(
            alert="QueueServiceLevelBelowTarget",
            uid="availability-queue-service-level",
            subject="queue",
            # A queue with no answer in time has 0 %, one with an empty base no value (kpi_promql.ratio).
            expr=f"""
{kpi_promql.service_level(sl_window)}
< on (queue) {per("queue", "availability_queue_service_level_target")}
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
{kpi_promql.answer_rate(None)}
< on (queue) {per("queue", "availability_queue_answer_rate_target")}
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
{per("queue", "availability_queue_oldest_wait_seconds")}
> on (queue) {LONG_WAIT_FACTOR} * {per("queue", "availability_queue_service_level_seconds")}
and on (queue) {QUEUE_OPEN}
""",
            for_="15s",
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
{per("queue", "availability_queue_waiting")} > 0
unless on (queue) {per("queue", "availability_queue_agents", kpi_promql.READY)} > 0
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
{per("mailbox", "availability_mailbox_breached_cases")} > 0
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
{per("mailbox", "availability_mailbox_breaching_within_hour", kpi_promql.PRIORITY)} > 0
and on (mailbox) {MAILBOX_OPEN}
""",
            for_="0s",
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
time() - {per("source", "availability_source_last_seen_timestamp_seconds", 'source="callguide"')}
> {_seconds(CALLGUIDE_SILENCE)}
and on () min_over_time({per(None, "availability_queue_open")}[{CALLGUIDE_SILENCE}:1m]) == 1
""",
            for_="0s",
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
  time() - {per("source", "availability_source_last_seen_timestamp_seconds", 'source=~"imap/.+"')},
  "mailbox", "$1", "source", "imap/(.+)"
)
> {_seconds(MAILBOX_SILENCE)}
and on (mailbox) min_over_time(({kpi_promql.mailbox_open()})[{MAILBOX_SILENCE}:1m]) == 1
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
        AlertRule(
            alert="QueueServiceLevelAtRisk",
            uid="availability-queue-service-level-at-risk",
            subject="queue",
            # The worker's outlook (docs/forecasting.md): a breach expected within AT_RISK_WITHIN
            # and not there yet (0 is "below target now", which QueueServiceLevelBelowTarget tells),
            # where one worker reports the queue. The value is the agents that would avoid it.
            expr=f"""
{kpi_promql.outlook("availability_queue_agents_needed")}
and on (queue) {per("queue", "availability_queue_breach_expected_seconds")} > 0
and on (queue) {per("queue", "availability_queue_breach_expected_seconds")} <= {AT_RISK_WITHIN}
and on (queue) {QUEUE_OPEN}
""",
            for_="1m",
            severity="warning",
            title="Servicenivån väntas falla under målet: {name}",
            summary=(
                "{value} fler agenter behövs i {name}: servicenivån väntas falla under målet inom 15 minuter. "
                "Lovat: {promise}."
            ),
            description=(
                "Med samtalen som väntas, handläggarna som är inloggade nu och uppringarnas tålamod "
                "(Erlang A) väntas servicenivån för de senaste 30 minuterna falla under målet inom "
                "15 minuter. {value} fler agenter behövs i {name} för att undvika det. "
                "Serviceavtalet lovar {promise}."
            ),
            value_format="count",
            promises=_queues(sl_promise),
        ),
    )


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]
