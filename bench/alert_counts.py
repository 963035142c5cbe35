"""Benchmark: how often each critical alert fires on simulated traffic, for its old and new `for`.

Issue #15 (item 4) asks the critical alerts to reach the managers within 60 s of the breach
without more alarms on the simulator's traffic. This runs the simulator (ingest/simulator,
the shipped agreements) through the project's own ingest boundary, Deriver and live state (the
stream worker's, stream_jobs/core/live.py, on the in-memory store), with the live state's clock
set to simulated time, and reads the exported gauges the way Prometheus would:

- a scrape and a rule evaluation every `--step` seconds (5 s, as issue #15 measured; the
  Prometheus configurations under deploy/ ship 15 s), both on the grid of multiples of the step
  since the epoch; a scrape at t sees every event with a time up to t (a worker that is not
  behind);
- each critical rule's condition evaluated on those samples exactly as its PromQL says (the
  queue's or mailbox's `…_open == 1` gate included);
- Prometheus's `for` semantics (rules/alerting.go): a series that turns true is pending from that
  evaluation (`activeAt`), becomes firing at the first evaluation at least `for` later, and goes
  back to inactive at the first evaluation where it is false. A *firing* is one pending → firing
  transition; it is counted in the local month of that evaluation.

Every rule is gated by its queue's or mailbox's calendar, so no rule can be true while no
calendar at all is open: only the evaluation instants inside the union of the opening hours are
computed (a night or a weekend resets every rule, as the gate would), and the events of a night
go to the Deriver as one batch before the morning's first scrape.

`CallGuideSilent` reads `source="callguide"`; the simulator's calls and agents come from
`simulator`, which stands for the CallGuide feed here. Its last-seen time is that of the latest
phone event up to t (the worker sees each event when it happens), and "some queue open all the
last 20 minutes" is the subquery `min_over_time(max(open)[20m:1m])`: the queues' calendars at
every whole minute in [t − 20 min, t].

    .venv/bin/python bench/alert_counts.py [--start 2026-01-01] [--days 90] [--scale 1] [--seed 42] [--step 5]

It prints, per rule, the firings per queue (or mailbox) and month for the old `for` (before
issue #15 item 4) and the new one (dashboards/alerting/rules.py), and the totals for a range of
`for` values. The figures of docs/alerts.md come from it.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from availability.settings import DEVELOPMENT_KEY
from dashboards.alerting.rules import CALLGUIDE_SILENCE, LONG_WAIT_FACTOR, rules
from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import Agreements, load_agreements
from schemas.events import Event, encode
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.store import MemoryStore

STEP = 5.0  # seconds: the scrape and evaluation interval of issue #15's measurement (--step)
PHONE_SOURCE = "simulator"  # the simulator's calls and agents: the CallGuide feed here
CRITICAL = ("QueueLongWait", "QueueNoAgentReady", "MailboxPriorityCaseBreachingSoon", "CallGuideSilent")
# The `for` of each critical rule before issue #15 item 4 (docs/alerts.md then), and CallGuideSilent's
# silence then (CALLGUIDE_SILENCE is now the old 20 minutes plus the old `for`).
OLD_FOR = {"QueueLongWait": 60.0, "QueueNoAgentReady": 300.0, "MailboxPriorityCaseBreachingSoon": 60.0,
           "CallGuideSilent": 60.0}  # fmt: skip
OLD_CALLGUIDE_SILENCE = 20 * 60.0
OLD = "/old"  # CallGuideSilent evaluated with the old silence: its state is kept under "CallGuideSilent/old"
SWEEP = (0.0, 15.0, 30.0, 45.0, 60.0, 120.0, 300.0)


def seconds(duration: str) -> float:
    """A Prometheus duration of one unit: `0s`, `30s`, `1m`, `5m`, `2h`."""
    return float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def new_for() -> dict[str, float]:
    return {r.alert: seconds(r.for_) for r in rules() if r.alert in CRITICAL}


# -- Prometheus's `for` ------------------------------------------------------------------------------


@dataclass
class Alerts:
    """The pending/firing state of one rule's series for one `for`, and the firings counted."""

    hold: float
    active: dict[str, tuple[float, bool]] = field(default_factory=dict)  # series -> (activeAt, firing)
    firings: Counter[tuple[str, str]] = field(default_factory=Counter)  # (series, month) -> firings

    def evaluate(self, t: float, true: set[str], month: str) -> None:
        for series in [s for s in self.active if s not in true]:
            del self.active[series]  # pending: dropped; firing: resolved
        for series in true:
            active_at, firing = self.active.setdefault(series, (t, False))
            if not firing and t - active_at >= self.hold:
                self.active[series] = (active_at, True)
                self.firings[(series, month)] += 1

    def reset(self) -> None:
        self.active.clear()


