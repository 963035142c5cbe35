"""Opening calendars, named days and business time (spec/agreements.md "Business time").

Every expected value below is computed by hand; the comment next to it says how.
Reference dates: 2026-01-01 is a Thursday, 2027-01-01 a Friday. Europe/Stockholm is +01:00
in winter and +02:00 in summer; DST 2026 starts Sun 2026-03-29 and ends Sun 2026-10-25.

SPEC is the calendar of spec/agreements.md: SE holidays, closed midsommarafton, julafton,
nyarsafton and 2026-12-23; Mon 08-12 + 13-16:30, Tue-Thu 08-16:30, Fri 08-16;
valborgsmassoafton 08-13.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as pyholidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.agreements import parse_agreements
from schemas.calendar import NAMED_DAYS, WEEKDAYS, Calendar, DayRule, Interval, local_month_bounds
from schemas.errors import AgreementsError

TZ = ZoneInfo("Europe/Stockholm")
H = 3600.0


def make_calendar(
    hours: dict[str, list[str]],
    *,
    holidays: str | None = None,
    closed: tuple[str, ...] = (),
    reduced: dict[str, list[str]] | None = None,
) -> Calendar:
    return Calendar(
        tz=TZ,
        hours={WEEKDAYS.index(d): tuple(Interval.parse(t) for t in ivs) for d, ivs in hours.items()},
        holidays=holidays,
        closed=tuple(DayRule.parse(c) for c in closed),
        reduced=tuple((DayRule.parse(d), tuple(Interval.parse(t) for t in ivs)) for d, ivs in (reduced or {}).items()),
    )


SPEC = make_calendar(
    {
        "mon": ["08:00-12:00", "13:00-16:30"],
        "tue": ["08:00-16:30"],
        "wed": ["08:00-16:30"],
        "thu": ["08:00-16:30"],
        "fri": ["08:00-16:00"],
    },
    holidays="SE",
    closed=("midsommarafton", "julafton", "nyarsafton", "2026-12-23"),
    reduced={"valborgsmassoafton": ["08:00-13:00"]},
)
# Open around the clock, every day, no holidays: business time == elapsed real time.
ALWAYS = make_calendar({day: ["00:00-24:00"] for day in WEEKDAYS})
# 08:00-16:30 every day (so the DST Sundays are open days).
DAILY = make_calendar({day: ["08:00-16:30"] for day in WEEKDAYS})


def t(text: str) -> datetime:
    """An instant from ISO text; a text without an offset is local Stockholm time."""
    d = datetime.fromisoformat(text)
    return d if d.tzinfo is not None else d.replace(tzinfo=TZ)


# -- business time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "hours"),
    [
        # The spec's example: Fri 15:30-16:00 (0.5 h) + Mon 08:00-09:00 (1 h).
        pytest.param("2026-01-16 15:30", "2026-01-19 09:00", 1.5, id="spec-example-fri-to-mon"),
        # Across lunch: 11-12 (1 h) + 13-14 (1 h); the closed 12-13 hour is not counted.
        pytest.param("2026-01-19 11:00", "2026-01-19 14:00", 2.0, id="across-lunch"),
        # Entirely inside the lunch closure.
        pytest.param("2026-01-19 12:15", "2026-01-19 12:45", 0.0, id="inside-lunch"),
        # Exactly the lunch closure: touches both intervals, overlaps neither.
        pytest.param("2026-01-19 12:00", "2026-01-19 13:00", 0.0, id="exactly-lunch"),
        # Tue 17:00 -> Wed 07:00: evening and night only.
        pytest.param("2026-01-20 17:00", "2026-01-21 07:00", 0.0, id="overnight-closed"),
        # Sat 10:00 -> Sun 15:00: weekend, no hours.
        pytest.param("2026-01-17 10:00", "2026-01-18 15:00", 0.0, id="weekend-only"),
        # b == a and b < a.
        pytest.param("2026-01-20 10:00", "2026-01-20 10:00", 0.0, id="empty"),
        pytest.param("2026-01-20 12:00", "2026-01-20 10:00", 0.0, id="reversed"),
        # Inside one interval: plain elapsed time.
        pytest.param("2026-01-20 09:15", "2026-01-20 10:45", 1.5, id="inside-one-interval"),
        # Whole week Mon 19 Jan - Mon 26 Jan: Mon 7.5 + Tue-Thu 3 x 8.5 + Fri 8 = 41 h.
        pytest.param("2026-01-19 00:00", "2026-01-26 00:00", 41.0, id="whole-week"),
        # Fri 15:00 -> Mon 08:30 across the weekend: Fri 1 h + Mon 0.5 h.
        pytest.param("2026-01-23 15:00", "2026-01-26 08:30", 1.5, id="across-weekend"),
        # Easter 2026: Thu 2 Apr 16:00-16:30 (0.5 h; skartorsdag is not closed in SPEC), Good Friday
        # 3 Apr and Easter Monday 6 Apr are SE holidays, Tue 7 Apr 08-09 (1 h).
        pytest.param("2026-04-02 16:00", "2026-04-07 09:00", 1.5, id="across-easter-2026"),
        # Good Friday alone, inside its would-be hours.
        pytest.param("2026-04-03 08:00", "2026-04-03 16:00", 0.0, id="good-friday"),
        # Easter Monday alone (a Monday, would be 7.5 h).
        pytest.param("2026-04-06 00:00", "2026-04-07 00:00", 0.0, id="easter-monday"),
        # Valborgsmassoafton Thu 30 Apr 2026: reduced to 08-13 = 5 h.
        pytest.param("2026-04-30 07:00", "2026-04-30 18:00", 5.0, id="valborg-reduced"),
        # Valborg 12:00-13:00 (1 h), 1 May (Fri) holiday, weekend, Mon 4 May 08-09 (1 h).
        pytest.param("2026-04-30 12:00", "2026-05-04 09:00", 2.0, id="valborg-to-monday"),
        # Midsommarafton Fri 19 Jun 2026 named in closed: Thu 16:00-16:30 + Mon 22 Jun 08-09.
        pytest.param("2026-06-18 16:00", "2026-06-22 09:00", 1.5, id="across-midsommar"),
        pytest.param("2026-06-19 00:00", "2026-06-20 00:00", 0.0, id="midsommarafton-closed"),
        # Christmas 2026: Tue 22 Dec 16:00-16:30, Wed 23 Dec (ISO date in closed), Thu 24 (julafton),
        # Fri 25 (holiday), weekend, Mon 28 Dec 08-09.
        pytest.param("2026-12-22 16:00", "2026-12-28 09:00", 1.5, id="across-christmas"),
        pytest.param("2026-12-23 00:00", "2026-12-24 00:00", 0.0, id="iso-date-closed"),
        # The same weekday a week earlier is a normal 8.5 h Wednesday.
        pytest.param("2026-12-16 00:00", "2026-12-17 00:00", 8.5, id="normal-wednesday"),
        pytest.param("2026-12-24 00:00", "2026-12-25 00:00", 0.0, id="julafton-closed"),
        # Year boundary: Wed 30 Dec 12:00-16:30 (4.5 h), Thu 31 Dec nyarsafton closed, Fri 1 Jan 2027
        # holiday, weekend, Mon 4 Jan 2027 08:00-10:00 (2 h) = 6.5 h.
        pytest.param("2026-12-30 12:00", "2027-01-04 10:00", 6.5, id="across-new-year"),
        pytest.param("2026-12-31 00:00", "2027-01-01 00:00", 0.0, id="nyarsafton-closed"),
        # Summer time (+02:00): Mon 15 Jun 2026 09:00-12:00 local = 3 h.
        pytest.param("2026-06-15 09:00", "2026-06-15 12:00", 3.0, id="summer-local"),
    ],
)
def test_business_time_spec_calendar(a: str, b: str, hours: float) -> None:
    assert SPEC.business_seconds(t(a), t(b)) == pytest.approx(hours * H)


@pytest.mark.parametrize(
    ("calendar", "a", "b", "hours"),
    [
        # Spring forward: 2026-03-29 has 23 real hours (02:00 -> 03:00 is skipped).
        pytest.param(ALWAYS, "2026-03-29 00:00", "2026-03-30 00:00", 23.0, id="24h-spring-forward"),
        # Fall back: 2026-10-25 has 25 real hours (02:00-03:00 happens twice).
        pytest.param(ALWAYS, "2026-10-25 00:00", "2026-10-26 00:00", 25.0, id="24h-fall-back"),
        # The days either side are plain 24 h days.
        pytest.param(ALWAYS, "2026-03-28 00:00", "2026-03-29 00:00", 24.0, id="24h-before-spring"),
        pytest.param(ALWAYS, "2026-10-26 00:00", "2026-10-27 00:00", 24.0, id="24h-after-fall"),
        # Week Mon 23 Mar - Mon 30 Mar: 7 x 24 - 1.
        pytest.param(ALWAYS, "2026-03-23 00:00", "2026-03-30 00:00", 167.0, id="24h-week-with-spring"),
        # Week Mon 19 Oct - Mon 26 Oct: 7 x 24 + 1.
        pytest.param(ALWAYS, "2026-10-19 00:00", "2026-10-26 00:00", 169.0, id="24h-week-with-fall"),
        # Across the transition instant itself: 01:30 CET -> 03:30 CEST is 1 real hour.
        pytest.param(ALWAYS, "2026-03-29T01:30+01:00", "2026-03-29T03:30+02:00", 1.0, id="24h-skip-hour"),
        # 02:30 CEST (first) -> 02:30 CET (second) is 1 real hour.
        pytest.param(ALWAYS, "2026-10-25T02:30+02:00", "2026-10-25T02:30+01:00", 1.0, id="24h-repeat-hour"),
        # 08:00-16:30 local is 8.5 h on both DST days: the change happens at night.
        pytest.param(DAILY, "2026-03-29 00:00", "2026-03-30 00:00", 8.5, id="office-day-spring-forward"),
        pytest.param(DAILY, "2026-10-25 00:00", "2026-10-26 00:00", 8.5, id="office-day-fall-back"),
        # Sat 28 Mar 08:00 (+01:00) -> Sun 29 Mar 08:00 (+02:00): Sat 8.5 h, Sun 0 h (opens at 08:00).
        pytest.param(DAILY, "2026-03-28 08:00", "2026-03-29 08:00", 8.5, id="office-days-across-spring"),
    ],
)
def test_business_time_dst(calendar: Calendar, a: str, b: str, hours: float) -> None:
    assert calendar.business_seconds(t(a), t(b)) == pytest.approx(hours * H)


def test_dst_day_opening_instants_in_utc() -> None:
    # 08:00 local is 07:00Z in winter and 06:00Z on the spring-forward day.
    assert DAILY.is_open(t("2026-03-28T07:00Z")) and not DAILY.is_open(t("2026-03-28T06:59:59Z"))
    assert DAILY.is_open(t("2026-03-29T06:00Z")) and not DAILY.is_open(t("2026-03-29T05:59:59Z"))
    # 16:30 local on the fall-back day is 15:30Z (CET again).
    assert DAILY.is_open(t("2026-10-25T15:29:59Z")) and not DAILY.is_open(t("2026-10-25T15:30Z"))


# The spec example's two instants, written with different UTC offsets: Fri 16 Jan 15:30 local is
# 14:30Z, Mon 19 Jan 09:00 local is 08:00Z (winter, +01:00).
RECEIVED = ["2026-01-16T14:30:00Z", "2026-01-16T15:30:00+01:00", "2026-01-16T16:30:00+02:00"]
REPLIED = ["2026-01-19T08:00:00Z", "2026-01-19T09:00:00+01:00", "2026-01-19T10:00:00+02:00"]


@pytest.mark.parametrize("a", RECEIVED)
@pytest.mark.parametrize("b", REPLIED)
def test_same_instant_any_offset_same_result(a: str, b: str) -> None:
    # 0.5 h + 1 h whatever offset the instants are written in.
    assert SPEC.business_seconds(t(a), t(b)) == pytest.approx(1.5 * H)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # Summer: Mon 15 Jun 2026 09:00-12:00 local (3 h) written as Z, +01:00 and +02:00.
        ("2026-06-15T07:00:00Z", "2026-06-15T10:00:00Z"),
        ("2026-06-15T08:00:00+01:00", "2026-06-15T11:00:00+01:00"),
        ("2026-06-15T09:00:00+02:00", "2026-06-15T12:00:00+02:00"),
    ],
)
def test_same_instant_any_offset_summer(a: str, b: str) -> None:
    assert SPEC.business_seconds(t(a), t(b)) == pytest.approx(3 * H)


# -- is_open ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-01-20 08:00", True),  # Tue: exactly at opening, [start, end) includes start
        ("2026-01-20 07:59:59", False),  # one second before opening
        ("2026-01-20 16:29:59", True),  # one second before closing
        ("2026-01-20 16:30", False),  # exactly at closing, [start, end) excludes end
        ("2026-01-20T07:00:00Z", True),  # 08:00 local in winter, written in UTC
        ("2026-06-16T06:00:00Z", True),  # 08:00 local in summer (+02:00), written in UTC
        ("2026-06-16T05:59:59Z", False),  # 07:59:59 local in summer
        ("2026-01-19 11:59:59", True),  # Mon: last second before lunch
        ("2026-01-19 12:00", False),  # Mon: lunch starts (end of first interval)
        ("2026-01-19 12:30", False),  # Mon: during lunch closure
        ("2026-01-19 13:00", True),  # Mon: second interval opens
        ("2026-01-23 15:59:59", True),  # Fri closes at 16:00
        ("2026-01-23 16:00", False),
        ("2026-01-24 10:00", False),  # Saturday: no hours
        ("2026-04-03 10:00", False),  # Good Friday: SE public holiday
        ("2026-04-06 10:00", False),  # Easter Monday: SE public holiday
        ("2026-05-14 10:00", False),  # Ascension Day (Thu): SE public holiday
        ("2026-04-02 10:00", True),  # skartorsdag: SPEC does not close it
        ("2026-04-30 12:59:59", True),  # valborgsmassoafton reduced to 08-13
        ("2026-04-30 13:00", False),
        ("2026-06-19 10:00", False),  # midsommarafton, named in closed
        ("2026-12-24 10:00", False),  # julafton, named in closed
        ("2026-12-31 10:00", False),  # nyarsafton, named in closed
        ("2026-12-23 10:00", False),  # ISO date in closed
        ("2027-12-23 10:00", True),  # ... which is only that date, not every 23 Dec (Thu 2027)
        ("2027-06-25 10:00", False),  # midsommarafton 2027 (Fri 25 Jun)
        ("2027-06-18 10:00", True),  # the Friday before it is a normal Friday
    ],
)
def test_is_open(when: str, expected: bool) -> None:
    assert SPEC.is_open(t(when)) is expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-12-31 23:59:59", True),  # last second of the year, inside Dec 31 00:00-24:00
        ("2027-01-01 00:00", True),  # first second of the next year's first interval
        ("2026-03-29T01:59:59+01:00", True),  # last second before spring forward
        ("2026-03-29T03:00:00+02:00", True),  # first second after it
    ],
)
def test_is_open_always(when: str, expected: bool) -> None:
    assert ALWAYS.is_open(t(when)) is expected


def test_is_open_before_clock_epoch() -> None:
    # is_open needs no business clock, so a time before 2000 is an ordinary question
    # (Fri 31 Dec 1999 10:00; nyarsafton is closed). It used to recurse without end.
    assert not SPEC.is_open(t("1999-12-31 10:00"))
    assert SPEC.is_open(t("1999-12-30 10:00"))


# -- intervals_on -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-01-19", ["08:00-12:00", "13:00-16:30"]),  # Monday: two intervals
        ("2026-01-23", ["08:00-16:00"]),  # Friday
        ("2026-01-24", []),  # Saturday: missing day is closed
        ("2026-04-30", ["08:00-13:00"]),  # valborgsmassoafton, reduced
        ("2026-04-03", []),  # Good Friday
        ("2026-12-23", []),  # ISO date in closed
        # Valborg 2027 is a Friday: reduced overrides the 08-16 Friday.
        ("2027-04-30", ["08:00-13:00"]),
        # Valborg 2022 was a Saturday and 2028 is a Sunday: a reduced day has exactly its listed
        # intervals whatever its weekday (spec/agreements.md), so the named day opens them.
        ("2022-04-30", ["08:00-13:00"]),
        ("2028-04-30", ["08:00-13:00"]),
        ("2028-04-29", []),  # the Saturday before it stays closed
    ],
)
def test_intervals_on(day: str, expected: list[str]) -> None:
    assert SPEC.intervals_on(date.fromisoformat(day)) == tuple(Interval.parse(x) for x in expected)


# -- reduced days open, shorten or lengthen any day (spec/agreements.md) -----------------------

SPEC_HOURS = {
    "mon": ["08:00-12:00", "13:00-16:30"],
    "tue": ["08:00-16:30"],
    "wed": ["08:00-16:30"],
    "thu": ["08:00-16:30"],
    "fri": ["08:00-16:00"],
}
# The spec's example calendar with its reduced Saturday, 2026-06-13 10:00-14:00, and a reduced
# public holiday: Ascension Day, Thu 2026-05-14 (SE), 10:00-12:00.
REDUCED = make_calendar(
    SPEC_HOURS,
    holidays="SE",
    closed=("midsommarafton", "julafton", "nyarsafton", "2026-12-23"),
    reduced={"valborgsmassoafton": ["08:00-13:00"], "2026-06-13": ["10:00-14:00"], "2026-05-14": ["10:00-12:00"]},
)


def test_reduced_days_are_what_they_seem() -> None:
    # The premises of the tests below, from independent sources.
    assert date(2026, 6, 13).weekday() == 5  # a Saturday
    assert date(2026, 5, 14).weekday() == 3  # a Thursday ...
    assert date(2026, 5, 14) in pyholidays.country_holidays("SE", years=2026)  # ... and Ascension Day


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-06-13", ["10:00-14:00"]),  # the reduced Saturday: exactly its listed interval
        ("2026-06-06", []),  # the Saturday before: no hours (also National Day)
        ("2026-06-27", []),  # two Saturdays later: the ISO date is that day only
        ("2026-05-14", ["10:00-12:00"]),  # Ascension Day, a public holiday, reduced: opens 10-12
        ("2027-05-06", []),  # Ascension Day 2027 (Thu): the ISO date was 2026's only
        ("2026-05-13", ["08:00-16:30"]),  # the Wednesday before: its regular hours
    ],
)
def test_reduced_day_has_exactly_its_intervals(day: str, expected: list[str]) -> None:
    assert REDUCED.intervals_on(date.fromisoformat(day)) == tuple(Interval.parse(x) for x in expected)


@pytest.mark.parametrize(
    ("a", "b", "hours"),
    [
        # Fri 12 Jun 15:00-16:00 (1 h) + Sat 13 Jun 10:00-14:00 (4 h) + Mon 15 Jun 08:00-09:00 (1 h).
        pytest.param("2026-06-12 15:00", "2026-06-15 09:00", 6.0, id="across-the-reduced-saturday"),
        # Inside the Saturday: 11:00-13:30 lies within 10-14.
        pytest.param("2026-06-13 11:00", "2026-06-13 13:30", 2.5, id="inside-the-reduced-saturday"),
        # The whole Saturday, midnight to midnight: 10-14 only.
        pytest.param("2026-06-13 00:00", "2026-06-14 00:00", 4.0, id="whole-reduced-saturday"),
        # Sat 09:00 -> 10:30: only 10:00-10:30 is open.
        pytest.param("2026-06-13 09:00", "2026-06-13 10:30", 0.5, id="saturday-opening"),
        # Wed 13 May 16:00-16:30 (0.5 h) + Thu 14 May 10-12 (2 h) + Fri 15 May 08-09 (1 h).
        pytest.param("2026-05-13 16:00", "2026-05-15 09:00", 3.5, id="across-the-reduced-holiday"),
    ],
)
def test_business_time_with_reduced_days(a: str, b: str, hours: float) -> None:
    assert REDUCED.business_seconds(t(a), t(b)) == pytest.approx(hours * H)


def test_business_time_without_the_reduced_saturday() -> None:
    # The same span on SPEC: Fri 15:00-16:00 + Mon 08:00-09:00; the Saturday adds nothing.
    assert SPEC.business_seconds(t("2026-06-12 15:00"), t("2026-06-15 09:00")) == pytest.approx(2 * H)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-06-13 09:59:59", False),  # before the Saturday's 10:00
        ("2026-06-13 10:00", True),  # its start is included
        ("2026-06-13T08:00:00Z", True),  # 10:00 local in summer (+02:00), written in UTC
        ("2026-06-13 13:59:59", True),
        ("2026-06-13 14:00", False),  # its end is not
        ("2026-05-14 08:30", False),  # Ascension Day before its reduced 10:00
        ("2026-05-14 11:00", True),
    ],
)
def test_is_open_on_reduced_days(when: str, expected: bool) -> None:
    assert REDUCED.is_open(t(when)) is expected


# A day both closed and reduced is an error in the file (spec/agreements.md); the loader finds
# it for a name, a date, and a date that is the other list's named day in that date's year.
CLOSED_AND_REDUCED = [
    # (closed, reduced day, is it the same day?)
    pytest.param(["julafton"], "julafton", True, id="same-named-day"),
    pytest.param(["2026-06-13"], "2026-06-13", True, id="same-iso-date"),
    pytest.param(["julafton"], "2026-12-24", True, id="iso-reduced-is-named-closed"),  # julafton 2026
    pytest.param(["2026-12-24"], "julafton", True, id="named-reduced-is-iso-closed"),
    pytest.param(["midsommarafton"], "2027-06-25", True, id="iso-is-midsommarafton-2027"),  # Fri 25 Jun 2027
    pytest.param(["nyarsafton", "skartorsdag"], "2026-04-02", True, id="second-closed-entry"),  # skartorsdag 2026
    pytest.param(["julafton"], "2026-12-23", False, id="iso-the-day-before-julafton"),
    pytest.param(["midsommarafton"], "2026-06-26", False, id="iso-a-week-after-midsommarafton"),
    pytest.param(["2026-12-23"], "julafton", False, id="iso-closed-is-not-julafton"),
    pytest.param(["julafton"], "nyarsafton", False, id="different-named-days"),
    pytest.param(["2026-06-13"], "2027-06-13", False, id="same-date-another-year"),
]


def agreements_with(closed: list[str], reduced_day: str) -> dict[str, object]:
    calendar = {"holidays": "SE", "closed": closed, "hours": SPEC_HOURS, "reduced": {reduced_day: ["10:00-14:00"]}}
    return {"timezone": "Europe/Stockholm", "calendars": {"kontor": calendar}}


@pytest.mark.parametrize(("closed", "reduced_day", "same"), CLOSED_AND_REDUCED)
def test_closed_and_reduced_is_an_error(closed: list[str], reduced_day: str, same: bool) -> None:
    raw = agreements_with(closed, reduced_day)
    if same:
        with pytest.raises(
            AgreementsError, match="^" + re.escape(f"calendars.kontor.reduced.{reduced_day}: also listed")
        ):
            parse_agreements(raw)
    else:
        cal = parse_agreements(raw).calendars["kontor"]
        # Not the same day: the reduced day has its hours, wherever it falls.
        rule = DayRule.parse(reduced_day)
        day = rule.on(2026) or rule.on(2027)
        assert day is not None
        assert cal.intervals_on(day) == (Interval.parse("10:00-14:00"),)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("08:00-16:30", 480, 990),  # 8 x 60, 16 x 60 + 30
        ("00:00-24:00", 0, 1440),  # 24:00 is the next midnight
        ("13:00 - 16:30", 780, 990),  # spaces around the dash are allowed
    ],
)
def test_interval_parse(text: str, start: int, end: int) -> None:
    assert Interval.parse(text) == Interval(start, end)


@pytest.mark.parametrize(
    "text", ["16:00-08:00", "08:00-08:00", "08:00", "0800-1200", "08:00-24:30", "25:00-26:00", "08:60-09:00", "x-y"]
)
def test_interval_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid interval"):
        Interval.parse(text)


# -- named days ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "year", "expected"),
    [
        # Friday between 19 and 25 June.
        ("midsommarafton", 2026, "2026-06-19"),  # 19 Jun 2026 is a Friday (lower bound)
        ("midsommarafton", 2027, "2027-06-25"),  # 25 Jun 2027 is a Friday (upper bound)
        ("midsommarafton", 2025, "2025-06-20"),
        ("midsommarafton", 2024, "2024-06-21"),
        # Thursday before Easter Sunday (2026-04-05, 2027-03-28, 2025-04-20, 2024-03-31).
        ("skartorsdag", 2026, "2026-04-02"),
        ("skartorsdag", 2027, "2027-03-25"),
        ("skartorsdag", 2025, "2025-04-17"),
        ("skartorsdag", 2024, "2024-03-28"),
        # Friday before All Saints' Day (the Saturday between 31 Oct and 6 Nov).
        ("allhelgonaafton", 2026, "2026-10-30"),  # All Saints' Day Sat 31 Oct 2026
        ("allhelgonaafton", 2027, "2027-11-05"),  # All Saints' Day Sat 6 Nov 2027
        ("allhelgonaafton", 2025, "2025-10-31"),  # All Saints' Day Sat 1 Nov 2025
        ("allhelgonaafton", 2024, "2024-11-01"),  # All Saints' Day Sat 2 Nov 2024
        # Fixed dates.
        ("trettondagsafton", 2026, "2026-01-05"),
        ("trettondagsafton", 2027, "2027-01-05"),
        ("valborgsmassoafton", 2026, "2026-04-30"),
        ("valborgsmassoafton", 2027, "2027-04-30"),
        ("julafton", 2026, "2026-12-24"),
        ("nyarsafton", 2027, "2027-12-31"),
    ],
)
def test_named_days(name: str, year: int, expected: str) -> None:
    assert DayRule.parse(name).on(year) == date.fromisoformat(expected)


@pytest.mark.parametrize("year", range(2000, 2041))
def test_named_days_agree_with_python_holidays(year: int) -> None:
    # An independent source: each afton is the day before the public holiday it precedes.
    by_name = {name: d for d, name in pyholidays.country_holidays("SE", years=year, language="en_US").items()}
    assert NAMED_DAYS["midsommarafton"](year) + timedelta(days=1) == by_name["Midsummer Day"]
    assert NAMED_DAYS["skartorsdag"](year) + timedelta(days=1) == by_name["Good Friday"]
    assert NAMED_DAYS["allhelgonaafton"](year) + timedelta(days=1) == by_name["All Saints' Day"]
    assert NAMED_DAYS["trettondagsafton"](year) + timedelta(days=1) == by_name["Epiphany"]
    assert NAMED_DAYS["midsommarafton"](year).weekday() == 4  # Friday
    assert NAMED_DAYS["skartorsdag"](year).weekday() == 3  # Thursday
    assert NAMED_DAYS["allhelgonaafton"](year).weekday() == 4  # Friday


def test_iso_day_rule_applies_to_its_year_only() -> None:
    rule = DayRule.parse("2026-12-23")
    assert rule.on(2026) == date(2026, 12, 23)
    assert rule.on(2027) is None


@pytest.mark.parametrize("text", ["paskafton", "Julafton", "2026-02-30", "2026-13-01", "23 Dec", ""])
def test_day_rule_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="unknown day"):
        DayRule.parse(text)


# -- the business clock -------------------------------------------------------------------------


def test_clock_starts_at_epoch() -> None:
    # B(1 Jan 2000 00:00 local) = 0; 1 Jan 2000 is a holiday (Sat), 3 Jan Mon 08:00 is still 0.
    assert SPEC.clock(t("2000-01-01 00:00")) == 0.0
    assert SPEC.clock(t("2000-01-03 08:00")) == 0.0
    # Mon 3 Jan 2000 10:00: 2 open hours since the epoch.
    assert SPEC.clock(t("2000-01-03 10:00")) == pytest.approx(2 * H)
    # ALWAYS: B(1 Jan 2000 10:00 local) = 10 h.
    assert ALWAYS.clock(t("2000-01-01 10:00")) == pytest.approx(10 * H)


def test_clock_runs_back_before_its_epoch_to_1990() -> None:
    # Older data (the Technion bank's calls of 1999) is read off the same clock, negative before
    # 2000, so the values stored since 2000 keep their meaning. ALWAYS is open all the time:
    # B(31 Dec 1999 22:00 local) = -2 h, B(1 Jan 1990 01:00 local, the first instant accepted,
    # 00:00Z) = -(the seconds from then to 2000).
    assert ALWAYS.clock(t("1999-12-31 22:00")) == pytest.approx(-2 * H)
    elapsed = t("2000-01-01 00:00").timestamp() - t("1990-01-01 01:00").timestamp()
    assert ALWAYS.clock(t("1990-01-01 01:00")) == pytest.approx(-elapsed)
    # Across the epoch the business time is the sum of the open hours on both sides. SPEC:
    # Thu 30 Dec 1999 15:00-16:30 (1.5 h), Fri 31 Dec nyarsafton closed, Sat 1 Jan 2000 a
    # holiday, Mon 3 Jan 08:00-09:30 (1.5 h): 3 h.
    assert SPEC.business_seconds(t("1999-12-30 15:00"), t("2000-01-03 09:30")) == pytest.approx(3 * H)


def test_clock_before_1990_is_an_error() -> None:
    # The edge is the instant the boundary accepts from (1990-01-01T00:00Z), in any zone: in New
    # York 00:30Z is still 31 Dec 1989, local, and yet a valid time.
    with pytest.raises(ValueError, match="before 1990"):
        SPEC.clock(datetime(1989, 12, 31, 23, 59, 59, tzinfo=UTC))
    new_york = dataclasses.replace(ALWAYS, tz=ZoneInfo("America/New_York"), _years={}, _rule_cache={})
    # B = -(seconds from 1 Jan 1990 00:30Z to 1 Jan 2000 00:00 New York, 05:00Z), open all along.
    at = datetime(1990, 1, 1, 0, 30, tzinfo=UTC)
    assert new_york.clock(at) == pytest.approx(at.timestamp() - datetime(2000, 1, 1, 5, tzinfo=UTC).timestamp())


def test_clock_is_constant_while_closed() -> None:
    # Fri 16:00 -> Mon 08:00: the clock does not move.
    assert SPEC.clock(t("2026-01-23 16:00")) == SPEC.clock(t("2026-01-26 08:00"))


def test_clock_always_equals_elapsed_since_epoch() -> None:
    # ALWAYS is open all the time, so B(t) is the real time since 2000-01-01 00:00 local
    # (timestamps: subtracting two datetimes that share a tzinfo would give wall-clock time).
    epoch = t("2000-01-01 00:00")
    for when in ("2026-03-29 12:00", "2026-10-25 12:00", "2027-01-04 10:00"):
        assert ALWAYS.clock(t(when)) == pytest.approx(t(when).timestamp() - epoch.timestamp())


INSTANTS = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2028, 2, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
CALENDARS = st.sampled_from([SPEC, ALWAYS, DAILY])


def reference_seconds(cal: Calendar, a: datetime, b: datetime) -> float:
    """Overlap of [a, b] with each local day's intervals, summed day by day (a slow oracle)."""
    if b <= a:
        return 0.0

    def instant(day: date, minutes: int) -> float:
        if minutes == 1440:
            day, minutes = day + timedelta(days=1), 0
        return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=TZ).timestamp()

    total, day, last = 0.0, a.astimezone(TZ).date(), b.astimezone(TZ).date()
    while day <= last:
        for iv in cal.intervals_on(day):
            total += max(0.0, min(instant(day, iv.end), b.timestamp()) - max(instant(day, iv.start), a.timestamp()))
        day += timedelta(days=1)
    return total


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS, INSTANTS)
def test_clock_is_monotone_and_additive(cal: Calendar, x: datetime, y: datetime, z: datetime) -> None:
    a, b, c = sorted((x, y, z))
    assert cal.clock(a) <= cal.clock(b) <= cal.clock(c)
    assert cal.business_seconds(a, c) == pytest.approx(cal.business_seconds(a, b) + cal.business_seconds(b, c))
    # Never more than the real elapsed time, never negative.
    assert 0.0 <= cal.business_seconds(a, c) <= (c - a).total_seconds() + 1e-6


