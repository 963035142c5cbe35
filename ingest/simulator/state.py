"""The state one simulation shares between its phone and mail days (ingest/simulator/traffic.py):
the agreements' calendars as epoch seconds, the caller pool, the agent roster and the event
collector, with the helpers they are computed with."""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from itertools import accumulate
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from ingest.simulator import profiles as P
from schemas.agreements import Agreements
from schemas.calendar import Calendar
from schemas.events import Event


class Simulator:
    def __init__(self, agreements: Agreements, seed: int, scale: float) -> None:
        self.agreements, self.seed, self.scale, self.tz = agreements, seed, scale, agreements.timezone
        self.hours = {cid: _Hours(cal) for cid, cal in agreements.calendars.items()}
        pool = Random(f"{seed}/callers")
        self.callers = [_phone_number(pool) for _ in range(max(1, round(P.CALLER_POOL * scale)))]
        self.zipf: dict[int, list[float]] = {}
        queues = agreements.queues
        self.targets = {q: tuple(x for x in P.queue_profile(q).transfer_to if x in queues and x != q) for q in queues}
        self.priority = {m.id: _priority_matcher(m.priority_keywords) for m in agreements.mailboxes.values()}
        self.roster = self._roster()
        serving = {q: sum(q in qs for _, qs, _ in self.roster) for q in queues}
        self.queue_limit = {q: max(P.QUEUE_FULL_MIN, round(P.QUEUE_FULL_PER_AGENT * n)) for q, n in serving.items()}
        self.meeting_day = self._meeting_days()
        self.redials: dict[date, list[tuple[float, str, str]]] = {}  # next-day redials, by local day

    def midnight(self, day: date) -> float:
        return instant(day, 0, self.tz)

    def volume(
        self, per_year: float, weekly: Sequence[float], holiday: float, day: date, cal: str, peak: float
    ) -> float:
        """Expected arrivals on `day` at this scale (peak: the month-start multiplier)."""
        wd = day.weekday()
        level = weekly[wd] if wd >= 5 or self.hours[cal].on(day) else holiday
        if self.month_start(day, cal):
            level *= peak
        return _per_day(per_year, peak) * level * P.MONTH_FACTOR[day.month - 1] * self.scale

    def month_start(self, day: date, cal: str) -> bool:
        hours = self.hours[cal]
        return bool(hours.on(day)) and hours.working_day_of_month(day) <= P.MONTH_START_WORKING_DAYS

    def pick(self, rng: Random, size: int) -> int:
        """A Zipf-distributed index below `size`: a few frequent callers or senders, many rare."""
        cum = self.zipf.get(size)
        if cum is None:
            cum = self.zipf[size] = list(accumulate(1 / (i + 1) ** 1.1 for i in range(size)))
        return bisect.bisect_left(cum, rng.random() * cum[-1])

    def caller(self, rng: Random) -> str:
        if rng.random() < P.REPEAT_CALLER_SHARE:
            return self.callers[self.pick(rng, len(self.callers))]
        return _phone_number(rng)

    def redial_later(self, rng: Random, day: date, queue: str, caller: str) -> None:
        """The caller tries again on the queue's next open day (by choice, or the redial was due after closing)."""
        hours = self.hours[self.agreements.queues[queue].calendar_id]
        for k in range(1, 8):
            intervals = hours.on(day + timedelta(days=k))
            if intervals:
                t = intervals[0][0] + rng.lognormvariate(math.log(P.REDIAL_NEXT_MEDIAN_S), 0.8)
                self.redials.setdefault(day + timedelta(days=k), []).append((t, queue, caller))
                return

    def _meeting_days(self) -> dict[str, int]:
        """Each team's weekly meeting day, by queue: a team is the queues linked by shared agents."""
        team: dict[str, str] = {}

        def root(q: str) -> str:
            while team.setdefault(q, q) != q:
                q = team[q]
            return q

        for _, queues, _ in self.roster:
            for q in queues[1:]:
                team[root(q)] = root(queues[0])
        roots: dict[str, int] = {}
        for q in self.agreements.queues:
            roots.setdefault(root(q), len(roots))
        return {q: P.MEETING_WEEKDAYS[roots[root(q)] % len(P.MEETING_WEEKDAYS)] for q in self.agreements.queues}

    def _roster(self) -> list[tuple[str, list[str], bool]]:
        """Agents, their queues and whether they work only at month start (Erlang C staffing)."""
        roster: list[tuple[str, list[str], bool]] = []
        for q in self.agreements.queues.values():
            prof = P.queue_profile(q.id)
            aht = prof.talk_mean_s + sum(P.WRAP_S) / 2
            peak_hour = _per_day(prof.calls_per_year, prof.month_start) * self.scale * max(P.CALL_HOURS)
            load = peak_hour / sum(P.CALL_HOURS) / 3600 * aht  # a normal day's busiest hour, in Erlang
            staff = _erlang_agents(load, aht, q.service_level_seconds, q.service_level_target)
            extra = 1 + (prof.month_start - 1) * P.PEAK_COVER
            peak_staff = _erlang_agents(load * extra, aht, q.service_level_seconds, q.service_level_target)
            partners = [p for p in prof.partners if p in self.agreements.queues and p != q.id]
            shared = min(staff, max(len(partners), math.ceil(staff * P.SHARED_SHARE))) if partners else 0
            for i in range(max(staff, peak_staff)):
                queues = [q.id, partners[i % len(partners)]] if i < shared else [q.id]
                roster.append((f"agent{len(roster) + 1:03d}", queues, i >= staff))
        return roster


