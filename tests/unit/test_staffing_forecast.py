"""The arrival forecast (stream_jobs/core/arrivals.py) on histories made by hand.

Every expected value is computed by hand; the comment beside it says how. The calendars open
08:00-08:30 (slots 32 and 33) or 08:00-09:00 (slots 32-35), Monday to Friday, so a day's
history is two or four numbers. Reference dates: 2026-03-16 is a Monday; Europe/Stockholm is
+01:00 until Sun 2026-03-29 and +02:00 after; it goes back to +01:00 on Sun 2026-10-25. Without
public holidays, April 2026's working days are 1 (Wed), 2, 3, 6 (Mon), 7, 8 …; May's 1 (Fri),
4 (Mon), 5, 6, 7, 8, 11 ….
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from schemas.agreements import parse_agreements
from schemas.calendar import Calendar
from stream_jobs.core import arrivals
from stream_jobs.core.arrivals import day_slots, fit, is_month_start, slot_of, slot_start, working_day_ordinal

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def calendar(hours: str = "08:00-08:30", **extra: Any) -> Calendar:
    raw = {
        "timezone": "Europe/Stockholm",
        "calendars": {"c": {"hours": {d: [hours] for d in WEEKDAYS}, **extra}},
        "queues": {
            "q": {
                "name": "Q",
                "calendar": "c",
                "service_level_seconds": 60,
                "service_level_target": 0.8,
                "answer_rate_target": 0.9,
            }
        },
    }
    return parse_agreements(raw).calendars["c"]


def history(days: dict[date, tuple[float, ...]], first_slot: int = 32) -> dict[tuple[date, int], float]:
    """{day: (count of slot 32, count of slot 33, …)} as the model's input."""
    return {(day, first_slot + i): n for day, counts in days.items() for i, n in enumerate(counts) if n}


MON, TUE, WED = date(2026, 3, 16), date(2026, 3, 17), date(2026, 3, 18)  # the 12th-14th working days of March


def test_one_weekday_is_the_mean_of_each_slot() -> None:
    # Two Mondays: slot 32 had 2 and 4 calls, slot 33 had 6 and 8. With one weekday the model's
    # maximum likelihood is each slot's mean: 3 and 7.
    cal = calendar()
    data = {MON: (2, 6), MON + timedelta(7): (4, 8)}
    model = fit(history(data), data, cal)
    assert model.expected(date(2026, 4, 20)) == pytest.approx({32: 3.0, 33: 7.0})  # a Monday mid-April
    assert model.month_start == 1.0  # no month-start day in the history: (0 + 20) / (0 + 20)


def test_weekday_times_time_of_day_is_the_independence_fit() -> None:
    # Monday (4, 4), Tuesday (0, 4): the table weekday × slot has row totals 8 and 4, column
    # totals 4 and 8, grand total 12. The multiplicative model's fit is row × column / total:
    # Monday 8·4/12 = 2.667 and 8·8/12 = 5.333, Tuesday 4·4/12 = 1.333 and 4·8/12 = 2.667.
    cal = calendar()
    data = {MON: (4, 4), TUE: (0, 4)}
    model = fit(history(data), data, cal)
    assert model.expected(date(2026, 4, 20)) == pytest.approx({32: 8 * 4 / 12, 33: 8 * 8 / 12})
    assert model.expected(date(2026, 4, 21)) == pytest.approx({32: 4 * 4 / 12, 33: 4 * 8 / 12})
    # A weekday not in the history (Wednesday) gets the mean level of those seen: a day of
    # (8 + 4) / 2 = 6 calls, shared 1 : 2 as the others.
    assert model.expected(date(2026, 4, 22)) == pytest.approx({32: 2.0, 33: 4.0})


