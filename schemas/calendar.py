"""Opening calendars and business time (spec/agreements.md).

A calendar turns local opening hours into UTC intervals day by day, so DST days come out
right by construction: 08:00-16:30 is 8.5 h whether the day has 23, 24 or 25 hours.

Business time is read off a *business clock*: B(t) = open seconds from CLOCK_EPOCH to t
(negative before it: the clock runs back to FIRST_CLOCK_YEAR for older data, while the values
stored since 2000 keep their meaning). The business time between a and b is B(b) - B(a). The
warehouse stores B at a case's opening, so the age of an open case at any evaluation time is one
subtraction in SQL.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays as pyholidays
from dateutil.easter import easter

CLOCK_EPOCH_YEAR = 2000  # B = 0 here; the warehouse stores B, so this never moves
FIRST_CLOCK_YEAR = 1990  # the clock's first year (schemas/events.py: EARLIEST_TIME)
_FIRST_CLOCK_TS = datetime(FIRST_CLOCK_YEAR, 1, 1, tzinfo=UTC).timestamp()
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _friday_between(year: int, month: int, first_day: int) -> date:
    d = date(year, month, first_day)
    return d + timedelta(days=(4 - d.weekday()) % 7)


def _allhelgonaafton(year: int) -> date:
    # All Saints' Day (Sweden) is the Saturday between 31 Oct and 6 Nov; afton is the day before.
    saturday = date(year, 10, 31) + timedelta(days=(5 - date(year, 10, 31).weekday()) % 7)
    return saturday - timedelta(days=1)


NAMED_DAYS = {
    "midsommarafton": lambda y: _friday_between(y, 6, 19),
    "julafton": lambda y: date(y, 12, 24),
    "nyarsafton": lambda y: date(y, 12, 31),
    "trettondagsafton": lambda y: date(y, 1, 5),
    "skartorsdag": lambda y: easter(y) - timedelta(days=3),
    "valborgsmassoafton": lambda y: date(y, 4, 30),
    "allhelgonaafton": _allhelgonaafton,
}


@dataclass(frozen=True)
class Interval:
    """Local opening interval within one day, in minutes after midnight (end may be 1440)."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Interval:
        """`"08:00-16:30"`; raises ValueError with a readable reason."""
        try:
            a, b = (part.strip() for part in text.split("-"))
            start, end = _minutes(a), _minutes(b)
        except ValueError:
            raise ValueError(f"invalid interval '{text}' (expected HH:MM-HH:MM)") from None
        if not start < end:
            raise ValueError(f"invalid interval '{text}': end must be after start")
        return cls(start, end)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    if len(m) != 2 or not (0 <= int(h) <= 24 and 0 <= int(m) < 60) or (int(h) == 24 and int(m)):
        raise ValueError(hhmm)
    return int(h) * 60 + int(m)


@dataclass(frozen=True)
class DayRule:
    """A named day (`julafton`) or an ISO date (`2026-12-23`)."""

    name: str

    @classmethod
    def parse(cls, text: str) -> DayRule:
        if text not in NAMED_DAYS:
            try:
                date.fromisoformat(text)
            except ValueError:
                known = ", ".join(sorted(NAMED_DAYS))
                raise ValueError(f"unknown day '{text}' (a date YYYY-MM-DD or one of: {known})") from None
        return cls(text)

    def on(self, year: int) -> date | None:
        if self.name in NAMED_DAYS:
            return NAMED_DAYS[self.name](year)
        d = date.fromisoformat(self.name)
        return d if d.year == year else None


