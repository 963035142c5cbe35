"""End to end: live metrics -> Prometheus with the generated rules -> Alertmanager with the
generated routes -> e-mail to the process's managers (and the chat webhook).

A real Prometheus and a real Alertmanager (Debian's `prometheus`, `prometheus-alertmanager`),
an SMTP sink (aiosmtpd) and a chat-webhook sink, all on 127.0.0.1 free ports in temporary
directories. Short intervals: scrape and rule evaluation every second, every rule's `for`
1 s, Alertmanager's group waits and group_interval 1 s, repeat_interval 5 s (REPEAT; the
shipped 4 h could never show a repeat within a test). Prometheus scrapes the URL of the
`metrics_target` fixture: the stream worker (`availability stream`) fed by traffic that
breaks a queue's service level, then mends it.

The test: one alert mail per repeat interval to that process's managers (never two at once),
naming the process, what was promised and the service level measured; then exactly one mail
saying it is over, and nothing more after waiting past the repeat interval, when a repeat would
show. Every mail goes to the managers of the process it names (or the default address), and the
chat webhook hears both. Without the binaries the test is skipped locally and fails in CI (env CI
set; .ci/run sets it).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest
import yaml

from availability.settings import DEVELOPMENT_KEY
from dashboards.alerting import alertmanager
from dashboards.alerting.files import DASHBOARD_URL, MANAGERS, ROOT
from dashboards.alerting.prometheus import prometheus_rules
from dashboards.alerting.rules import sl_promise
from dashboards.grafana.files import promql_expressions
from ingest.boundary import Boundary, Rejection
from ingest.kafka.publisher import KafkaPublisher
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements, load_agreements
from schemas.events import encode
from tests.conftest import ev, free_port, importorfail, unavailable
from tests.integration.streaming import Worker, cli, environment

ALERT = "QueueServiceLevelBelowTarget"
WAIT = 30.0  # seconds for each mail; the whole test stays under 90 s
REPEAT = 5.0  # Alertmanager's repeat_interval in the test, seconds: a firing group repeats its mail this often
GROUP_INTERVAL = 1.0  # seconds; Alertmanager looks at a group (and may repeat) once per group interval
JOB = "availability-stream"


# -- the metrics under test ---------------------------------------------------------------------------


class MetricsTarget(Protocol):
    """What `metrics_target` yields.

    - `url`: the http URL Prometheus scrapes, e.g. `http://127.0.0.1:50123/metrics`; the
      metrics of docs/live-metrics.md, with the shipped agreements (schemas/default_agreements.yaml).
    - `process`: the id of the queue whose service level the traffic breaks; that queue is open
      (`availability_queue_open` 1) from the first scrape to the end of the test.
    - `break_service_level()`: called once Prometheus has scraped the target twice; makes the
      queue's service level over the rule's 30-minute window fall below its target (with at
      least 5 contacts in the base), and returns that service level as a fraction (0.2). The
      counters must already exist (at 0 or more) before, so that `increase()` sees the change.
    - `recover()`: called after the alert mail; brings the service level over the window back
      to the target or above, the queue still open. Both return without waiting for a scrape.
    """

    url: str
    process: str

    def break_service_level(self) -> float: ...

    def recover(self) -> None: ...


@dataclass
class StreamWorkerTarget:
    """The real stream worker, fed through Kafka with CallGuide events of a simulated Tuesday
    morning, its clock started at that morning (inside kundreskontra's opening hours)."""

    url: str
    process: str
    worker: Worker
    publisher: KafkaPublisher
    start: datetime
    sent: int = 0  # contacts
    published: int = 0  # events

    def __post_init__(self) -> None:
        # As CallGuide's events would go: through the ingest boundary (the worker rejects agent
        # ids that were not pseudonymised there), with the key the worker uses (none set).
        agreements = load_agreements(None)
        self.boundary = Boundary(agreements, Pseudonymiser(DEVELOPMENT_KEY.encode(), agreements))

    def _contacts(self, waits: Sequence[tuple[float, str]]) -> None:
        events = []
        for wait, outcome in waits:
            self.sent += 1
            queued = self.start + timedelta(seconds=self.sent)
            left = (queued + timedelta(seconds=wait)).isoformat()
            data = {"call_id": f"e2e-{self.sent}", "queue": self.process}
            events += [
                ev("call.queued", queued.isoformat(), **data),
                ev(f"call.{outcome}", left, **data, **({"agent": "a1"} if outcome == "answered" else {})),
            ]
        accepted = [self.boundary.accept(encode(e)) for e in events]
        assert not [a for a in accepted if isinstance(a, Rejection)], accepted
        self.published += self.publisher.publish([a for a in accepted if not isinstance(a, Rejection)])
        self.worker.wait_for(lambda: self.worker.processed() >= self.published, "the worker storing the contacts")

    def quiet(self) -> None:
        self._contacts([(10, "answered")])

    def break_service_level(self) -> float:
        # 2 answered within 60 s, 5 answered after 120 s, 3 abandoned after 30 s: 2 / 10.
        self._contacts([(10, "answered")] * 2 + [(120, "answered")] * 5 + [(30, "abandoned")] * 3)
        return 0.2

    def recover(self) -> None:
        self._contacts([(10, "answered")] * 40)  # 42 of 50 within 60 s: 84 %, the target is 80 %


@pytest.fixture
def metrics_target(tmp_path: Path, kafka_bootstrap: str) -> Iterator[MetricsTarget]:
    """`availability stream` on a web port, with the shipped agreements, fed through Kafka."""
    env = environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.")
    cli(env, "topics", "create")
    port = free_port()
    start = datetime(2026, 11, 24, 9, 30, tzinfo=ZoneInfo("Europe/Stockholm"))  # a Tuesday
    # The live state's "now" is a clock (the wall clock in production); this one starts at the
    # simulated Tuesday morning, inside kundreskontra's opening hours.
    worker = Worker(env, tmp_path / "wh", "", port, "--clock-start", start.isoformat())
    with KafkaPublisher(kafka_bootstrap, env["AVAILABILITY_TOPIC_PREFIX"]) as publisher:
        target = StreamWorkerTarget(f"http://127.0.0.1:{port}/metrics", "kundreskontra", worker, publisher, start)
        target.quiet()  # the counters exist before the first scrape
        try:
            yield target
        finally:
            worker.stop()


# -- binaries, ports, processes ------------------------------------------------------------------------


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    unavailable(f"{names[0]} not installed (apt-get install prometheus prometheus-alertmanager)")


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready at {self.url}:\n{self.logs()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, args: list[str], base: Path, port: int) -> Server:
    log = base / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


# -- sinks ----------------------------------------------------------------------------------------------


@dataclass
class Mail:
    recipients: frozenset[str]
    message: EmailMessage
    received: float  # time.monotonic() when the sink took it

    @property
    def alert(self) -> str:
        return str(self.message["X-Availability-Alert"])

    @property
    def process(self) -> str:
        return str(self.message["X-Availability-Process"])

    @property
    def status(self) -> str:
        return str(self.message["X-Availability-Status"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, f"no text part in {self.message}"
        return str(part.get_content())


class SmtpSink:
    """Collects what Alertmanager sends to its smarthost."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.mails.append(Mail(frozenset(a.lower() for a in envelope.rcpt_tos), message, time.monotonic()))
        return "250 OK"

    def snapshot(self) -> list[Mail]:
        with self.lock:
            return list(self.mails)

    def wait_for(self, what: str, predicate: Callable[[Mail], bool], timeout: float = WAIT) -> Mail:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.snapshot() if predicate(m)]
            if found:
                return found[0]
            time.sleep(0.2)
        seen = [(m.alert, m.process, m.status) for m in self.snapshot()]
        raise AssertionError(f"no {what} within {timeout:.0f} s; mails so far: {seen}")


class ChatSink:
    """Collects Alertmanager's webhook posts (what a chat relay would receive)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/chat"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agreements() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="module")
def managers(agreements: Agreements) -> alertmanager.Managers:
    return alertmanager.load_managers(ROOT / MANAGERS, agreements)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    importorfail("aiosmtpd", "a dev dependency: pip install -e '.[dev]'")
    sink = SmtpSink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def chat_sink() -> Iterator[ChatSink]:
    sink = ChatSink()
    sink.thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()


@pytest.fixture
def alertmanager_server(
    tmp_path: Path, managers: alertmanager.Managers, smtp_sink: SmtpSink, chat_sink: ChatSink
) -> Iterator[Server]:
    """Alertmanager with the generated routes; mail to the sink, short intervals."""
    exe = binary("prometheus-alertmanager", "alertmanager")
    base = tmp_path / "alertmanager"
    base.mkdir()
    test_managers = replace(
        managers,
        smarthost=f"127.0.0.1:{smtp_sink.port}",
        require_tls=False,
        chat_webhook_url=chat_sink.url,
        timing=alertmanager.Timing(
            group_wait="1s",
            critical_group_wait="1s",
            group_interval=f"{GROUP_INTERVAL:.0f}s",
            repeat_interval=f"{REPEAT:.0f}s",
            resolve_timeout="10s",
        ),
    )
    (base / "alertmanager.yml").write_text(
        yaml.safe_dump(alertmanager.config(test_managers), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    port = free_port()
    server = start(
        "alertmanager",
        [
            exe,
            f"--config.file={base / 'alertmanager.yml'}",
            f"--storage.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single instance
        ],
        base,
        port,
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Prometheus:
    server: Server

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.server.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
            return result

    def wait_scraped(self, samples: int = 2, timeout: float = 20.0) -> None:
        """Until the target answered `samples` scrapes (so that counters have a value before
        the traffic moves them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(f'sum_over_time(up{{job="{JOB}"}}[1m])')
            if result and float(result[0]["value"][1]) >= samples:
                return
            time.sleep(0.25)
        raise AssertionError(f"Prometheus did not scrape the target {samples} times:\n{self.server.logs()}")


@pytest.fixture
def prometheus(
    tmp_path: Path, agreements: Agreements, metrics_target: MetricsTarget, alertmanager_server: Server
) -> Iterator[Prometheus]:
    """Prometheus with the generated rules (every `for` 1 s), scraping `metrics_target` every second."""
    exe = binary("prometheus")
    base = tmp_path / "prometheus"
    base.mkdir()
    rules = prometheus_rules(agreements, dashboard_url=DASHBOARD_URL, for_override="1s")
    (base / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    target = urllib.parse.urlsplit(metrics_target.url)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_server.url.split("//")[1]]}]}]},
        "scrape_configs": [
            {
                "job_name": JOB,
                "scheme": target.scheme,
                "metrics_path": target.path or "/metrics",
                "static_configs": [{"targets": [target.netloc]}],
            }
        ],
    }
    (base / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    server = start(
        "prometheus",
        [
            exe,
            f"--config.file={base / 'prometheus.yml'}",
            f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        base,
        port,
    )
    try:
        yield Prometheus(server)
    finally:
        server.stop()


# -- the test -------------------------------------------------------------------------------------------


def percentages(text: str) -> list[float]:
    """`20%` as Prometheus's humanizePercentage writes it (not `80 %`, the agreement's style)."""
    return [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)% besvarades inom servicenivåtiden", text)]


def test_a_service_level_breach_mails_the_managers_once_per_repeat_and_once_when_it_is_over(
    metrics_target: MetricsTarget,
    prometheus: Prometheus,
    smtp_sink: SmtpSink,
    chat_sink: ChatSink,
    managers: alertmanager.Managers,
    agreements: Agreements,
) -> None:
    process = metrics_target.process
    queue = agreements.queues[process]
    recipients = frozenset(managers.managers.get(process, managers.default))

    def ours(status: str) -> Callable[[Mail], bool]:
        return lambda m: m.alert == ALERT and m.process == process and m.status == status

    prometheus.wait_scraped()
    measured = metrics_target.break_service_level()
    firing = smtp_sink.wait_for(f"{ALERT} mail for {process}", ours("firing"))

    assert firing.recipients == recipients
    assert firing.subject == f"Larm: Servicenivån under målet: {queue.name}"
    body = firing.body
    assert body.startswith(f"{queue.name}: "), body
    assert f"Lovat: {sl_promise(queue)}." in body, body  # e.g. 80 % besvarade inom 60 s
    shown = percentages(body)
    assert shown and abs(shown[0] - 100 * measured) <= 5, (shown, measured, body)
    assert f"{DASHBOARD_URL}?var-queue={process}" in body

    # Every PromQL expression of the wall and the mailbox dashboard runs on this Prometheus;
    # the wall's 30-minute ratios for the process are what the traffic made: service level
    # 2/10 and answer rate 7/10 (answered 2 + 5 of 2 + 5 + 3 abandoned).
    ratios = []
    for expr in promql_expressions():
        result = prometheus.query(expr)
        if "increase(" in expr:
            ratios += [float(r["value"][1]) for r in result if r["metric"].get("queue") == process]
    assert sorted(ratios) == pytest.approx([0.2, 0.7], abs=0.02), ratios

    metrics_target.recover()
    resolved = smtp_sink.wait_for(f"resolved {ALERT} mail for {process}", ours("resolved"))
    assert resolved.recipients == recipients
    assert resolved.subject == f"Upphört: Servicenivån under målet: {queue.name}"
    assert "Larmet har upphört" in resolved.body

    # Wait past the point where a repeat would show: Alertmanager repeats a group that still
    # has a firing alert once REPEAT has passed, at its next look (every GROUP_INTERVAL). An
    # alert that did not really end (a second series of it still firing), or a resolved mail
    # sent again, would arrive in this window; with the shipped 4 h nothing could.
    time.sleep(max(0.0, resolved.received + REPEAT + 2 * GROUP_INTERVAL + 1 - time.monotonic()))
    mails = smtp_sink.snapshot()
    alert_mails = [m for m in mails if m.alert == ALERT and m.process == process]
    statuses = [m.status for m in alert_mails]
    # While the breach lasted: one firing mail per repeat interval (how long it lasted decides
    # whether a reminder came); then exactly one resolved mail, and nothing after it.
    assert statuses[-1:] == ["resolved"] and set(statuses[:-1]) == {"firing"}, statuses
    fired = [m.received for m in alert_mails[:-1]]
    gaps = [later - earlier for earlier, later in pairwise(fired)]
    assert all(gap >= REPEAT - 0.5 for gap in gaps), f"two firing mails within one repeat interval: {gaps}"
    for mail in mails:  # whatever else the traffic set off went to the right people
        assert mail.recipients == frozenset(managers.managers.get(mail.process, managers.default)), mail.subject
    chat = [
        (p["status"], p["commonLabels"].get("process"))
        for p in chat_sink.posts
        if p["groupLabels"].get("alertname") == ALERT
    ]
    assert ("firing", process) in chat and ("resolved", process) in chat, chat_sink.posts
