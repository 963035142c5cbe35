"""A queue's next 30 minutes: the service level and answer rate to expect, the time until the
live 30-minute service level is expected to fall below target, and the agents that would avoid
it (docs/forecasting.md).

Pure: the live state (stream_jobs/core/live.py) gathers what a supervisor sees now, the arrival
forecast comes from `expected_arrivals`, and stream_jobs/core/erlang.py is the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stream_jobs.core import erlang

HORIZON = timedelta(minutes=30)  # "expected next 30 min"
WINDOW = timedelta(minutes=30)  # the live service level's window (spec/metrics.md, the alert rule)
MIN_CONTACTS_WINDOW = 5  # the alert rule judges a window from this many contacts in its base
STEP = 60.0  # the time to breach is found to the minute
MORE_AGENTS = 20  # agents_needed looks this far; more is a different problem (no one logged in)
# The arrival forecast's ratio of this morning to earlier weeks starts from this many contacts
# on both sides (a pseudo-count), so one early caller does not double the forecast.
PRIOR_CONTACTS = 5.0
SEGMENTS = 6  # the horizon's staffing is followed in this many equal parts (5 minutes of 30)
RATIO_LIMITS = (0.5, 2.0)


@dataclass(frozen=True)
class QueueNow:
    """What is known about one open queue now."""

    arrivals_per_second: float  # forecast for the horizon
    handle_seconds: float  # talk + wrap-up
    patience_seconds: float
    callback_share: float  # of the callers who leave unanswered, those booking a callback (not in the base)
    agents: float  # serving now (ready, busy, in wrap-up), or expected over the horizon (see live.py)
    in_system: int  # calls talking (agents busy or in wrap-up) + calls waiting
    horizon_seconds: float  # until the horizon, or the queue's closing if sooner
    threshold_seconds: float  # T
    target: float  # the promised service level
    past: Sequence[tuple[float, bool]] = ()  # (seconds ago, answered within T) of the window's base contacts
    # The change from `agents` in each of the horizon's SEGMENTS, as on earlier weeks (breaks
    # starting, agents coming back); empty: `agents` throughout.
    agents_change: Sequence[float] = ()
    waiting_ages: Sequence[float] = ()  # seconds each call waiting now has waited
    base_share: float = 1.0  # of the contacts that end, those in the base (not short abandons, not callbacks)


@dataclass(frozen=True)
class Prediction:
    service_level: float
    answer_rate: float
    contacts: float  # expected arrivals over the horizon
    seconds_to_breach: float  # 0: below target now; math.inf: not expected within the horizon
    agents_needed: int  # more agents that avoid the expected breach (0: none expected)


def outlook(now: QueueNow, agents: float | None = None) -> tuple[float, float]:
    """(service level, answer rate) expected for the callers of the horizon, with `agents`
    (default: those expected). Rates are of the base: callbacks are left out, as in the report.
    A fractional number of agents is read between the whole numbers on either side."""
    n = now.agents if agents is None else agents
    profile = [max(0.0, n + change) for change in now.agents_change] or [n]
    low = [math.floor(x) for x in profile]
    share = sum(x - f for x, f in zip(profile, low, strict=True)) / len(profile)
    level, rate = _outlook(now, low)
    if share > 0:  # between the whole numbers: the profile one agent up, weighted by the mean fraction
        above_level, above_rate = _outlook(now, [f + 1 for f in low])
        level, rate = level + share * (above_level - level), rate + share * (above_rate - rate)
    return level, rate


def _outlook(now: QueueNow, agents: list[int]) -> tuple[float, float]:
    load = erlang.Load(now.arrivals_per_second, now.handle_seconds, now.patience_seconds)
    segment = now.horizon_seconds / len(agents)
    o = erlang.staffed(load, agents, now.threshold_seconds, in_system=now.in_system, segment_seconds=segment)
    base = 1.0 - (1.0 - o.answer_rate) * now.callback_share
    return (o.service_level / base, o.answer_rate / base) if base > 0 else (0.0, 0.0)


def available_share(mean_away_seconds: float, horizon_seconds: float) -> float:
    """The expected share of the horizon an agent who is not ready now will be ready for, if
    the spells of not being ready end at random with this mean: 1 − (D/H)(1 − e^(−H/D))."""
    if horizon_seconds <= 0:
        return 0.0
    d = mean_away_seconds
    return 1.0 - (d / horizon_seconds) * (1.0 - math.exp(-horizon_seconds / d)) if d > 0 else 1.0


def seconds_to_breach(now: QueueNow, service_level: float) -> float:
    """When the 30-minute window's service level is expected to fall below target: the window's
    known contacts leave it as time goes on; the calls waiting now come in within the first
    minute (answered within T, at the expected level, only those that have not waited T yet);
    and the horizon's contacts come in at the expected rate and level. 0 if it is below now
    (with a base the rule judges)."""
    flow = now.arrivals_per_second * now.base_share  # contacts per second into the window's base
    queued = len(now.waiting_ages)
    queued_met = service_level * sum(1 for age in now.waiting_ages if age <= now.threshold_seconds)
    steps = int(min(now.horizon_seconds, HORIZON.total_seconds()) // STEP)
    for i in range(steps + 1):
        ahead = i * STEP
        known = [met for ago, met in now.past if ago + ahead < WINDOW.total_seconds()]
        coming = flow * ahead
        base = len(known) + coming + (queued if i else 0)
        met = sum(known) + service_level * coming + (queued_met if i else 0.0)
        if base >= MIN_CONTACTS_WINDOW and met < now.target * base:
            return ahead
    return math.inf


def predict(now: QueueNow) -> Prediction:
    service_level, answer_rate = outlook(now)
    eta = seconds_to_breach(now, service_level)
    needed = 0
    if eta < math.inf:
        needed = _agents_to_avoid(now, eta)
    contacts = now.arrivals_per_second * now.horizon_seconds
    return Prediction(service_level, answer_rate, contacts, eta, needed)


def predict_all(inputs: Mapping[str, QueueNow]) -> dict[str, Prediction]:
    """`predict` for each queue: pure, so it can run off the thread that gathered the inputs."""
    return {queue: predict(now) for queue, now in inputs.items()}


def _agents_to_avoid(now: QueueNow, eta: float) -> int:
    """The fewest more agents with which no breach is expected within the horizon; if the
    window's past alone breaks it (more agents cannot mend what already happened), those with
    which the horizon's callers get the promised level. Both grow with the agents, so the
    search halves the range (a handful of outlooks, not MORE_AGENTS)."""
    levels: dict[int, float] = {}

    def level(more: int) -> float:
        if more not in levels:
            levels[more] = outlook(now, now.agents + more)[0]
        return levels[more]

    found = None
    if eta > 0:
        found = _fewest(lambda more: seconds_to_breach(now, level(more)) == math.inf)
    if found is None:
        found = _fewest(lambda more: level(more) >= now.target)
    return MORE_AGENTS if found is None else found


def _fewest(enough: Callable[[int], bool]) -> int | None:
    """The least k in 1 … MORE_AGENTS for which `enough` (false below it, true from it on)."""
    if not enough(MORE_AGENTS):
        return None
    low, high = 1, MORE_AGENTS
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def expected_arrivals(
    recent: float,
    history: Callable[[timedelta, timedelta], float | None],
    now: datetime,
    span: timedelta = HORIZON,
) -> float:
    """Arrivals per second expected over [now, now + span).

    `recent` is the count of the last `span`; `history(offset, length)` the mean count of earlier
    weeks over [now + offset, now + offset + length) on the same weekday and local time (None
    without history). The earlier weeks give the shape (the morning peak, the month start),
    today's ratio to them the level: shaped = history ahead × (recent + k) / (history before
    + k), the ratio kept within RATIO_LIMITS. The earlier weeks know as much as they saw: the
    forecast is shaped × w + recent × (1 − w), w = ahead / (ahead + k), so a half hour that
    had no call on earlier weeks (a small queue, hours newly opened) keeps today's rate.
    Without history: the recent rate."""
    seconds = span.total_seconds()
    ahead, before = history(timedelta(0), span), history(-span, span)
    if ahead is None or before is None:
        return recent / seconds
    ratio = (recent + PRIOR_CONTACTS) / (before + PRIOR_CONTACTS)
    ratio = min(max(ratio, RATIO_LIMITS[0]), RATIO_LIMITS[1])
    weight = ahead / (ahead + PRIOR_CONTACTS)
    return (weight * ahead * ratio + (1 - weight) * recent) / seconds
