"""A week's staffing plan per phone queue, and the backtest of its forecast (docs/staffing.md).

Per queue and local 15-minute slot of the week: the arrivals the history leads to expect
(stream_jobs/core/arrivals.py), and the fewest agents with which Erlang A
(stream_jobs/core/erlang.py) expects the queue's promised service level and answer rate.

The load of a queue, from the same weeks of history as its forecast:

- arrivals: the forecast of offered contacts × the queue's share of them in the targets' base
  (offered − short abandons − callbacks; spec/metrics.md): short abandons leave before anyone
  could answer and callbacks leave the queue, so neither is a caller the agents must reach;
- handle time: the mean talk time of its answered contacts (talk over 2 h left out as a call
  left open) + the mean wrap-up: the agents' `wrap_up` states (until their next state, at most
  10 min) of the agents serving the queue, else of all agents, else `WRAP_UP_ASSUMED`;
- patience: the censored estimator, total time waited / abandons, over its contacts in the base
  (answered, abandoned, flowed out, callback: each waited and had not yet hung up), abandons not
  short; with fewer than `MIN_ABANDONS` abandons that of all queues together; with none at all,
  nobody hangs up (Erlang C).

Pure: the history is read from the warehouse by dashboards/staffing/history.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Self

from schemas.agreements import Agreements, Queue
from schemas.calendar import Calendar, Interval
from schemas.errors import InputError
from stream_jobs.core import arrivals, erlang
from stream_jobs.core.arrivals import SLOT_MINUTES, SLOT_SECONDS, ArrivalModel

HISTORY_WEEKS = 8  # the weeks before a week its forecast and load are estimated from
WRAP_UP_ASSUMED = 45.0  # seconds of wrap-up when the history has no agent states
TALK_ASSUMED = 300.0  # seconds of talk when the history has no answered call at all
MIN_ABANDONS = 5  # a queue with fewer abandons gets the patience of all queues together


@dataclass(frozen=True)
class DayStats:
    """A queue's sums over one local day of its history (each adds over days)."""

    offered: float = 0.0  # contacts offered (queue open)
    base: float = 0.0  # of those, in the targets' base: offered - short abandons - callbacks
    talks: int = 0  # answered contacts with a talk time
    talk_seconds: float = 0.0
    abandons: int = 0  # abandoned, not short
    waited_seconds: float = 0.0  # the waits of the contacts in the base
    wrap_ups: int = 0  # wrap-up states of agents serving the queue
    wrap_up_seconds: float = 0.0

    def __add__(self, other: DayStats) -> DayStats:
        return DayStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class History:
    """What the warehouse holds of the queues over the local days [first, end)."""

    first: date
    end: date
    covered: frozenset[date]  # the days with data (a day no queue had any contact on is missing, not quiet)
    arrivals: Mapping[str, Mapping[tuple[date, int], float]]  # queue -> (local day, slot) -> offered
    stats: Mapping[str, Mapping[date, DayStats]]  # queue -> local day -> sums

    def days(self, start: date, end: date) -> frozenset[date]:
        """The covered days in [start, end)."""
        return frozenset(d for d in self.covered if start <= d < end)

    def sums(self, queue: str, days: Iterable[date]) -> DayStats:
        per_day = self.stats.get(queue, {})
        total = DayStats()
        for day in days:
            if day in per_day:
                total += per_day[day]
        return total


@dataclass(frozen=True)
class Parameters:
    """A queue's load besides its arrivals, and where each value came from."""

    talk_seconds: float
    wrap_up_seconds: float
    patience_seconds: float  # math.inf: nobody hung up in the history (Erlang C)
    base_share: float  # of the offered contacts, those in the targets' base
    talk_source: str = "queue"  # queue | all queues | assumed
    wrap_up_source: str = "queue"  # queue | all queues | assumed | given
    patience_source: str = "queue"  # queue | all queues | none abandoned

    @property
    def handle_seconds(self) -> float:
        """Talk + wrap-up, at least a second (a history of zero-second talks and `--wrap-up 0`)."""
        return max(self.talk_seconds + self.wrap_up_seconds, 1.0)