class _Hours:
    """One calendar's opening intervals as epoch seconds, per local day (cached)."""

    def __init__(self, cal: Calendar) -> None:
        self.cal = cal
        self._days: dict[date, list[tuple[float, float]]] = {}

    def on(self, day: date) -> list[tuple[float, float]]:
        found = self._days.get(day)
        if found is None:
            tz = self.cal.tz
            found = [(instant(day, i.start, tz), instant(day, i.end, tz)) for i in self.cal.intervals_on(day)]
            self._days[day] = found
        return found

    def working_day_of_month(self, day: date) -> int:
        return sum(1 for d in range(1, day.day + 1) if self.on(day.replace(day=d)))

    def add(self, t: float, seconds: float) -> float | None:
        """The instant `seconds` of open time after t (None if not within 120 days)."""
        day = datetime.fromtimestamp(t, self.cal.tz).date()
        for _ in range(120):
            for a, b in self.on(day):
                if b > t:
                    a = max(a, t)
                    if seconds <= b - a:
                        return a + seconds
                    seconds -= b - a
            day += timedelta(days=1)
        return None


class Out:
    """Collects one generating day's events with ids `sim{seed}-{yyyymmdd}-{n}`."""

    def __init__(self, sim: Simulator, day: date) -> None:
        self.tz, self.prefix = sim.tz, f"sim{sim.seed}-{day:%Y%m%d}-"
        self.items: list[tuple[float, int, Event]] = []

    def emit(self, t: float, kind: Callable[..., Event], data: Any, source: str, subject: str | None) -> None:
        n = len(self.items)
        local = datetime.fromtimestamp(math.floor(t), self.tz)  # whole seconds
        when = local.replace(tzinfo=_fixed(local.utcoffset()))  # +01:00/+02:00: compares by instant
        self.items.append((t, n, kind(specversion="1.0", id=f"{self.prefix}{n}", source=source, time=when,
                                      subject=subject, data=data)))  # fmt: skip


# -- helpers -------------------------------------------------------------------------------------------


def _per_day(per_year: float, peak: float) -> float:
    """An average working day's arrivals, so that the month-start peak keeps the yearly total."""
    return per_year / P.WORKING_DAYS_PER_YEAR / (1 + (peak - 1) * P.MONTH_START_WORKING_DAYS / P.WORKING_DAYS_PER_MONTH)


def instant(day: date, minutes: int, tz: ZoneInfo) -> float:
    """Epoch seconds of a local wall-clock time (24:00 is the next midnight), as schemas.calendar."""
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz).timestamp()


def poisson(rng: Random, bounds: list[float], weights: Sequence[float], expected: float) -> list[float]:
    """Arrival instants of a Poisson process, piecewise constant per local hour."""
    times, total = [], sum(weights)
    for h, w in enumerate(weights):
        rate = expected * w / total / 3600
        t, end = bounds[h], bounds[h + 1]
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= end:
                break
            times.append(t)
    return times


def _erlang_agents(load: float, aht: float, sl_seconds: float, target: float) -> int:
    """Fewest agents for which Erlang C gives service level >= target at this offered load."""
    n, target = max(1, math.ceil(load)), min(target, 0.99)  # a target of 1 is never reached
    while True:
        if n > load:
            b = 1.0
            for k in range(1, n + 1):
                b = load * b / (k + load * b)  # Erlang B, recursively
            wait = n * b / (n - load * (1 - b))
            if 1 - wait * math.exp(-(n - load) * sl_seconds / aht) >= target:
                return n
        n += 1


@cache
def _fixed(offset: timedelta | None) -> timezone:
    """A fixed-offset zone: datetimes sharing a ZoneInfo compare by wall clock, wrong in the DST fold."""
    return timezone(offset or timedelta(0))


def _phone_number(rng: Random) -> str:
    return f"+467{rng.choice('0236')}{rng.randrange(10**7):07d}"


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def _priority_matcher(keywords: Sequence[str]) -> Callable[[str], bool]:
    """agreements.md: case-insensitive, diacritics ignored, keywords match word prefixes."""
    folded = [re.escape(_fold(k)) for k in keywords if k.strip()]
    if not folded:
        return lambda _subject: False
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(folded) + ")")
    return lambda subject: pattern.search(_fold(subject)) is not None
