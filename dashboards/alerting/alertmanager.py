"""The Alertmanager configuration, generated from deploy/alertmanager/managers.yaml.

The managers file says who is told: per process id (a queue or mailbox id of the service
agreements, or `telefoni` for the phone platform as a whole) the managers' e-mail addresses,
a default address for processes nobody is listed for, the SMTP relay and the chat webhook.
Every alert carries the labels `process` and `severity` (dashboards/alerting/templates.py); the routes:

- a chat webhook gets every alert (a parallel route, `continue: true`),
- then the alert goes by e-mail to its process's managers, or to `default`.

Alerts are grouped by alertname and process, so one problem of one process is one mail (and
one mail when it is over, `send_resolved`). A critical alert (act now) is sent a few seconds
after it fires (CRITICAL_GROUP_WAIT, a child route of every receiver's route); a warning waits
GROUP_WAIT for others that start with it. docs/alerts.md gives the reasons for the intervals.
`availability generate` writes the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from schemas.agreements import Agreements

PHONE_PROCESS = "telefoni"

# Business-hours routing (docs/alerts.md): a short wait to collect alerts that start together,
# five minutes before telling about a change in a group, and a reminder twice in a working day
# while a problem lasts. Alerts end when a queue or mailbox closes, so nothing repeats at night.
# A critical alert waits only CRITICAL_GROUP_WAIT: it must reach the managers within a minute of
# the breach (issue #15), and its group (alertname, process) never holds another alert to wait
# for; the few seconds let an inhibiting alert sent by the same rule evaluation arrive first.
GROUP_WAIT = "30s"
CRITICAL_GROUP_WAIT = "5s"
GROUP_INTERVAL = "5m"
REPEAT_INTERVAL = "4h"
RESOLVE_TIMEOUT = "5m"

CRITICAL = 'severity="critical"'  # the matcher of the act-now alerts (dashboards/alerting/rules.py)

ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[a-z]{2,}$", re.IGNORECASE)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SmtpFile(_Strict):
    smarthost: str
    sender: str = msgspec.field(name="from")
    require_tls: bool = True


class ManagersFile(_Strict):
    smtp: SmtpFile
    chat_webhook_url: str
    default: list[str]
    managers: dict[str, list[str]] = {}


@dataclass(frozen=True)
class Timing:
    group_wait: str = GROUP_WAIT
    critical_group_wait: str = CRITICAL_GROUP_WAIT
    group_interval: str = GROUP_INTERVAL
    repeat_interval: str = REPEAT_INTERVAL
    resolve_timeout: str = RESOLVE_TIMEOUT


@dataclass(frozen=True)
class Managers:
    smarthost: str
    sender: str
    require_tls: bool
    chat_webhook_url: str
    default: tuple[str, ...]
    managers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timing: Timing = Timing()


def load_managers(path: Path, agreements: Agreements) -> Managers:
    """Read and check the managers file: known process ids, plausible addresses."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = msgspec.convert(raw, ManagersFile)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    known = set(agreements.queues) | set(agreements.mailboxes) | {PHONE_PROCESS}
    for process, addresses in spec.managers.items():
        if process not in known:
            raise ValueError(
                f"{path}: managers.{process}: not a queue or mailbox id of the agreements, nor {PHONE_PROCESS}"
            )
        _check_addresses(path, f"managers.{process}", addresses)
    _check_addresses(path, "default", spec.default)
    return Managers(
        smarthost=spec.smtp.smarthost,
        sender=spec.smtp.sender,
        require_tls=spec.smtp.require_tls,
        chat_webhook_url=spec.chat_webhook_url,
        default=tuple(spec.default),
        managers={p: tuple(a) for p, a in spec.managers.items()},
    )


def _check_addresses(path: Path, key: str, addresses: list[str]) -> None:
    if not addresses:
        raise ValueError(f"{path}: {key}: no address")
    for address in addresses:
        if not ADDRESS.match(address):
            raise ValueError(f"{path}: {key}: not an e-mail address: {address!r}")