def parameters(
    history: History, queues: Iterable[str], days: frozenset[date], wrap_up: float | None = None
) -> dict[str, Parameters]:
    """Each queue's parameters from the history's `days`; `wrap_up` (seconds) overrides the measured one."""
    queues = list(queues)
    sums = {q: history.sums(q, days) for q in queues}
    every = DayStats()
    for q in queues:
        every += sums[q]
    out = {}
    for q in queues:
        s = sums[q]
        if s.talks:
            talk, talk_source = s.talk_seconds / s.talks, "queue"
        elif every.talks:
            talk, talk_source = every.talk_seconds / every.talks, "all queues"
        else:
            talk, talk_source = TALK_ASSUMED, "assumed"
        if wrap_up is not None:
            wrap, wrap_source = wrap_up, "given"
        elif s.wrap_ups:
            wrap, wrap_source = s.wrap_up_seconds / s.wrap_ups, "queue"
        elif every.wrap_ups:
            wrap, wrap_source = every.wrap_up_seconds / every.wrap_ups, "all queues"
        else:
            wrap, wrap_source = WRAP_UP_ASSUMED, "assumed"
        if s.abandons >= MIN_ABANDONS and s.waited_seconds > 0:
            patience, patience_source = s.waited_seconds / s.abandons, "queue"
        elif every.abandons and every.waited_seconds > 0:
            patience, patience_source = every.waited_seconds / every.abandons, "all queues"
        else:
            patience, patience_source = math.inf, "none abandoned"
        share = s.base / s.offered if s.offered else 1.0
        out[q] = Parameters(talk, wrap, patience, share, talk_source, wrap_source, patience_source)
    return out


class Staffer:
    """The fewest agents that meet a queue's targets at an arrival rate (erlang.agents_needed),
    remembered per rate."""

    def __init__(self, queue: Queue, params: Parameters) -> None:
        self.queue = queue
        self.handle = params.handle_seconds
        self.patience = params.patience_seconds
        self._known: dict[float, int] = {}

    def load(self, rate: float) -> erlang.Load:
        return erlang.Load(rate, self.handle, self.patience)

    def agents(self, rate: float) -> int:
        """Agents needed for `rate` arrivals per second (0 for none)."""
        if rate <= 0:
            return 0
        if rate not in self._known:
            q = self.queue
            try:
                self._known[rate] = erlang.agents_needed(
                    self.load(rate), q.service_level_seconds, q.service_level_target, q.answer_rate_target
                )
            except ValueError:
                raise InputError(
                    f"queue {q.id}: more than {erlang.MAX_AGENTS} agents needed for "
                    f"{rate * SLOT_SECONDS:.0f} calls in 15 minutes (check its history)"
                ) from None
        return self._known[rate]

    def outlook(self, rate: float, agents: int) -> erlang.Outlook | None:
        if rate <= 0 or agents == 0:
            return None
        return erlang.steady(self.load(rate), agents, self.queue.service_level_seconds)


def rate(calls: float, share: float, open_seconds: float) -> float:
    """Arrivals per second in the targets' base, over a slot's open seconds."""
    return calls * share / open_seconds if open_seconds > 0 else 0.0


# -- the plan of a week -------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    day: date
    slot: int  # local slot of the day (arrivals.slot_of)
    start: datetime  # its first instant, local with offset
    open_seconds: float  # 0: usually open, closed this day (a holiday, a reduced day)
    month_start: bool
    calls: float  # expected offered contacts
    agents: int
    service_level: float | None  # what Erlang A expects with those agents (None: no call or no agent)
    answer_rate: float | None

    @property
    def agent_hours(self) -> float:
        return self.agents * self.open_seconds / 3600


@dataclass(frozen=True)
class QueuePlan:
    queue: Queue
    model: ArrivalModel
    parameters: Parameters
    slots: tuple[Slot, ...]

    @property
    def calls(self) -> float:
        return math.fsum(s.calls for s in self.slots)

    @property
    def agent_hours(self) -> float:
        return math.fsum(s.agent_hours for s in self.slots)

    @property
    def peak(self) -> int:
        return max((s.agents for s in self.slots), default=0)


@dataclass(frozen=True)
class Plan:
    week: str  # 2026-W23
    days: tuple[date, ...]
    history_first: date  # the window the forecast and the load come from
    history_last: date
    history_days: int  # covered days in it
    queues: tuple[QueuePlan, ...]
    notes: tuple[str, ...] = ()


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_days(monday: date) -> tuple[date, ...]:
    return tuple(monday + timedelta(days=i) for i in range(7))


def usual_slots(calendar: Calendar, day: date) -> set[int]:
    """The slots the day's weekday usually opens (its `hours`), whatever this day is."""
    return {s for iv in calendar.hours.get(day.weekday(), ()) for s in _slots_of(iv)}


