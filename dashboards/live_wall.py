"""The supervisors' wall (dashboards/grafana/wall.py) computed from the stream worker's own
`/metrics` text, for a terminal: the same numbers Grafana shows, with the same formulas.

Each metric is aggregated across workers as `kpi_promql.AGGREGATION` says (counts `sum`, ages and
calendar values `max`, by `queue` or `mailbox`), and the outcome sets are kpi_promql's strings
split on "|", so the definitions exist once. Per queue, as the wall's PromQL:

- agents ready: `(READY or 0 * OPEN) and on (queue) (OPEN == 1)`: no value while the queue is
  closed (or unknown), 0 when it is open and no agent is ready;
- service level and answer rate: `(numerator or 0 * base) / (base > 0)`: the numerator (0 when
  it has no series) over the base; no value at all when the base is 0 or has no series.

The 30-minute figures need counters over time, so `History` keeps the scrapes of
`availability_queue_contacts_total`. A series' increase is Prometheus's: the sum of its steps
between consecutive scrapes, where a value lower than the one before means the counter
restarted, so it counts from 0. Unlike Prometheus's `increase()` nothing is extrapolated: the
window runs from the latest scrape at or before `now − 30 min` to now when that scrape lies at
most `slack` seconds before `now − 30 min` (so it covers 30 minutes whole, and at most `slack`
more); otherwise (a shorter history, or a gap in the scrapes: an unreachable worker, a laptop
that slept) from the first scrape inside the 30 minutes, so it covers less
(`WindowCounts.seconds` says how much), never a gap's hours. A series needs two scrapes in the
window, as in Prometheus. A time earlier than the last scrape's (a clock stepped back) starts
the history afresh. tests/integration/test_live_wall_promql.py checks every figure against Prometheus's
own engine evaluating the wall's expressions on the same samples.

Pure: text in, dataclasses out; fetching and drawing are availability/cli/wall.py.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from dashboards import kpi_promql

WINDOW_SECONDS = 30 * 60.0  # the wall's "30 min" tiles
SLACK_SECONDS = 60.0  # default: how far before the window's start its first scrape may lie
CONTACTS_TOTAL = "availability_queue_contacts_total"
TODAY = "availability_queue_today_contacts"

IN_SL = frozenset(kpi_promql.IN_SL.split("|"))
ANSWERED = frozenset(kpi_promql.ANSWERED.split("|"))
BASE = frozenset(kpi_promql.BASE.split("|"))

Labels = tuple[tuple[str, str], ...]  # a series' labels, sorted: its identity


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float

    @property
    def key(self) -> Labels:
        return tuple(sorted(self.labels.items()))


def parse(text: str, **extra: str) -> list[Sample]:
    """The samples of a Prometheus text exposition, each with the `extra` labels added (e.g.
    `instance=` when the scrapes of several workers are combined). Raises ValueError when the
    text is not the format."""
    return [
        Sample(s.name, {**s.labels, **extra}, float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


@dataclass(frozen=True)
class WindowCounts:
    """Increases of availability_queue_contacts_total per series over the covered window."""

    seconds: float  # how much time the window covers (≤ WINDOW_SECONDS while the history is shorter)
    increases: Mapping[Labels, float] = field(default_factory=dict)


class History:
    """The scrapes of the last `window` seconds (and the one just before it), counters only."""

    def __init__(self, window: float = WINDOW_SECONDS, slack: float = SLACK_SECONDS) -> None:
        self.window = window
        self.slack = slack  # about one refresh interval (or two), in the timer's seconds
        self._scrapes: list[tuple[float, dict[Labels, float]]] = []

    def add(self, at: float, samples: Iterable[Sample]) -> WindowCounts:
        """Add the scrape made at `at` (seconds); the counts of the window ending at it. An `at`
        earlier than the last scrape's (a clock stepped back) drops the history: the window
        starts again at this scrape rather than mixing two time lines."""
        counters = {s.key: s.value for s in samples if s.name == CONTACTS_TOTAL and not math.isnan(s.value)}
        if self._scrapes and at < self._scrapes[-1][0]:
            self._scrapes.clear()
        self._scrapes.append((at, counters))
        start = at - self.window
        before = [i for i, (t, _) in enumerate(self._scrapes) if t <= start]
        # Just before the window: it covers 30 minutes whole; after a gap (or in a short history)
        # the window starts at its first scrape inside.
        whole = bool(before) and start - self._scrapes[before[-1]][0] <= self.slack
        first = before[-1] if whole else len(before)
        del self._scrapes[:first]  # older scrapes are never needed again
        return WindowCounts(at - self._scrapes[0][0], _increases([c for _, c in self._scrapes]))


def _increases(scrapes: Sequence[Mapping[Labels, float]]) -> dict[Labels, float]:
    """Per series, the sum of its steps between the scrapes it appears in; a drop is a restart
    (counted from 0). A series in fewer than two scrapes has no increase, as in Prometheus."""
    out: dict[Labels, float] = {}
    last: dict[Labels, float] = {}
    for scrape in scrapes:
        for key, value in scrape.items():
            if key in last:
                before = last[key]
                out[key] = out.get(key, 0.0) + (value - before if value >= before else value)
            last[key] = value
    return out


@dataclass(frozen=True)
class QueueRow:
    queue: str
    open: float | None  # 1 while open, 0 while closed
    waiting: float | None
    oldest_wait: float | None  # seconds
    agents_ready: float | None  # None while closed
    sl_30m: float | None  # fractions 0..1; None: no contact in the base
    sl_next_30m: float | None  # the outlook (docs/forecasting.md); None while closed
    sl_today: float | None
    ar_30m: float | None
    ar_today: float | None
    sl_target: float | None
    ar_target: float | None
    sl_seconds: float | None

    @property
    def is_open(self) -> bool:
        return self.open == 1


@dataclass(frozen=True)
class MailboxRow:
    mailbox: str
    open: float | None
    open_cases: float | None
    priority_cases: float | None
    oldest_open: float | None  # business seconds
    breached: float | None
    breaching_within_hour: float | None

    @property
    def is_open(self) -> bool:
        return self.open == 1


@dataclass(frozen=True)
class Wall:
    queues: tuple[QueueRow, ...]
    mailboxes: tuple[MailboxRow, ...]
    window_seconds: float  # what the 30-minute figures cover


Where = Callable[[Mapping[str, str]], bool]


def _everything(_: Mapping[str, str]) -> bool:
    return True


def _sum(values: list[float]) -> float:
    return sum(values)


def _max(values: list[float]) -> float:
    return max(values)


def _min(values: list[float]) -> float:
    return min(values)


_HOW: dict[str, Callable[[list[float]], float]] = {"sum": _sum, "max": _max, "min": _min}  # kpi_promql.AGGREGATION


def aggregate(samples: Iterable[Sample], metric: str, by: str, where: Where = _everything) -> dict[str, float]:
    """`AGGREGATION[metric] by (by) (metric{where})`: one value per label value that has series."""
    how = _HOW[kpi_promql.AGGREGATION[metric]]
    groups: dict[str, list[float]] = {}
    for s in samples:
        if s.name == metric and by in s.labels and where(s.labels):
            groups.setdefault(s.labels[by], []).append(s.value)
    return {k: float(how(v)) for k, v in groups.items()}


def _outcomes(names: frozenset[str]) -> Where:
    return lambda labels: labels.get("outcome") in names


def _ratio(numerator: Mapping[str, float], base: Mapping[str, float], queue: str) -> float | None:
    """`(numerator or 0 * base) / (base > 0)`."""
    b = base.get(queue)
    if b is None or not b > 0:
        return None
    return numerator.get(queue, 0.0) / b


def _window_sums(counts: WindowCounts, names: frozenset[str]) -> dict[str, float]:
    """`sum by (queue) (increase(availability_queue_contacts_total{outcome=~names}[window]))`."""
    increases = [Sample(CONTACTS_TOTAL, dict(key), value) for key, value in counts.increases.items()]
    return aggregate(increases, CONTACTS_TOTAL, "queue", _outcomes(names))


def _matcher(text: str) -> Where:
    """kpi_promql's `label="value"` matcher (READY, PRIORITY) as a test on a series' labels."""
    label, _, value = text.partition("=")
    return lambda labels: labels.get(label) == value.strip('"')


def _labels_in_order(samples: Iterable[Sample], prefix: str, label: str) -> list[str]:
    """The `label` values of the metrics named `prefix…`, in order of first appearance (the
    worker writes them in the agreements' order)."""
    seen: dict[str, None] = {}
    for s in samples:
        if s.name.startswith(prefix) and label in s.labels:
            seen.setdefault(s.labels[label], None)
    return list(seen)


def build(samples: Sequence[Sample], counts: WindowCounts | None = None) -> Wall:
    """The wall of one scrape (the samples of every worker together); `counts`: the 30-minute
    window from `History.add` (None: no history, so no 30-minute figures)."""
    counts = counts or WindowCounts(0.0)

    def per_queue(metric: str, where: Where = _everything) -> dict[str, float]:
        return aggregate(samples, metric, "queue", where)

    def per_mailbox(metric: str, where: Where = _everything) -> dict[str, float]:
        return aggregate(samples, metric, "mailbox", where)

    is_open = per_queue("availability_queue_open")
    ready = per_queue("availability_queue_agents", _matcher(kpi_promql.READY))
    today = {name: per_queue(TODAY, _outcomes(names)) for name, names in (("sl", IN_SL), ("ar", ANSWERED))}
    today_base = per_queue(TODAY, _outcomes(BASE))
    window = {name: _window_sums(counts, names) for name, names in (("sl", IN_SL), ("ar", ANSWERED))}
    window_base = _window_sums(counts, BASE)
    waiting = per_queue("availability_queue_waiting")
    oldest = per_queue("availability_queue_oldest_wait_seconds")
    sl_target = per_queue("availability_queue_service_level_target")
    ar_target = per_queue("availability_queue_answer_rate_target")
    sl_seconds = per_queue("availability_queue_service_level_seconds")
    sl_next = per_queue("availability_queue_expected_service_level")
    # kpi_promql.outlook: only where one worker reports the queue
    workers = Counter(s.labels.get("queue") for s in samples if s.name == "availability_queue_open")

    queues = []
    for q in _labels_in_order(samples, "availability_queue_", "queue"):
        open_now = is_open.get(q)
        agents = ready.get(q, 0.0) if open_now == 1 else None  # `READY or 0 * OPEN`, only while open
        queues.append(
            QueueRow(
                queue=q,
                open=open_now,
                waiting=waiting.get(q),
                oldest_wait=oldest.get(q),
                agents_ready=agents,
                sl_30m=_ratio(window["sl"], window_base, q),
                sl_next_30m=sl_next.get(q) if open_now == 1 and workers[q] == 1 else None,
                sl_today=_ratio(today["sl"], today_base, q),
                ar_30m=_ratio(window["ar"], window_base, q),
                ar_today=_ratio(today["ar"], today_base, q),
                sl_target=sl_target.get(q),
                ar_target=ar_target.get(q),
                sl_seconds=sl_seconds.get(q),
            )
        )

    mb_open = per_mailbox("availability_mailbox_open")
    cases = per_mailbox("availability_mailbox_open_cases")
    prio = per_mailbox("availability_mailbox_open_cases", _matcher(kpi_promql.PRIORITY))
    oldest_open = per_mailbox("availability_mailbox_oldest_open_business_seconds")
    breached = per_mailbox("availability_mailbox_breached_cases")
    soon = per_mailbox("availability_mailbox_breaching_within_hour")
    mailboxes = tuple(
        MailboxRow(
            mailbox=m,
            open=mb_open.get(m),
            open_cases=cases.get(m),
            priority_cases=prio.get(m),
            oldest_open=oldest_open.get(m),
            breached=breached.get(m),
            breaching_within_hour=soon.get(m),
        )
        for m in _labels_in_order(samples, "availability_mailbox_", "mailbox")
    )
    return Wall(tuple(queues), mailboxes, counts.seconds)