@settings(max_examples=100, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS)
def test_business_seconds_matches_day_by_day_oracle(cal: Calendar, x: datetime, y: datetime) -> None:
    a, b = sorted((x, y))
    if (b - a).days > 40:  # keep the oracle fast
        b = a + timedelta(days=40)
    assert cal.business_seconds(a, b) == pytest.approx(reference_seconds(cal, a, b), abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(INSTANTS, INSTANTS)
def test_always_open_business_time_is_elapsed_time(x: datetime, y: datetime) -> None:
    a, b = sorted((x, y))
    assert ALWAYS.business_seconds(a, b) == pytest.approx((b - a).total_seconds())


# -- local month bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "start", "end"),
    [
        # March starts in CET (+01:00) and ends in CEST (+02:00).
        ("2026-03", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"),
        # October starts in CEST and ends in CET.
        ("2026-10", "2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z"),
        # December rolls into January of the next year.
        ("2026-12", "2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z"),
        # January starts on the previous year's 31 Dec in UTC.
        ("2027-01", "2026-12-31T23:00:00Z", "2027-01-31T23:00:00Z"),
        # Summer month, both ends +02:00.
        ("2026-06", "2026-05-31T22:00:00Z", "2026-06-30T22:00:00Z"),
    ],
)
def test_local_month_bounds(month: str, start: str, end: str) -> None:
    got = local_month_bounds(month, TZ)
    assert got == (t(start), t(end))
    assert all(d.utcoffset() == timedelta(0) for d in got)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026", "march", "2026-03-01", "", "2026-3x"])
def test_local_month_bounds_rejects(month: str) -> None:
    with pytest.raises(ValueError, match="invalid month"):
        local_month_bounds(month, TZ)
