"""End to end: the outlook warns before the breach (issue #15, docs/forecasting.md).

An under-staffed morning in kundreskontra (service level 80 % within 60 s), through the real
stream worker, a real Prometheus with the generated rules and a real Alertmanager with the
generated routes (the harness of tests/integration/test_alerting_e2e.py: every rule's `for` 1 s,
so what is tested is what the metrics say, not how long the rules wait):

1. Seven calls answered within 10 s: the 30-minute service level is 100 %.
2. One agent, busy; ten callers waiting for ten minutes already, far past T. Nothing is broken
   yet: none of the ten has ended. But they will end outside T, and 7 of 17 is 41 %: the outlook
   expects the breach within a minute, and `QueueServiceLevelAtRisk` fires, its mail saying how
   many more agents are needed. When it does, Prometheus's 30-minute service level is still at
   target and `QueueServiceLevelBelowTarget` is not firing.
3. The ten give up: 7 within 60 s of 17 in the base is 41 %, and the breach alert follows.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from dashboards import kpi_promql
from ingest.boundary import Rejection
from schemas.events import encode
from tests.conftest import ev
from tests.integration.test_alerting_e2e import (  # noqa: F401  (pytest fixtures, used by name)
    Mail,
    Prometheus,
    SmtpSink,
    StreamWorkerTarget,
    agreements,
    alertmanager_server,
    chat_sink,
    managers,
    metrics_target,
    prometheus,
    smtp_sink,
)

pytestmark = pytest.mark.integration

AT_RISK, BREACH = "QueueServiceLevelAtRisk", "QueueServiceLevelBelowTarget"
WAIT = 60.0  # seconds for each mail


def publish(target: StreamWorkerTarget, events: list) -> None:
    accepted = [target.boundary.accept(encode(e)) for e in events]
    assert not [a for a in accepted if isinstance(a, Rejection)], accepted
    target.published += target.publisher.publish([a for a in accepted if not isinstance(a, Rejection)])
    target.worker.wait_for(lambda: target.worker.processed() >= target.published, "the worker storing the events")


def test_the_outlook_warns_before_the_service_level_breaks(
    metrics_target: StreamWorkerTarget,  # noqa: F811  (the fixtures imported above)
    prometheus: Prometheus,  # noqa: F811
    smtp_sink: SmtpSink,  # noqa: F811
) -> None:
    target, queue = metrics_target, metrics_target.process
    prometheus.wait_scraped()
    t0 = target.start - timedelta(minutes=10)  # the morning so far: inside the window, before the clock's now

    target._contacts([(10, "answered")] * 6)  # with quiet()'s one: seven within 60 s
    waiting = [f"risk-{i}" for i in range(10)]
    publish(
        target,
        [ev("agent.state", t0.isoformat(), agent="a1", state="busy", queues=[queue])]
        + [
            ev("call.queued", (t0 + timedelta(seconds=20 + i)).isoformat(), call_id=c, queue=queue)
            for i, c in enumerate(waiting)
        ],
    )

    def ours(alert: str):
        return lambda m: m.alert == alert and m.process == queue and m.status == "firing"

    warned: Mail = smtp_sink.wait_for(AT_RISK, ours(AT_RISK), timeout=WAIT)
    # Nothing was broken yet: the rule's own service level over 30 minutes is at target.
    level = prometheus.query(kpi_promql.service_level("30m", f'queue="{queue}"'))
    assert level and float(level[0]["value"][1]) >= 0.8, level
    assert not prometheus.query(f'ALERTS{{alertname="{BREACH}"}}')
    needed = re.search(r"(\d+) fler agenter behövs i Kundreskontra", warned.body)
    assert needed and int(needed.group(1)) >= 1, warned.body

    # The ten give up: the promise is now broken.
    publish(
        target,
        [
            ev("call.abandoned", (target.start + timedelta(seconds=i)).isoformat(), call_id=c, queue=queue)
            for i, c in enumerate(waiting)
        ],
    )
    smtp_sink.wait_for(BREACH, ours(BREACH), timeout=WAIT)