def test_an_exactly_multiplicative_history_is_given_back() -> None:
    # Each Wednesday is half a Monday: Mon (3, 7), Wed (1.5, 3.5) on average over two weeks.
    cal = calendar()
    data = {MON: (2, 6), MON + timedelta(7): (4, 8), WED: (1, 3), WED + timedelta(7): (2, 4)}
    model = fit(history(data), data, cal)
    assert model.expected(date(2026, 4, 20)) == pytest.approx({32: 3.0, 33: 7.0})
    assert model.expected(date(2026, 4, 22)) == pytest.approx({32: 1.5, 33: 3.5})


def test_a_slot_without_calls_in_the_covered_days_counts_as_zero() -> None:
    # The history covers three Mondays; the third had no call at all (no key in the arrivals):
    # the means are (2 + 4 + 0) / 3 = 2 and (6 + 8 + 0) / 3 = 4.667. Days outside `days` (the
    # Monday after) are not history, whatever the arrivals say of them.
    cal = calendar()
    data = {MON: (2, 6), MON + timedelta(7): (4, 8), MON + timedelta(14): (0, 0)}
    counts = history(data) | {(MON + timedelta(21), 32): 100.0}
    model = fit(counts, data, cal)
    assert model.expected(date(2026, 4, 20)) == pytest.approx({32: 2.0, 33: 14 / 3})


def test_calls_while_closed_are_not_arrivals_to_staff_for() -> None:
    # A call counted at 07:45 (slot 31) on an ordinary Monday is out of hours: not in the fit.
    cal = calendar()
    counts = history({MON: (2, 6)}) | {(MON, 31): 5.0}
    model = fit(counts, [MON], cal)
    assert model.expected(date(2026, 4, 20)) == pytest.approx({32: 2.0, 33: 6.0})


# -- the month's first working days ----------------------------------------------------------


def test_the_month_start_multiplier_is_observed_over_expected() -> None:
    # Ordinary Mondays (2, 2) twice: a Monday expects 4 calls. Monday 6 April 2026 is April's 4th
    # working day (1, 2, 3, 6 without holidays), so a month-start day: it had (5, 5) = 10 calls.
    # Without a prior m = 10 / 4 = 2.5; with the default 20 pseudo-calls (10 + 20) / (4 + 20) = 1.25.
    cal = calendar()
    data = {MON: (2, 2), MON + timedelta(7): (2, 2), date(2026, 4, 6): (5, 5)}
    exact = fit(history(data), data, cal, prior=0)
    assert exact.month_start == pytest.approx(2.5)
    assert (exact.month_start_observed, exact.month_start_expected) == (10.0, pytest.approx(4.0))
    assert exact.ordinary_days == 2 and exact.month_start_seen == 1
    assert fit(history(data), data, cal).month_start == pytest.approx(30 / 24)
    # The level and shape come from the ordinary days only: (2, 2), not pulled up by the peak.
    # Monday 4 May is May's 2nd working day (1 May is a Friday): 2 × 2.5 = 5 per slot; Monday
    # 11 May is the 7th: ordinary, 2 per slot.
    assert exact.expected(date(2026, 5, 4)) == pytest.approx({32: 5.0, 33: 5.0})
    assert exact.expected(date(2026, 5, 11)) == pytest.approx({32: 2.0, 33: 2.0})


def test_a_queue_without_a_peak_gets_about_one() -> None:
    # The month-start Monday had what an ordinary Monday has: (4 + 20) / (4 + 20) = 1.
    cal = calendar()
    data = {MON: (2, 2), date(2026, 4, 6): (2, 2)}
    assert fit(history(data), data, cal).month_start == pytest.approx(1.0)


def test_month_start_counts_working_days_of_the_calendar() -> None:
    # With Swedish holidays, 1 May 2026 (Friday) is closed, so Monday 4 May is May's first working
    # day and Monday 11 May its 6th (4, 5, 6, 7, 8, 11): no longer a month start at 5.
    cal = calendar(holidays="SE")
    assert working_day_ordinal(cal, date(2026, 5, 1)) is None
    assert working_day_ordinal(cal, date(2026, 5, 4)) == 1
    assert working_day_ordinal(cal, date(2026, 5, 8)) == 5
    assert is_month_start(cal, date(2026, 5, 8)) and not is_month_start(cal, date(2026, 5, 11))
    assert not is_month_start(cal, date(2026, 5, 9))  # a Saturday: closed, no working day


