"""dashboards/live_wall.py computes what Prometheus computes from the Grafana wall's own PromQL
(dashboards/grafana/wall.py QUEUE_EXPRS and MAILBOX_EXPRS), on the same samples.

The samples are scrapes a minute apart of two workers (each series with its `instance`, as
Prometheus stores them); live_wall reads them as the terminal wall does (History + build), and
promtool's rule unit test (Prometheus's real engine) evaluates every wall expression, `$queue`
and `$mailbox` replaced by `.*`, at the last scrape, expecting live_wall's values. The counters
start at 0 inside the range, so Prometheus's extrapolation of increase() toward the range's start
stops at that zero (Prometheus 2 and 3 alike) and the two agree exactly; that is the one case
where they must (docs/live-wall.md says how they differ otherwise).

promtool comes with Debian's `prometheus`; without it the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboards import kpi_promql
from dashboards.grafana.wall import MAILBOX_EXPRS, QUEUE_EXPRS
from dashboards.live_wall import History, MailboxRow, QueueRow, Sample, Wall, build, parse
from tests.conftest import unavailable

MINUTES = 30  # the scrapes are at 0 … 30 min; the expressions are evaluated at 30 min
# Beyond the wall's tiles, what the terminal also shows: the priority cases and the mailboxes' flag.
EXTRA_MAILBOX_EXPRS = {
    "priority_cases": kpi_promql.per("mailbox", "availability_mailbox_open_cases", kpi_promql.PRIORITY),
    "open": kpi_promql.mailbox_open(),
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool not installed (apt-get install prometheus)")
    return path


def _series(sample: Sample) -> str:
    labels = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}}"


def _number(value: float) -> str:
    return repr(float(value))


def rule_test(scrapes: Sequence[Sequence[Sample]], wall: Wall) -> dict[str, Any]:
    """A promtool rule-test file: the scrapes (one a minute) as input series, and each wall
    expression expecting live_wall's value per queue or mailbox (none where it has none)."""
    keys: dict[str, list[str]] = {}
    for minute, samples in enumerate(scrapes):
        for s in samples:
            if not s.name.startswith(("availability_queue_", "availability_mailbox_")):
                continue  # a worker's other metrics (histograms with +Inf, …) are not the wall's
            keys.setdefault(_series(s), ["_"] * len(scrapes))[minute] = _number(s.value)
    tests: list[dict[str, Any]] = []

    def expect(expr: str, label: str, rows: Sequence[QueueRow | MailboxRow], attr: str) -> None:
        ids = {r.queue if isinstance(r, QueueRow) else r.mailbox: getattr(r, attr) for r in rows}
        samples = [{"labels": f'{{{label}="{i}"}}', "value": float(v)} for i, v in sorted(ids.items()) if v is not None]
        tests.append({"expr": expr, "eval_time": f"{len(scrapes) - 1}m", "exp_samples": samples})

    for name, expr in QUEUE_EXPRS.items():
        expect(expr.replace("$queue", ".*"), "queue", wall.queues, name)
    for name, expr in {**MAILBOX_EXPRS, **EXTRA_MAILBOX_EXPRS}.items():
        expect(expr.replace("$mailbox", ".*"), "mailbox", wall.mailboxes, name)
    series = [{"series": k, "values": " ".join(v)} for k, v in keys.items()]
    return {
        "evaluation_interval": "1m",
        "tests": [{"name": "live wall", "interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }


def promtool_agrees(scrapes: Sequence[Sequence[Sample]], tmp_path: Path) -> Wall:
    """live_wall's wall of the last scrape (with the history of the others), after promtool found
    every wall expression gives the same; the wall, for more checks."""
    history = History()
    for minute, samples in enumerate(scrapes):
        counts = history.add(minute * 60.0, samples)
    wall = build(scrapes[-1], counts)
    path = tmp_path / "live-wall.test.yml"
    path.write_text(json.dumps(rule_test(scrapes, wall), indent=1), encoding="utf-8")  # JSON is YAML
    result = subprocess.run(
        [promtool(), "test", "rules", path.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return wall


QUEUES = ("q_open", "q_closed", "q_no_agents", "q_late_only", "q_quiet")
MAILBOXES = ("m_busy", "m_closed")
OUTCOMES = ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "flowed_out", "out_of_hours")


def synthetic_scrapes(seed: int = 13) -> list[list[Sample]]:
    """Two workers for 31 minutes. q_closed is closed with ready agents; q_no_agents is open with
    no agents' series; q_late_only has no answered_in_sl series; q_quiet gets only short abandons
    and callbacks (base 0). Worker w2 restarts at minute 17 (its counters start again from 0)."""
    rng = random.Random(seed)
    totals: dict[tuple[str, str, str], float] = {}
    scrapes = []
    for minute in range(MINUTES + 1):
        text = []
        for w in ("w1", "w2"):
            if w == "w2" and minute == 17:  # restarted
                totals |= {k: 0.0 for k in totals if k[0] == "w2"}
            for q in QUEUES:
                text.append(f'availability_queue_open{{queue="{q}",instance="{w}"}} {0 if q == "q_closed" else 1}')
                text.append(f'availability_queue_waiting{{queue="{q}",instance="{w}"}} {rng.randint(0, 4)}')
                text.append(
                    f'availability_queue_oldest_wait_seconds{{queue="{q}",instance="{w}"}} {rng.uniform(0, 300):.3f}'
                )
                if q != "q_no_agents":
                    for state in ("ready", "busy"):
                        text.append(
                            f'availability_queue_agents{{queue="{q}",state="{state}",instance="{w}"}} {rng.randint(0, 3)}'
                        )
                text.append(f'availability_queue_service_level_target{{queue="{q}",instance="{w}"}} 0.8')
                text.append(f'availability_queue_answer_rate_target{{queue="{q}",instance="{w}"}} 0.9')
                for outcome in OUTCOMES:
                    if q == "q_late_only" and outcome == "answered_in_sl":
                        continue
                    if q == "q_quiet" and outcome not in ("abandoned_short", "callback"):
                        continue
                    key = (w, q, outcome)
                    # 0 at minutes 0 and 1 (see the module docstring), then growing
                    if minute > 1:
                        totals[key] = totals.get(key, 0.0) + rng.choice((0, 0, 1, 2))
                    value = totals.setdefault(key, 0.0)
                    text.append(
                        f'availability_queue_contacts_total{{queue="{q}",outcome="{outcome}",instance="{w}"}} {value}'
                    )
                    text.append(
                        f'availability_queue_today_contacts{{queue="{q}",outcome="{outcome}",instance="{w}"}} {value + 7}'
                    )
            for m in MAILBOXES:
                text.append(f'availability_mailbox_open{{mailbox="{m}",instance="{w}"}} {0 if m == "m_closed" else 1}')
                for prio in ("true", "false"):
                    for metric in ("open_cases", "breached_cases", "breaching_within_hour"):
                        text.append(
                            f'availability_mailbox_{metric}{{mailbox="{m}",priority="{prio}",instance="{w}"}} {rng.randint(0, 5)}'
                        )
                text.append(
                    f'availability_mailbox_oldest_open_business_seconds{{mailbox="{m}",instance="{w}"}} {rng.uniform(0, 90000):.3f}'
                )
        scrapes.append(parse("\n".join(text) + "\n"))
    return scrapes


def test_every_wall_expression_in_prometheus_equals_live_wall(tmp_path: Path) -> None:
    wall = promtool_agrees(synthetic_scrapes(), tmp_path)
    q = {r.queue: r for r in wall.queues}
    # The cases the data was made for are there, so the comparison covers them:
    assert wall.window_seconds == 30 * 60
    assert q["q_closed"].agents_ready is None and q["q_no_agents"].agents_ready == 0
    assert q["q_open"].sl_30m is not None and 0 < q["q_open"].sl_30m < 1
    assert q["q_late_only"].sl_30m == 0 and q["q_late_only"].sl_today == 0
    assert q["q_quiet"].sl_30m is None and q["q_quiet"].sl_today is None
    assert {m.mailbox: m.is_open for m in wall.mailboxes} == {"m_busy": True, "m_closed": False}


def test_the_check_covers_every_tile_of_the_wall() -> None:
    """A tile added to the Grafana wall without its twin in live_wall fails here."""
    assert set(QUEUE_EXPRS) <= set(QueueRow.__dataclass_fields__)
    assert set(MAILBOX_EXPRS) <= set(MailboxRow.__dataclass_fields__)


def test_a_different_value_fails_the_check(tmp_path: Path) -> None:
    """The check can fail: one expected value off by one contact is caught by promtool."""
    scrapes = synthetic_scrapes()
    history = History()
    for minute, samples in enumerate(scrapes):
        counts = history.add(minute * 60.0, samples)
    wall = build(scrapes[-1], counts)
    first = wall.queues[0]
    assert first.waiting is not None
    wrong = Wall((QueueRow(**{**first.__dict__, "waiting": first.waiting + 1}), *wall.queues[1:]), wall.mailboxes, 0)
    path = tmp_path / "wrong.test.yml"
    path.write_text(json.dumps(rule_test(scrapes, wrong)), encoding="utf-8")
    result = subprocess.run([promtool(), "test", "rules", path.name], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "waiting" in result.stdout + result.stderr