# The mail, in Swedish. Alertmanager's notification data: .Status, .Alerts, .CommonLabels,
# .CommonAnnotations (the annotations of dashboards/alerting/files.py: title, summary, description,
# dashboard). The X- headers let mail rules (and the tests) sort the mails.
SUBJECT = '{{ if eq .Status "firing" }}Larm{{ else }}Upphört{{ end }}: {{ .CommonAnnotations.title }}'
TEXT = """\
{{ range .Alerts.Firing -}}
{{ .Annotations.summary }}

{{ .Annotations.description }}

Tavlan: {{ .Annotations.dashboard }}

{{ end -}}
{{ range .Alerts.Resolved -}}
Larmet har upphört: målet nås igen, eller kön eller brevlådan har stängt.
Senaste larmet: {{ .Annotations.summary }}

Tavlan: {{ .Annotations.dashboard }}

{{ end -}}
--
Larm från tillgänglighetsmätningen (Serviceförvaltningen, Ekonomi), \
{{ if eq .CommonLabels.severity "critical" }}kritiskt{{ else }}varning{{ end }}.
"""


def _email(addresses: tuple[str, ...]) -> dict[str, Any]:
    return {
        "to": ", ".join(addresses),
        "send_resolved": True,
        "headers": {
            "Subject": SUBJECT,
            "X-Availability-Alert": "{{ .CommonLabels.alertname }}",
            "X-Availability-Process": "{{ .CommonLabels.process }}",
            "X-Availability-Status": "{{ .Status }}",
        },
        "text": TEXT,
        "html": "",  # plain text only (no English default HTML part)
    }


def config(managers: Managers) -> dict[str, Any]:
    """The Alertmanager configuration (a mapping to dump as YAML)."""
    t = managers.timing
    receivers: list[dict[str, Any]] = [
        {"name": "default", "email_configs": [_email(managers.default)]},
        {"name": "chat", "webhook_configs": [{"url": managers.chat_webhook_url, "send_resolved": True}]},
    ]

    # Under every receiver's route a child for the critical alerts, with the same receiver and
    # grouping and only a shorter group_wait. The last route takes the processes nobody is listed
    # for to `default`: the root's own receiver is never used, because the chat route matches
    # every alert (Alertmanager falls back to a route's receiver only when no child matched).
    def critical() -> list[dict[str, Any]]:
        return [{"matchers": [CRITICAL], "group_wait": t.critical_group_wait}]

    routes: list[dict[str, Any]] = [{"receiver": "chat", "continue": True, "routes": critical()}]
    for process, addresses in managers.managers.items():
        name = f"managers-{process}"
        receivers.append({"name": name, "email_configs": [_email(addresses)]})
        routes.append({"receiver": name, "matchers": [f'process="{process}"'], "routes": critical()})
    routes.append({"receiver": "default", "routes": critical()})
    return {
        "global": {
            "resolve_timeout": t.resolve_timeout,
            "smtp_smarthost": managers.smarthost,
            "smtp_from": managers.sender,
            "smtp_require_tls": managers.require_tls,
        },
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "process"],
            "group_wait": t.group_wait,
            "group_interval": t.group_interval,
            "repeat_interval": t.repeat_interval,
            "routes": routes,
        },
        # A silent feed freezes what the worker knows: waits keep growing, replies are not seen.
        # While the feed's alert fires, the alerts that rest on it are held back.
        "inhibit_rules": [
            {"source_matchers": ['alertname="CallGuideSilent"'], "target_matchers": ['alertname=~"Queue.+"']},
            {
                "source_matchers": ['alertname="MailboxFeedSilent"'],
                "target_matchers": ['alertname=~"MailboxCaseBreached|MailboxPriorityCaseBreachingSoon"'],
                "equal": ["process"],
            },
        ],
        "receivers": receivers,
    }