# -- holidays and afton days ---------------------------------------------------------------------


def test_a_closed_day_expects_nothing_and_a_reduced_day_keeps_its_open_slots() -> None:
    # Ordinary Thursdays (2, 6). 30 April 2026 (Thursday, valborgsmässoafton) opens 08:00-08:15
    # only: slot 32 at the Thursday rate, 2; 1 May (public holiday) and midsommarafton 19 June
    # (closed) open nothing; 14 May (Ascension Day, a Thursday) neither.
    cal = calendar(holidays="SE", closed=["midsommarafton"], reduced={"valborgsmassoafton": ["08:00-08:15"]})
    thursdays = {date(2026, 3, 19): (2, 6), date(2026, 3, 26): (2, 6)}
    model = fit(history(thursdays), thursdays, cal)
    assert model.expected(date(2026, 4, 30)) == pytest.approx({32: 2.0})
    assert model.expected(date(2026, 5, 1)) == {}
    assert model.expected(date(2026, 5, 14)) == {}
    assert model.expected(date(2026, 6, 19)) == {}
    assert model.expected(date(2026, 4, 23)) == pytest.approx({32: 2.0, 33: 6.0})


def test_reduced_days_in_the_history_are_not_fitted() -> None:
    # The afton in the history (30 April, 08:00-08:15) had 40 calls in its one slot: left out, so
    # the Thursdays (2, 6) alone decide.
    cal = calendar(reduced={"valborgsmassoafton": ["08:00-08:15"]})
    data = {date(2026, 4, 23): (2, 6), date(2026, 4, 30): (40,)}
    model = fit(history(data), data, cal)
    assert model.ordinary_days == 1
    assert model.expected(date(2026, 5, 21)) == pytest.approx({32: 2.0, 33: 6.0})


def test_a_slot_opened_only_partly_expects_its_share() -> None:
    # A reduced day 08:00-08:20: slot 33 (08:15-08:30) is open 5 of its 15 minutes: 6 × 1/3 = 2.
    cal = calendar(reduced={"2026-04-23": ["08:00-08:20"]})
    data = {date(2026, 4, 16): (2, 6)}
    assert day_slots(cal, date(2026, 4, 23)) == {32: 900.0, 33: 300.0}
    assert fit(history(data), data, cal).expected(date(2026, 4, 23)) == pytest.approx({32: 2.0, 33: 2.0})


# -- daylight saving time ---------------------------------------------------------------------


def test_slots_are_local_across_the_change_to_summer_time() -> None:
    # Winter history: every weekday of 16-27 March 2026 a peak of 4 calls at 08:15 local, i.e.
    # 07:15Z (UTC+1), and 1 call at 08:45 (07:45Z). After the clocks go forward (29 March) the
    # forecast keeps the peak at 08:15 local, which is now 06:15Z; a forecast by UTC slots would
    # put it at 09:15 local.
    cal = calendar("08:00-09:00")
    calls: list[datetime] = []
    days = [date(2026, 3, 16) + timedelta(d) for d in range(12) if (date(2026, 3, 16) + timedelta(d)).weekday() < 5]
    for day in days:
        calls += [datetime(day.year, day.month, day.day, 7, 15, tzinfo=UTC)] * 4
        calls += [datetime(day.year, day.month, day.day, 7, 45, tzinfo=UTC)]
    counts: dict[tuple[date, int], float] = {}
    for t in calls:
        key = slot_of(t, cal.tz)
        counts[key] = counts.get(key, 0.0) + 1
    assert set(counts) == {(d, s) for d in days for s in (33, 35)}  # 08:15 and 08:45 local
    model = fit(counts, days, cal)
    tuesday = date(2026, 3, 31)  # not April's first working days: March 31 is the month's 22nd
    assert model.expected(tuesday) == pytest.approx({32: 0.0, 33: 4.0, 34: 0.0, 35: 1.0})
    assert slot_start(cal, tuesday, 33) == datetime(2026, 3, 31, 6, 15, tzinfo=UTC)
    assert slot_start(cal, tuesday, 33).isoformat() == "2026-03-31T08:15:00+02:00"


