"""A phone queue's arrivals per local day and 15-minute slot: a forecast from its history
(docs/staffing.md).

Slots are local. Slot s of a local day is its wall clock's [s × 15 min, (s + 1) × 15 min), so
09:00-09:15 is slot 36 in winter and in summer time alike, and a forecast made from weeks of
winter time puts the morning peak at the same local hour after the clocks went forward. On the
night the clocks go back, slots 8-11 (02:00-03:00) hold both of their real quarter-hours; on the
night they go forward, those slots do not exist. A slot's *exposure* is its open seconds / 900
(the calendar's opening intervals as real instants): 1 for a slot wholly open, less for one the
opening cuts, 2 for a repeated quarter-hour wholly open.

The model, per queue, fitted on its history's *ordinary* days (open, with the weekday's usual
hours, not among the month's first working days):

    expected arrivals(day, slot) = level[weekday] × shape[slot] × exposure(day, slot) × m

- level × shape is the Poisson maximum-likelihood fit of the multiplicative model weekday ×
  local time of day (iterative proportional fitting over the ordinary days): with the same
  number of each weekday in the history it is the row total × the column total / the grand total
  of the table weekday × slot. The shape is shared by the weekdays: a Friday that closes an hour
  earlier has the same morning as a Monday, only a lower level. Given a prior shape (the
  staffing plan gives that of all queues of the calendar together), a slot's shape leans on it
  with `shape_prior_calls` pseudo-calls: a queue of a few calls a day keeps the centre's time of
  day instead of the accidents of its few weeks, a busy queue its own.
- m is the month-start multiplier of the day: 1, or for the first `month_start_days` working
  days of a month (days the queue's calendar opens) the ratio of the arrivals on the history's
  month-start days to what level × shape expects for them, with a pseudo-count of `prior` calls
  on both sides, so a queue without a peak or with few calls gets about 1:
  m = (observed + prior) / (expected + prior). Estimated for every queue, none named.
- A day the calendar closes (a public holiday, a closed afton) has no open slot: nothing is
  expected. A day with other hours (a reduced afton, a day opened by `reduced`) keeps the
  weekday's level and shape over the slots it opens; such days are left out of the fit (one or
  two a year cannot be told apart from noise).
- A weekday never ordinary in the history (a Saturday opened by `reduced`) gets the mean level
  of the weekdays seen; a slot never open in the history the shape of the nearest slot seen.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.calendar import Calendar, local_instant

SLOT_MINUTES = 15
SLOT_SECONDS = SLOT_MINUTES * 60
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
MONTH_START_DAYS = 5  # the month's first working days that may carry a peak
PRIOR_CALLS = 20.0  # pseudo-count of the month-start ratio
PRIOR_SLOT_CALLS = 10.0  # pseudo-count of a slot's shape, when a prior shape is given
_ITERATIONS = 500
_TOLERANCE = 1e-12


Arrivals = Mapping[tuple[date, int], float]  # (local day, slot) -> arrivals; a missing slot had none


def slot_of(t: datetime, tz: ZoneInfo) -> tuple[date, int]:
    """The local day and slot of an instant."""
    local = t.astimezone(tz)
    return local.date(), (local.hour * 60 + local.minute) // SLOT_MINUTES


def slot_label(slot: int) -> str:
    """`HH:MM`, the slot's local start."""
    minutes = slot * SLOT_MINUTES
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def day_slots(calendar: Calendar, day: date) -> dict[int, float]:
    """The open seconds of each slot of a local day that the calendar opens (slots with none are
    absent). Counted on real instants: the day's quarter-hours from local midnight to the next."""
    intervals = [
        (a, b)
        for iv in calendar.intervals_on(day)
        if (b := local_instant(day, iv.end, calendar.tz)) > (a := local_instant(day, iv.start, calendar.tz))
    ]
    if not intervals:
        return {}
    begin, end = local_instant(day, 0, calendar.tz), local_instant(day, 24 * 60, calendar.tz)
    out: dict[int, float] = defaultdict(float)
    t = begin
    while t < end:
        quarter_end = t + SLOT_SECONDS
        seconds = sum(max(0.0, min(b, quarter_end) - max(a, t)) for a, b in intervals)
        if seconds > 0:
            _, slot = slot_of(datetime.fromtimestamp(t, UTC), calendar.tz)
            out[slot] += seconds
        t = quarter_end
    return dict(out)


