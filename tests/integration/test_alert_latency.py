"""Breach to mail, measured from outside: the critical alerts reach the managers within 60 s.

Issue #15 (item 4). Everything real and as shipped, on 127.0.0.1 free ports in temporary
directories: Kafka (a topic prefix of the test's own), the CallGuide webhook (`availability
ingest webhook`) taking the caller's CloudEvents over HTTP, the stream worker (`availability
stream`, the wall clock), Prometheus scraping it and evaluating the GENERATED rule file
(deploy/prometheus/rules/availability.rules.yml, its real `for` values), Alertmanager with the
GENERATED configuration (deploy/alertmanager/alertmanager.yml: its routes, group waits and
receivers; only the SMTP relay and the chat webhook pointed at the sinks here) and an SMTP server
(aiosmtpd). The harness is that of tests/integration/test_alerting_e2e.py.

The agreements: kundreskontra's queue and mailbox on a 24-hour calendar, the queue with
T = 20 s, the mailbox's priority cases due within 2 h. One caller queues and nobody is ready; one
priority mail arrives, dated so that its last business hour starts 45 s later. The breaches
(docs/alerts.md), computed from the event times:

- `QueueLongWait`: the caller's wait passes 3 × T = 60 s (queued + 60 s);
- `MailboxPriorityCaseBreachingSoon`: the case enters its last business hour (opened + 2 h − 1 h).

Each is measured to the moment the SMTP server has the alert's mail and must be under 60 s.
Prometheus scrapes and evaluates every 15 s, as deploy/prometheus/prometheus.yml and the
container profiles ship it, and with AVAILABILITY_ALERT_LATENCY_5S=1 also every 5 s (what the
issue measured). Every wait is bounded: the test fails, it never hangs.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from availability.settings import DEVELOPMENT_KEY
from dashboards.alerting.alertmanager import load_managers
from dashboards.alerting.files import ALERTMANAGER_CONFIG, MANAGERS, PROMETHEUS_RULES, ROOT
from ingest.boundary import Boundary, Rejection
from ingest.kafka.publisher import KafkaPublisher
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements, load_agreements
from schemas.events import encode
from tests.conftest import ev, free_port, importorfail
from tests.integration.streaming import Webhook, Worker, cli, environment
from tests.integration.test_alerting_e2e import JOB, ChatSink, Mail, Prometheus, Server, SmtpSink, binary, start

pytestmark = pytest.mark.integration

PROCESS = "kundreskontra"  # a queue and mailbox of the shipped agreements: its managers' route and words
T = 20  # the queue's service level time, seconds
PRIORITY_TARGET = timedelta(hours=2)
LEAD = 45.0  # seconds from sending the mail to its case entering the last business hour
LIMIT = 60.0  # breach -> mail, seconds (issue #15)
DEADLINE = 150.0  # seconds after a breach before the test gives up on its mail
TZ = ZoneInfo("Europe/Stockholm")

AGREEMENTS = {
    "timezone": "Europe/Stockholm",
    "calendars": {
        "dygnet": {"hours": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    },
    "queues": {
        PROCESS: {
            "name": "Kundreskontra",
            "calendar": "dygnet",
            "service_level_seconds": T,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        }
    },
    "mailboxes": {
        PROCESS: {
            "name": "Kundreskontra",
            "calendar": "dygnet",
            "response_target": "8h",
            "priority_response_target": f"{PRIORITY_TARGET.seconds // 3600}h",
        }
    },
}


@dataclass
class Stack:
    prometheus: Prometheus
    smtp: SmtpSink
    webhook: Webhook
    worker: Worker
    publisher: KafkaPublisher
    boundary: Boundary
    agreements: Agreements
    interval: int


# The shipped interval (15 s) always; 5 s, what the issue measured (29 s and 14 s, docs/alerts.md),
# with AVAILABILITY_ALERT_LATENCY_5S=1: the suite stays under its time budget with one run.
INTERVALS = [15, 5] if os.environ.get("AVAILABILITY_ALERT_LATENCY_5S") == "1" else [15]


@pytest.fixture(params=INTERVALS, ids=[f"every-{i}s" for i in INTERVALS])
def stack(request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str) -> Iterator[Stack]:
    """Kafka topics, the webhook, the worker, the SMTP and chat sinks, Alertmanager and
    Prometheus (scrape and evaluation every `request.param` seconds), all started and ready."""
    importorfail("aiosmtpd", "a dev dependency: pip install -e '.[dev]'")
    interval: int = request.param
    prometheus_exe = binary("prometheus")
    alertmanager_exe = binary("prometheus-alertmanager", "alertmanager")
    agreements_file = tmp_path / "agreements.yaml"
    agreements_file.write_text(yaml.safe_dump(AGREEMENTS, allow_unicode=True), encoding="utf-8")
    agreements = load_agreements(agreements_file)

    env = environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.")
    cli(env, "topics", "create")
    smtp, chat = SmtpSink(), ChatSink()
    smtp.controller.start()
    chat.thread.start()
    servers: list[Server] = []
    try:
        with (
            Worker(env, tmp_path / "wh", str(agreements_file), free_port()) as worker,
            Webhook(env, str(agreements_file), free_port()) as webhook,
            KafkaPublisher(kafka_bootstrap, env["AVAILABILITY_TOPIC_PREFIX"]) as publisher,
        ):
            # Alertmanager: the generated file, only its SMTP relay and chat webhook pointed here.
            base = tmp_path / "alertmanager"
            base.mkdir()
            config = yaml.safe_load((ROOT / ALERTMANAGER_CONFIG).read_text(encoding="utf-8"))
            config["global"] |= {"smtp_smarthost": f"127.0.0.1:{smtp.port}", "smtp_require_tls": False}
            for receiver in config["receivers"]:
                for hook in receiver.get("webhook_configs", []):
                    hook["url"] = chat.url
            (base / "alertmanager.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
            port = free_port()
            args = [
                alertmanager_exe,
                f"--config.file={base / 'alertmanager.yml'}",
                f"--storage.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]
            servers.append(start("alertmanager", args, base, port))

            # Prometheus: the generated rule file as it is.
            base = tmp_path / "prometheus"
            base.mkdir()
            (base / "rules.yml").write_bytes((ROOT / PROMETHEUS_RULES).read_bytes())
            every = f"{interval}s"
            prometheus_config = {
                "global": {"scrape_interval": every, "scrape_timeout": "4s", "evaluation_interval": every},
                "rule_files": ["rules.yml"],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [servers[0].url.split("//")[1]]}]}]},
                "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}],
            }
            (base / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config), encoding="utf-8")
            port = free_port()
            args = [
                prometheus_exe,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            servers.append(start("prometheus", args, base, port))
            boundary = Boundary(agreements, Pseudonymiser(DEVELOPMENT_KEY.encode(), agreements))
            yield Stack(Prometheus(servers[1]), smtp, webhook, worker, publisher, boundary, agreements, interval)
    finally:
        for server in reversed(servers):
            server.stop()
        chat.server.shutdown()
        chat.server.server_close()
        smtp.controller.stop()


def cloudevent(type_: str, at: datetime, **data: str) -> bytes:
    return json.dumps(
        {"specversion": "1.0", "id": f"lat-{uuid.uuid4().hex}", "source": "callguide", "type": type_,
         "time": at.isoformat(), "data": data}
    ).encode()  # fmt: skip


def wall(mail: Mail) -> float:
    """The Unix time the SMTP server took the mail (the sink notes time.monotonic())."""
    return mail.received + (time.time() - time.monotonic())


def first(smtp: SmtpSink, alert: str, by: float) -> Mail:
    """The first firing mail of `alert` for the process; fails at `by` (Unix time)."""

    def ours(m: Mail) -> bool:
        return m.alert == alert and m.process == PROCESS and m.status == "firing"

    return smtp.wait_for(f"{alert} mail for {PROCESS}", ours, timeout=max(0.0, by - time.time()))


def test_the_critical_alerts_reach_the_managers_within_a_minute_of_the_breach(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    worker, agreements = stack.worker, stack.agreements
    managers = load_managers(ROOT / MANAGERS, load_agreements())
    recipients = frozenset(managers.managers.get(PROCESS, managers.default))
    stack.prometheus.wait_scraped(samples=1, timeout=3 * stack.interval + 10)

    # The caller reaches the entrance; once the worker has it (Kafka and the consumer group are
    # up), the caller queues: the wait starts at the event's time.
    now = datetime.now(TZ)
    assert stack.webhook.post(cloudevent("call.offered", now, call_id="c1", entrance="0771-100 100",
                                         caller="+46 70-123 45 67"), "application/cloudevents+json") == 202  # fmt: skip
    worker.wait_for(lambda: worker.processed() >= 1, "the worker storing call.offered", timeout=60)
    queued = datetime.now(TZ)
    assert stack.webhook.post(cloudevent("call.queued", queued, call_id="c1", queue=PROCESS),
                              "application/cloudevents+json") == 202  # fmt: skip
    long_wait_breach = queued.timestamp() + 3 * T

    # A priority mail (the IMAP poller's way: the boundary, then Kafka), dated so that its case
    # enters its last business hour LEAD seconds from now.
    opened = datetime.now(TZ) - PRIORITY_TARGET + timedelta(hours=1, seconds=LEAD)
    mail = ev("mail.received", opened.isoformat(), source=f"imap/{PROCESS}", mailbox=PROCESS,
              message_id="<lat-1@example.se>", thread_id="lat-1", categories=["priority"])  # fmt: skip
    accepted = stack.boundary.accept(encode(mail))
    assert not isinstance(accepted, Rejection), accepted
    assert stack.publisher.publish([accepted]) == 1
    calendar = agreements.mailboxes[PROCESS].calendar
    soon_breach = opened.timestamp() + PRIORITY_TARGET.total_seconds() - 3600
    assert calendar.business_seconds(opened, datetime.fromtimestamp(soon_breach, TZ)) == pytest.approx(
        PRIORITY_TARGET.total_seconds() - 3600
    )  # a 24-hour calendar: business time is wall time

    # The worker shows both before their breaches (else the latency would be the pipeline's).
    def shown() -> bool:
        m = worker.metrics() or {}
        return (
            m.get(f'availability_queue_waiting{{queue="{PROCESS}"}}', 0) == 1
            and m.get(f'availability_mailbox_open_cases{{mailbox="{PROCESS}",priority="true"}}', 0) == 1
        )

    worker.wait_for(shown, "the worker showing the waiting caller and the open priority case", timeout=30)
    assert time.time() < min(long_wait_breach, soon_breach), "the events reached the worker after the breach"

    measured: dict[str, float] = {}
    for alert, breach in sorted(
        [("QueueLongWait", long_wait_breach), ("MailboxPriorityCaseBreachingSoon", soon_breach)], key=lambda a: a[1]
    ):
        got = first(stack.smtp, alert, by=breach + DEADLINE)
        measured[alert] = wall(got) - breach
        assert got.recipients == recipients, got.recipients
    with capsys.disabled():
        figures = ", ".join(f"{alert} {seconds:.1f} s" for alert, seconds in measured.items())
        print(f"\nbreach -> mail, Prometheus every {stack.interval} s: {figures}")
    for alert, seconds in measured.items():
        assert 0 < seconds < LIMIT, f"{alert}: the mail came {seconds:.1f} s after the breach (limit {LIMIT:.0f} s)"
    # Nothing fired before its breach: the queue's first mail is not an early one.
    early = [
        m.alert for m in stack.smtp.snapshot() if m.status == "firing" and wall(m) < min(long_wait_breach, soon_breach)
    ]
    assert not early, early