@dataclass(frozen=True, eq=False)
class Calendar:
    tz: ZoneInfo
    hours: dict[int, tuple[Interval, ...]]  # weekday (0 = Monday) -> intervals
    holidays: str | None = None  # python-holidays country code
    closed: tuple[DayRule, ...] = ()
    reduced: tuple[tuple[DayRule, tuple[Interval, ...]], ...] = ()
    _years: dict[int, _Year] = field(default_factory=dict, repr=False)
    _rule_cache: dict[int, tuple[frozenset[date], dict[date, tuple[Interval, ...]]]] = field(
        default_factory=dict, repr=False
    )

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """Local opening intervals of one day, after holidays, closed and reduced days.

        A day listed under `reduced` has exactly its listed intervals, whatever its weekday and
        even if it is a public holiday: `reduced` can shorten, lengthen or open a day
        (spec/agreements.md). A day both closed and reduced is an error in the file
        (schemas/agreements.py); a Calendar built directly with one gives the reduced hours."""
        closed, reduced = self._rules(day.year)
        listed = reduced.get(day)
        if listed is not None:
            return listed
        if day in closed:
            return ()
        return self.hours.get(day.weekday(), ())

    def is_open(self, t: datetime) -> bool:
        ts, year = self._locate(t)
        i = bisect.bisect_right(year.starts, ts) - 1
        return i >= 0 and ts < year.ends[i]

    def clock(self, t: datetime) -> float:
        """B(t): business seconds from 1 Jan CLOCK_EPOCH_YEAR (local) to t (negative before it)."""
        ts, year = self._locate(t)
        if ts < _FIRST_CLOCK_TS:  # by the instant: 1 Jan 1990 00:30Z is 1989 in New York, yet valid
            raise ValueError(f"time {t.isoformat()} is before {FIRST_CLOCK_YEAR}")
        i = bisect.bisect_right(year.starts, ts) - 1
        if i < 0:
            return year.offset
        return year.offset + year.cum[i] + min(ts, year.ends[i]) - year.starts[i]

    def business_seconds(self, a: datetime, b: datetime) -> float:
        """Length of the overlap of [a, b] with the opening intervals (0 if b <= a)."""
        return max(0.0, self.clock(b) - self.clock(a))

    # -- per-year tables, built lazily and cached ------------------------------------------

    def _locate(self, t: datetime) -> tuple[float, _Year]:
        """Epoch seconds of t and the table of its local year. The year in t's own offset is
        the local one or a neighbour (offsets are within a day), so no time-zone conversion."""
        ts = t.timestamp()
        year = self._year(t.year)
        if ts < year.begins:
            year = self._year(t.year - 1)
        elif ts >= year.next_begins:
            year = self._year(t.year + 1)
        return ts, year

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is None:
            if year > CLOCK_EPOCH_YEAR:
                cached = _Year.build(self, year, self._year(year - 1).end_offset)
            elif year == CLOCK_EPOCH_YEAR or year < FIRST_CLOCK_YEAR - 1:  # the clock's origin, or unused
                cached = _Year.build(self, year, 0.0)
            else:  # before the origin: this year's open seconds before the next year's start
                cached = _Year.build(self, year, 0.0)
                cached.offset = self._year(year + 1).offset - cached.end_offset
                cached.__dict__.pop("end_offset", None)  # computed with offset 0
            self._years[year] = cached
        return cached

    def _rules(self, year: int) -> tuple[frozenset[date], dict[date, tuple[Interval, ...]]]:
        """The year's closed days (public holidays and `closed`) and its reduced days."""
        if year not in self._rule_cache:
            closed = {d for rule in self.closed if (d := rule.on(year)) is not None}
            if self.holidays:
                closed |= set(pyholidays.country_holidays(self.holidays, years=year))
            reduced = {d: iv for rule, iv in self.reduced if (d := rule.on(year)) is not None}
            self._rule_cache[year] = (frozenset(closed), reduced)
        return self._rule_cache[year]


@dataclass
class _Year:
    number: int
    begins: float  # epoch seconds of local 1 January 00:00
    next_begins: float
    starts: list[float]
    ends: list[float]
    cum: list[float]  # open seconds in this year before interval i
    offset: float  # open seconds from the epoch to this year's start

    @cached_property
    def end_offset(self) -> float:
        return self.offset + (self.cum[-1] + self.ends[-1] - self.starts[-1] if self.starts else 0.0)

    @classmethod
    def build(cls, cal: Calendar, year: int, offset: float) -> _Year:
        starts: list[float] = []
        ends: list[float] = []
        cum: list[float] = []
        total = 0.0
        day = date(year, 1, 1)
        while day.year == year:
            for iv in cal.intervals_on(day):
                a, b = local_instant(day, iv.start, cal.tz), local_instant(day, iv.end, cal.tz)
                if b <= a:
                    continue  # the wall-clock interval does not exist that day (spring forward)
                starts.append(a)
                ends.append(b)
                cum.append(total)
                total += b - a
            day += timedelta(days=1)
        begins, next_begins = local_instant(date(year, 1, 1), 0, cal.tz), local_instant(date(year + 1, 1, 1), 0, cal.tz)
        return cls(year, begins, next_begins, starts, ends, cum, offset)


def local_instant(day: date, minutes: int, tz: ZoneInfo) -> float:
    """UTC epoch seconds of a local wall-clock time (24:00 is the next midnight)."""
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.timestamp()


def month_days(month: str) -> tuple[date, date]:
    """The first and the last local date of a month `YYYY-MM`."""
    y, m = (int(p) for p in month.split("-"))
    return date(y, m, 1), date(y + m // 12, m % 12 + 1, 1) - timedelta(days=1)


def month_before(day: date) -> str:
    """`YYYY-MM` of the month before the one `day` lies in (2026-01-15 -> "2025-12")."""
    last = day.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def local_month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """`2026-04` -> its first instant and the first instant of the next month, in UTC."""
    try:
        y, m = (int(p) for p in month.split("-"))
        start = datetime(y, m, 1, tzinfo=tz)
    except ValueError:
        raise ValueError(f"invalid month '{month}' (expected YYYY-MM)") from None
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