def _slots_of(iv: Interval) -> range:
    return range(iv.start // SLOT_MINUTES, -(-iv.end // SLOT_MINUTES))


def window(monday: date, weeks: int) -> tuple[date, date]:
    """The history of the week starting `monday`: the `weeks` weeks before it, [first, end)."""
    return monday - timedelta(weeks=weeks), monday


def models(
    history: History, agreements: Agreements, days: frozenset[date], wrap_up: float | None
) -> tuple[dict[str, ArrivalModel], dict[str, Parameters]]:
    """Each queue's arrival model and parameters from the history's `days`. A queue's time of day
    leans on that of all queues of its calendar together (arrivals.fit's shape prior)."""
    pooled: dict[str, dict[tuple[date, int], float]] = {}
    for queue in agreements.queues.values():
        total = pooled.setdefault(queue.calendar_id, {})
        for key, count in history.arrivals.get(queue.id, {}).items():
            total[key] = total.get(key, 0.0) + count
    centre = {cid: arrivals.fit(counts, days, agreements.calendars[cid]).shape for cid, counts in pooled.items()}
    fitted = {
        q: arrivals.fit(history.arrivals.get(q, {}), days, queue.calendar, shape_prior=centre[queue.calendar_id])
        for q, queue in agreements.queues.items()
    }
    return fitted, parameters(history, agreements.queues, days, wrap_up)


def plan_week(
    history: History,
    agreements: Agreements,
    monday: date,
    *,
    history_weeks: int = HISTORY_WEEKS,
    wrap_up: float | None = None,
) -> Plan:
    """The plan of the ISO week starting `monday`, from the `history_weeks` weeks before it."""
    first, end = window(monday, history_weeks)
    days = history.days(first, end)
    if not days:
        raise InputError(
            f"the warehouse holds no calls in the {history_weeks} weeks before {iso_week(monday)} "
            f"({first.isoformat()} to {(end - timedelta(days=1)).isoformat()}) to forecast from: "
            "load them with `availability process`, or check --warehouse"
        )
    fitted, params = models(history, agreements, days, wrap_up)
    notes = []
    plans = []
    for q, queue in agreements.queues.items():
        model, p = fitted[q], params[q]
        if not model.ordinary_days:
            notes.append(f"queue {q}: no day of the history with its usual opening hours: forecast 0")
        elif not any(n for (day, _), n in history.arrivals.get(q, {}).items() if day in days):
            notes.append(f"queue {q}: no call in the history: forecast 0")
        staffer = Staffer(queue, p)
        slots = []
        for day in week_days(monday):
            expected = model.expected(day)
            opened = arrivals.day_slots(queue.calendar, day)
            month_start = bool(opened) and model.month_start_on(day)
            for s in sorted(usual_slots(queue.calendar, day) | set(opened)):
                calls = expected.get(s, 0.0)
                lam = rate(calls, p.base_share, opened.get(s, 0.0))
                n = staffer.agents(lam)
                o = staffer.outlook(lam, n)
                slots.append(
                    Slot(
                        day=day,
                        slot=s,
                        start=arrivals.slot_start(queue.calendar, day, s),
                        open_seconds=opened.get(s, 0.0),
                        month_start=month_start,
                        calls=calls,
                        agents=n,
                        service_level=None if o is None else o.service_level,
                        answer_rate=None if o is None else o.answer_rate,
                    )
                )
        plans.append(QueuePlan(queue, model, p, tuple(slots)))
    return Plan(
        week=iso_week(monday),
        days=week_days(monday),
        history_first=min(days),
        history_last=max(days),
        history_days=len(days),
        queues=tuple(plans),
        notes=tuple(notes),
    )


def poisson_mad(mean: float) -> float:
    """E|X − mean| for X ~ Poisson(mean): 2 e^−λ λ^(k+1) / k!, k = ⌊λ⌋ (the mean absolute deviation)."""
    if mean <= 0:
        return 0.0
    k = math.floor(mean)
    return 2 * math.exp(-mean + (k + 1) * math.log(mean) - math.lgamma(k + 1))


# -- the backtest --------------------------------------------------------------------------------


@dataclass
class Score:
    """Forecast against what happened, over the open slots of the days compared (sums add up)."""

    slots: int = 0  # open slots compared
    forecast: float = 0.0  # Σ F
    actual: float = 0.0  # Σ A
    abs_error: float = 0.0  # Σ |F − A|
    naive_abs_error: float = 0.0  # Σ |A a week before − A|
    noise: float = 0.0  # Σ E|X − F| for X ~ Poisson(F): the error of a forecast that is exactly right
    ape_sum: float = 0.0  # Σ |F − A| / A over the slots with A ≥ 1 ...
    ape_slots: int = 0  # ... and their number
    day_ape_sum: float = 0.0  # the same per day (F and A summed over its open slots), days with A ≥ 1
    days: int = 0
    agents_forecast: float = 0.0  # agent-hours the forecast asks for
    agents_actual: float = 0.0  # agent-hours the arrivals that came needed
    agents_diff: int = 0  # Σ (N_F − N_A) over the slots
    agents_abs_diff: int = 0  # Σ |N_F − N_A|
    under: int = 0  # slots with N_F < N_A

    def add(self, other: Score) -> Self:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def wape(self) -> float | None:
        return self.abs_error / self.actual if self.actual else None

    @property
    def naive_wape(self) -> float | None:
        return self.naive_abs_error / self.actual if self.actual else None

    @property
    def floor_wape(self) -> float | None:
        """The WAPE expected of a forecast equal to the true rates (Poisson noise alone)."""
        return self.noise / self.forecast if self.forecast else None

    @property
    def mape_slots(self) -> float | None:
        return self.ape_sum / self.ape_slots if self.ape_slots else None

    @property
    def mape_days(self) -> float | None:
        return self.day_ape_sum / self.days if self.days else None

    @property
    def agents_bias(self) -> float | None:
        """Mean N_F − N_A per open slot: above 0 the forecast asks for more agents than were needed."""
        return self.agents_diff / self.slots if self.slots else None

    @property
    def agents_mae(self) -> float | None:
        return self.agents_abs_diff / self.slots if self.slots else None

    @property
    def under_share(self) -> float | None:
        return self.under / self.slots if self.slots else None


@dataclass(frozen=True)
class Backtest:
    mondays: tuple[date, ...]
    history_weeks: int
    scores: Mapping[str, Mapping[date, Score]]  # queue -> week (its Monday) -> score
    missing_days: tuple[date, ...] = ()  # days of the range some queue opens without data: not compared
    notes: tuple[str, ...] = field(default=())

    def queue_total(self, queue: str) -> Score:
        total = Score()
        for score in self.scores[queue].values():
            total.add(score)
        return total

    def week_total(self, monday: date) -> Score:
        total = Score()
        for weeks in self.scores.values():
            total.add(weeks[monday])
        return total

    def total(self) -> Score:
        total = Score()
        for q in self.scores:
            total.add(self.queue_total(q))
        return total


def backtest(
    history: History,
    agreements: Agreements,
    mondays: Iterable[date],
    *,
    history_weeks: int = HISTORY_WEEKS,
    wrap_up: float | None = None,
    advance: Callable[[int], None] = lambda done: None,
) -> Backtest:
    """Each week forecast from the `history_weeks` weeks before it only, and compared with what
    came, slot by slot, over the days of the week the history covers."""
    mondays = tuple(mondays)
    scores: dict[str, dict[date, Score]] = {q: {} for q in agreements.queues}
    missing: list[date] = []
    for done, monday in enumerate(mondays):
        first, end = window(monday, history_weeks)
        days = history.days(first, end)
        if not days:
            raise InputError(
                f"the warehouse holds no calls in the {history_weeks} weeks before {iso_week(monday)} "
                f"({first.isoformat()} to {(end - timedelta(days=1)).isoformat()}) to forecast it from: "
                "start the backtest later (--from)"
            )
        compared = [d for d in week_days(monday) if d in history.covered]
        if not compared:
            raise InputError(
                f"the warehouse holds no calls in {iso_week(monday)} to compare the forecast with: "
                "end the backtest earlier (--weeks)"
            )
        missing += [
            d
            for d in week_days(monday)
            if d not in history.covered and any(q.calendar.intervals_on(d) for q in agreements.queues.values())
        ]
        fitted, params = models(history, agreements, days, wrap_up)
        for q, queue in agreements.queues.items():
            scores[q][monday] = _score(
                history.arrivals.get(q, {}), fitted[q], Staffer(queue, params[q]), params[q], compared
            )
        advance(done + 1)
    return Backtest(mondays, history_weeks, scores, tuple(missing))


def _score(
    actual: Mapping[tuple[date, int], float], model: ArrivalModel, staffer: Staffer, p: Parameters, days: list[date]
) -> Score:
    score = Score()
    for day in days:
        forecast = model.expected(day)
        if not forecast:
            continue
        opened = arrivals.day_slots(model.calendar, day)
        day_f = day_a = 0.0
        for s, f in forecast.items():
            a = actual.get((day, s), 0.0)
            naive = actual.get((day - timedelta(days=7), s), 0.0)
            seconds = opened[s]
            n_f = staffer.agents(rate(f, p.base_share, seconds))
            n_a = staffer.agents(rate(a, p.base_share, seconds))
            score.slots += 1
            score.forecast += f
            score.actual += a
            score.abs_error += abs(f - a)
            score.naive_abs_error += abs(naive - a)
            score.noise += poisson_mad(f)
            if a >= 1:
                score.ape_sum += abs(f - a) / a
                score.ape_slots += 1
            score.agents_forecast += n_f * seconds / 3600
            score.agents_actual += n_a * seconds / 3600
            score.agents_diff += n_f - n_a
            score.agents_abs_diff += abs(n_f - n_a)
            score.under += n_f < n_a
            day_f += f
            day_a += a
        if day_a >= 1:
            score.day_ape_sum += abs(day_f - day_a) / day_a
            score.days += 1
    return score