# -- the opening hours ---------------------------------------------------------------------------------


def open_windows(agreements: Agreements, start: date, days: int) -> list[tuple[float, float]]:
    """The union of every queue's and mailbox's opening intervals over the days, as epoch seconds."""
    calendars = {q.calendar_id: q.calendar for q in agreements.queues.values()}
    calendars |= {m.calendar_id: m.calendar for m in agreements.mailboxes.values()}
    spans: list[tuple[float, float]] = []
    tz = agreements.timezone
    for i in range(days):
        day = start + timedelta(days=i)
        for cal in calendars.values():
            midnight = datetime.combine(day, datetime.min.time(), tz)
            for iv in cal.intervals_on(day):  # local wall-clock minutes, as the calendar reads them
                opens, closes = midnight + timedelta(minutes=iv.start), midnight + timedelta(minutes=iv.end)
                spans.append((opens.timestamp(), closes.timestamp()))
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def grid(windows: list[tuple[float, float]], step: float) -> Iterator[tuple[float, bool]]:
    """Every evaluation instant inside the windows, and whether it follows the previous one
    directly (False after a gap, where every rule was false)."""
    previous = -math.inf
    for a, b in windows:
        t = math.ceil(a / step) * step
        while t < b:
            yield t, t - previous == step
            previous = t
            t += step


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Run:
    agreements: Agreements
    start: date
    days: int
    seed: int
    scale: float
    holds: dict[str, tuple[float, ...]]
    step: float = STEP
    alerts: dict[str, dict[float, Alerts]] = field(default_factory=dict)
    evaluations: int = 0
    events: int = 0

    def __post_init__(self) -> None:
        self.alerts = {name: {h: Alerts(h) for h in holds} for name, holds in self.holds.items()}

    def run(self) -> None:
        agreements = self.agreements
        tz = agreements.timezone
        boundary = Boundary(agreements, Pseudonymiser(DEVELOPMENT_KEY.encode(), agreements))
        deriver = Deriver(MemoryStore(), agreements, track_changes=True)
        now = [datetime.fromtimestamp(0, UTC)]
        live = LiveState(agreements, clock=lambda: now[0])
        queues, mailboxes = agreements.queues, agreements.mailboxes
        long_wait = {qid: LONG_WAIT_FACTOR * q.service_level_seconds for qid, q in queues.items()}
        silences = {"CallGuideSilent": seconds(CALLGUIDE_SILENCE), "CallGuideSilent" + OLD: OLD_CALLGUIDE_SILENCE}
        minute_open: dict[float, bool] = {}

        def some_queue_open(minute: float) -> bool:
            cached = minute_open.get(minute)
            if cached is None:
                at = datetime.fromtimestamp(minute, UTC)
                cached = minute_open[minute] = any(q.calendar.is_open(at) for q in queues.values())
            return cached

        source = iter(simulate(agreements, self.start, self.days, self.seed, self.scale))
        pending: Event | None = next(source, None)
        first = datetime.combine(self.start, datetime.min.time(), tz).timestamp()
        phone_seen = first  # the worker's start: every source it must hear from starts as seen then

        for t, follows in grid(open_windows(agreements, self.start, self.days), self.step):
            batch: list[Event] = []
            while pending is not None and pending.time.timestamp() <= t:
                if pending.source == PHONE_SOURCE:
                    phone_seen = max(phone_seen, pending.time.timestamp())
                accepted = boundary.accept(encode(pending))
                assert not isinstance(accepted, Rejection), accepted
                batch.append(accepted)
                pending = next(source, None)
            if batch:
                result = deriver.apply(batch)
                assert not result.failed, result.failed[:3]
                live.observe(batch, result)
                self.events += len(batch)
            now[0] = datetime.fromtimestamp(t, UTC)
            g = gauges(live)
            true: dict[str, set[str]] = {
                "QueueLongWait": {
                    q for q in queues if g[("queue_open", q)] == 1 and g[("oldest_wait", q)] > long_wait[q]
                },
                "QueueNoAgentReady": {
                    q
                    for q in queues
                    if g[("queue_open", q)] == 1 and g[("waiting", q)] > 0 and not g.get(("ready", q), 0) > 0
                },
                "MailboxPriorityCaseBreachingSoon": {
                    m for m in mailboxes if g[("mailbox_open", m)] == 1 and g[("priority_soon", m)] > 0
                },
            }
            for name, silence in silences.items():
                true[name] = set()
                if t - phone_seen > silence:
                    last = math.floor(t / 60) * 60
                    steps = [last - 60 * i for i in range(int(silence // 60) + 1) if last - 60 * i >= t - silence]
                    if all(some_queue_open(m) for m in steps):
                        true[name].add("telefoni")
            month = now[0].astimezone(tz).strftime("%Y-%m")
            for name, by_hold in self.alerts.items():
                for alerts in by_hold.values():
                    if not follows:
                        alerts.reset()
                    alerts.evaluate(t, true[name], month)
            self.evaluations += 1


def gauges(live: LiveState) -> dict[tuple[str, str], float]:
    """The samples the rules read, from the live state's /metrics families: its queue and
    mailbox sections, which `collect()` serves. Its other sections are left out: no critical rule
    reads them, and the outlook (Erlang predictions per queue) would take most of the run."""
    wanted = {
        "availability_queue_open": "queue_open",
        "availability_queue_oldest_wait_seconds": "oldest_wait",
        "availability_queue_waiting": "waiting",
        "availability_mailbox_open": "mailbox_open",
    }
    out: dict[tuple[str, str], float] = {}
    now = live.now()
    for family in [*live._queue_families(now), *live._mailbox_families(now)]:
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name in wanted:
                out[(wanted[name], labels.get("queue") or labels["mailbox"])] = sample.value
            elif name == "availability_queue_agents" and labels["state"] == "ready":
                out[("ready", labels["queue"])] = sample.value
            elif name == "availability_mailbox_breaching_within_hour" and labels["priority"] == "true":
                out[("priority_soon", labels["mailbox"])] = sample.value
    return out


# -- the report --------------------------------------------------------------------------------------


def months_of(start: date, days: int) -> list[str]:
    return sorted({(start + timedelta(days=i)).strftime("%Y-%m") for i in range(days)})


def series_of(run: Run, name: str) -> list[str]:
    if name.startswith("Queue"):
        return list(run.agreements.queues)
    if name.startswith("Mailbox"):
        return list(run.agreements.mailboxes)
    return ["telefoni"]


def report(run: Run, old: dict[str, float], new: dict[str, float], seconds_taken: float) -> str:
    months = months_of(run.start, run.days)
    lines = [
        f"simulate(start={run.start}, days={run.days}, seed={run.seed}, scale={run.scale:g}), shipped agreements; "
        f"{run.events} events, {run.evaluations} evaluations every {run.step:g} s in opening hours; "
        f"{seconds_taken:.0f} s on {platform.machine()} ({platform.processor() or platform.platform()}), "
        f"Python {platform.python_version()}",
        "",
    ]
    for name in CRITICAL:
        lines.append(f"## {name}: firings per month, old for {old[name]:g} s -> new for {new[name]:g} s")
        if name == "CallGuideSilent":
            lines[-1] += f" (silence {OLD_CALLGUIDE_SILENCE / 60:g} min -> {CALLGUIDE_SILENCE})"
        lines.append("")
        lines.append("| " + " | ".join(["series", *months, "total"]) + " |")
        lines.append("|" + "---|" * (len(months) + 2))
        for series in series_of(run, name):
            cells = []
            for variant, hold in ((name + OLD if name == "CallGuideSilent" else name, old[name]), (name, new[name])):
                firings = run.alerts[variant][hold].firings
                per = [firings[(series, m)] for m in months]
                cells.append([*per, sum(per)])
            row = [f"{a} -> {b}" if a != b else f"{a}" for a, b in zip(*cells, strict=True)]
            lines.append("| " + " | ".join([series, *row]) + " |")
        lines.append("")
        variants = [name + OLD, name] if name == "CallGuideSilent" else [name]
        for variant in variants:
            sweep = []
            for hold, alerts in sorted(run.alerts[variant].items()):
                per_month = [sum(n for (_, m), n in alerts.firings.items() if m == month) for month in months]
                sweep.append(f"for {hold:g} s: {sum(per_month)} ({', '.join(map(str, per_month))} by month)")
            label = f"silence {OLD_CALLGUIDE_SILENCE / 60:g} min" if variant.endswith(OLD) else "all series"
            if name == "CallGuideSilent" and not variant.endswith(OLD):
                label = f"silence {CALLGUIDE_SILENCE}"
            lines.append(f"{label}: " + "; ".join(sweep))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--step", type=float, default=STEP, help="scrape and evaluation interval, seconds")
    args = parser.parse_args()
    old, new = OLD_FOR, new_for()
    holds = {name: tuple(sorted({*SWEEP, old[name], new[name]})) for name in CRITICAL}
    holds["CallGuideSilent" + OLD] = holds["CallGuideSilent"]
    run = Run(load_agreements(), args.start, args.days, args.seed, args.scale, holds, args.step)
    started = time.perf_counter()
    run.run()
    print(report(run, old, new, time.perf_counter() - started))


if __name__ == "__main__":
    main()