def slot_start(calendar: Calendar, day: date, slot: int) -> datetime:
    """The first instant of a local slot (of its first occurrence on the night the clocks go
    back), as a local time with its offset."""
    naive = datetime.combine(day, time(slot * SLOT_MINUTES // 60, slot * SLOT_MINUTES % 60))
    return naive.replace(tzinfo=calendar.tz).astimezone(UTC).astimezone(calendar.tz)


def usual_hours(calendar: Calendar, day: date) -> bool:
    """The day opens with its weekday's usual hours (not closed, not reduced)."""
    intervals = calendar.intervals_on(day)
    return bool(intervals) and intervals == calendar.hours.get(day.weekday(), ())


def working_day_ordinal(calendar: Calendar, day: date) -> int | None:
    """1 for the month's first day the calendar opens, 2 for the next …; None on a closed day."""
    if not calendar.intervals_on(day):
        return None
    d, n = day.replace(day=1), 0
    while d <= day:
        n += bool(calendar.intervals_on(d))
        d += timedelta(days=1)
    return n


def is_month_start(calendar: Calendar, day: date, days: int = MONTH_START_DAYS) -> bool:
    ordinal = working_day_ordinal(calendar, day)
    return ordinal is not None and ordinal <= days


@dataclass(frozen=True)
class ArrivalModel:
    """A queue's fitted arrivals: `expected` gives a day's forecast."""

    calendar: Calendar
    level: dict[int, float]  # weekday (0 = Monday) -> arrivals per 15 open minutes at shape 1
    shape: dict[int, float]  # slot -> relative intensity, mean 1 over the slots seen (empty: no history)
    month_start: float  # the multiplier of the month's first working days
    month_start_days: int = MONTH_START_DAYS
    ordinary_days: int = 0  # days fitted
    month_start_seen: int = 0  # month-start days the multiplier was estimated from
    month_start_observed: float = 0.0  # arrivals on those days ...
    month_start_expected: float = 0.0  # ... and what level × shape expected of them

    def level_of(self, weekday: int) -> float:
        if weekday in self.level:
            return self.level[weekday]
        return sum(self.level.values()) / len(self.level) if self.level else 0.0

    def shape_of(self, slot: int) -> float:
        if slot in self.shape:
            return self.shape[slot]
        if not self.shape:
            return 0.0
        nearest = min(self.shape, key=lambda s: (abs(s - slot), s))
        return self.shape[nearest]

    def month_start_on(self, day: date) -> bool:
        return is_month_start(self.calendar, day, self.month_start_days)

    def expected(self, day: date) -> dict[int, float]:
        """Slot -> expected arrivals, for each slot the calendar opens that day (none when closed)."""
        slots = day_slots(self.calendar, day)
        if not slots:
            return {}
        factor = self.level_of(day.weekday()) * (self.month_start if self.month_start_on(day) else 1.0)
        return {s: factor * self.shape_of(s) * seconds / SLOT_SECONDS for s, seconds in slots.items()}


def fit(
    arrivals: Arrivals,
    days: Iterable[date],
    calendar: Calendar,
    *,
    month_start_days: int = MONTH_START_DAYS,
    prior: float = PRIOR_CALLS,
    shape_prior: Mapping[int, float] | None = None,
    shape_prior_calls: float = PRIOR_SLOT_CALLS,
) -> ArrivalModel:
    """Fit the model to a queue's history: `arrivals` per (local day, slot), over `days` (the days
    the history covers; a slot of a covered day without arrivals had none). Only slots the
    calendar opens count (calls while closed are out of hours, not arrivals to staff for).

    `shape_prior` (e.g. the shape of all queues of the calendar together) is what the shape of a
    slot leans to with `shape_prior_calls` pseudo-calls: shape = (calls in the slot +
    k × prior) / (calls expected at shape 1 + k). A queue of a few calls a day then keeps the
    centre's time of day instead of the accidents of its few weeks; a busy queue its own."""
    ordinary: list[tuple[date, dict[int, float]]] = []  # (day, slot -> exposure)
    peaks: list[tuple[date, dict[int, float]]] = []
    for day in sorted(set(days)):
        slots = day_slots(calendar, day)
        if not slots or not usual_hours(calendar, day):
            continue
        exposure = {s: seconds / SLOT_SECONDS for s, seconds in slots.items()}
        (peaks if is_month_start(calendar, day, month_start_days) else ordinary).append((day, exposure))
    if not ordinary:  # a history of month starts only: fitted as they are, no multiplier
        ordinary, peaks = peaks, []
    level, shape = _fit_ordinary(arrivals, ordinary, shape_prior or {}, shape_prior_calls if shape_prior else 0.0)
    model = ArrivalModel(calendar, level, shape, 1.0, month_start_days, ordinary_days=len(ordinary))
    observed = sum(arrivals.get((day, s), 0.0) for day, exposure in peaks for s in exposure)
    expected = sum(
        model.level_of(day.weekday()) * model.shape_of(s) * e for day, exposure in peaks for s, e in exposure.items()
    )
    return dataclasses.replace(
        model,
        month_start=(observed + prior) / (expected + prior) if expected + prior > 0 else 1.0,
        month_start_seen=len(peaks),
        month_start_observed=observed,
        month_start_expected=expected,
    )


def _fit_ordinary(
    arrivals: Arrivals, days: list[tuple[date, dict[int, float]]], prior: Mapping[int, float], k: float
) -> tuple[dict[int, float], dict[int, float]]:
    """level[weekday] and shape[slot] by iterative proportional fitting (the Poisson maximum
    likelihood of arrivals ~ level × shape × exposure; with k > 0 the shape's posterior mean under
    a gamma prior of mean prior[slot] and k pseudo-calls); the shape's mean over its slots is 1."""
    # The sufficient statistics: arrivals per weekday and per slot, and the exposures behind them.
    by_weekday: dict[int, float] = defaultdict(float)
    by_slot: dict[int, float] = defaultdict(float)
    exposure: dict[tuple[int, int], float] = defaultdict(float)  # (weekday, slot) -> days × exposure
    for day, slots in days:
        for s, e in slots.items():
            count = arrivals.get((day, s), 0.0)
            by_weekday[day.weekday()] += count
            by_slot[s] += count
            exposure[(day.weekday(), s)] += e
    if not exposure:
        return {}, {}
    weekdays, slots_seen = sorted(by_weekday), sorted(by_slot)
    level = dict.fromkeys(weekdays, 1.0)
    shape = dict.fromkeys(slots_seen, 1.0)
    if sum(by_slot.values()) == 0:
        return dict.fromkeys(weekdays, 0.0), shape
    for _ in range(_ITERATIONS):
        for s in slots_seen:
            base = sum(level[w] * exposure.get((w, s), 0.0) for w in weekdays)
            lean = k * prior.get(s, 0.0)
            shape[s] = (by_slot[s] + lean) / (base + k) if base + k > 0 else 0.0
        mean = sum(shape.values()) / len(shape)
        shape = {s: v / mean for s, v in shape.items()}
        change = 0.0
        for w in weekdays:
            base = sum(shape[s] * exposure.get((w, s), 0.0) for s in slots_seen)
            new = by_weekday[w] / base if base > 0 else 0.0
            change = max(change, abs(new - level[w]) / max(new, level[w], 1e-300))
            level[w] = new
        if change < _TOLERANCE:
            break
    return level, shape