def test_the_nights_the_clocks_change_have_their_real_slots() -> None:
    # A calendar open around the clock: on 29 March 2026 02:00-03:00 does not exist (23 h, 92
    # slots, 8-11 missing); on 25 October it happens twice (25 h, slots 8-11 open 30 minutes).
    cal = _all_day()
    spring = day_slots(cal, date(2026, 3, 29))
    assert len(spring) == 92 and not {8, 9, 10, 11} & set(spring) and sum(spring.values()) == 23 * 3600
    autumn = day_slots(cal, date(2026, 10, 25))
    assert len(autumn) == 96 and sum(autumn.values()) == 25 * 3600
    assert {s: autumn[s] for s in (7, 8, 11, 12)} == {7: 900.0, 8: 1800.0, 11: 1800.0, 12: 900.0}
    # Both real quarter-hours of 02:15 local fall in slot 9: 00:15Z (+02:00) and 01:15Z (+01:00).
    assert slot_of(datetime(2026, 10, 25, 0, 15, tzinfo=UTC), cal.tz) == (date(2026, 10, 25), 9)
    assert slot_of(datetime(2026, 10, 25, 1, 15, tzinfo=UTC), cal.tz) == (date(2026, 10, 25), 9)
    # A slot open twice as long expects twice the calls: an ordinary Sunday's 1 call at 02:15.
    sundays = {date(2026, 10, 11): 1.0, date(2026, 10, 18): 1.0}
    model = fit({(d, 9): n for d, n in sundays.items()}, sundays, cal)
    assert model.expected(date(2026, 10, 25))[9] == pytest.approx(2.0)
    assert model.expected(date(2026, 11, 1))[9] == pytest.approx(1.0)


def _all_day() -> Calendar:
    raw = {
        "timezone": "Europe/Stockholm",
        "calendars": {"c": {"hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}},
    }
    return parse_agreements(raw).calendars["c"]


# -- the shape of small queues ---------------------------------------------------------------


def test_a_small_queue_leans_on_the_centre_s_time_of_day() -> None:
    # One Monday with 2 calls, both at 08:15 (slot 33): alone, 08:00 would expect nothing. With
    # the centre's shape (1, 1) and k pseudo-calls, slot 32's shape is (0 + k·1) / (E + k) where E
    # = the calls expected at shape 1: positive. A huge k gives the centre's shape: 1 and 1.
    cal = calendar()
    data = {MON: (0, 2)}
    alone = fit(history(data), data, cal)
    assert alone.expected(date(2026, 4, 20)) == pytest.approx({32: 0.0, 33: 2.0})
    leaning = fit(history(data), data, cal, shape_prior={32: 1.0, 33: 1.0}, shape_prior_calls=10)
    forecast = leaning.expected(date(2026, 4, 20))
    assert 0 < forecast[32] < forecast[33] and sum(forecast.values()) == pytest.approx(2.0)
    centre = fit(history(data), data, cal, shape_prior={32: 1.0, 33: 1.0}, shape_prior_calls=1e9)
    assert centre.expected(date(2026, 4, 20)) == pytest.approx({32: 1.0, 33: 1.0})


def test_no_history_expects_nothing() -> None:
    cal = calendar()
    model = fit({}, [], cal)
    assert model.expected(date(2026, 4, 20)) == {32: 0.0, 33: 0.0}
    assert model.month_start == 1.0
    assert arrivals.slot_label(33) == "08:15"
