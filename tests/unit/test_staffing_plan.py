"""The staffing plan and its backtest (dashboards/staffing/plan.py) and their formats, on
histories made by hand; the arrival model itself is tests/unit/test_staffing_forecast.py.

Reference dates: 2026-03-09, 03-16 and 03-23 are Mondays, past March's first five working days
(2-6 March); 14 May 2026 is Ascension Day (a Thursday, a Swedish public holiday).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, timedelta
from typing import Any

import openpyxl
import pytest

from dashboards.staffing import formats
from dashboards.staffing.plan import (
    MIN_ABANDONS,
    TALK_ASSUMED,
    WRAP_UP_ASSUMED,
    DayStats,
    History,
    backtest,
    parameters,
    plan_week,
)
from schemas.agreements import Agreements, load_agreements, parse_agreements
from stream_jobs.core import erlang

QUEUE = {
    "name": "Q",
    "calendar": "c",
    "service_level_seconds": 60,
    "service_level_target": 0.8,
    "answer_rate_target": 0.9,
}


def agreements(holidays: str | None = None, queues: tuple[str, ...] = ("q",)) -> Agreements:
    calendar: dict[str, Any] = {"hours": {d: ["08:00-08:30"] for d in ("mon", "tue", "wed", "thu", "fri")}}
    if holidays:
        calendar["holidays"] = holidays
    return parse_agreements(
        {"timezone": "Europe/Stockholm", "calendars": {"c": calendar}, "queues": {q: QUEUE for q in queues}}
    )


def history_of(
    days: dict[date, tuple[float, float]], queue: str = "q", stats: dict[date, DayStats] | None = None
) -> History:
    """A history whose every listed day is covered (a day of (0, 0) had no call but data)."""
    counts = {(d, 32 + i): float(n) for d, pair in days.items() for i, n in enumerate(pair) if n}
    return History(min(days), max(days) + timedelta(days=1), frozenset(days), {queue: counts}, {queue: stats or {}})


def week(monday: date, pairs: list[tuple[float, float]]) -> dict[date, tuple[float, float]]:
    return {monday + timedelta(days=i): pair for i, pair in enumerate(pairs)}


# -- the load ---------------------------------------------------------------------------------


def test_parameters_from_the_history_and_their_fallbacks() -> None:
    # Queue q over two days: 10 talks of 3000 s in all (300 s each), 10 wrap-ups of 400 s (40 s),
    # 5 abandons over 1000 s waited (patience 200 s), 18 of 20 offered in the base (0.9).
    d1, d2 = date(2026, 3, 16), date(2026, 3, 17)
    stats = {
        "q": {
            d1: DayStats(
                offered=10,
                base=9,
                talks=8,
                talk_seconds=2400,
                abandons=3,
                waited_seconds=600,
                wrap_ups=8,
                wrap_up_seconds=320,
            ),
            d2: DayStats(
                offered=10,
                base=9,
                talks=2,
                talk_seconds=600,
                abandons=2,
                waited_seconds=400,
                wrap_ups=2,
                wrap_up_seconds=80,
            ),
        },
        # Queue r: no answered call and no agent state of its own, one abandon in 100 s.
        "r": {d1: DayStats(offered=4, base=4, abandons=1, waited_seconds=100)},
    }
    h = History(d1, d2 + timedelta(days=1), frozenset({d1, d2}), {}, stats)
    p = parameters(h, ["q", "r"], h.covered)
    assert (p["q"].talk_seconds, p["q"].wrap_up_seconds, p["q"].patience_seconds, p["q"].base_share) == (
        300,
        40,
        200,
        0.9,
    )
    assert p["q"].handle_seconds == 340 and MIN_ABANDONS == 5
    # r: talk and wrap-up of all queues (3000 / 10, 400 / 10); with 1 abandon (< 5) the patience
    # of all queues: (1000 + 100) / (5 + 1); all 4 offered in the base.
    assert (p["r"].talk_seconds, p["r"].wrap_up_seconds, p["r"].base_share) == (300, 40, 1.0)
    assert p["r"].patience_seconds == pytest.approx(1100 / 6)
    assert (p["r"].talk_source, p["r"].wrap_up_source, p["r"].patience_source) == ("all queues",) * 3
    # Only day 2 counted: q's 2 talks of 600 s; 2 abandons < 5, so all queues: 400 / 2 = 200.
    only = parameters(h, ["q", "r"], frozenset({d2}))
    assert only["q"].talk_seconds == 300 and only["q"].patience_source == "all queues"
    given = parameters(h, ["q"], h.covered, wrap_up=30)["q"]
    assert (given.wrap_up_seconds, given.wrap_up_source) == (30, "given")
    empty = parameters(History(d1, d2, frozenset(), {}, {}), ["q"], frozenset())["q"]
    assert (empty.talk_seconds, empty.wrap_up_seconds, empty.patience_seconds) == (
        TALK_ASSUMED,
        WRAP_UP_ASSUMED,
        math.inf,
    )
    assert (empty.talk_source, empty.wrap_up_source, empty.patience_source) == ("assumed", "assumed", "none abandoned")


# -- a week's plan ------------------------------------------------------------------------------


def test_the_plan_staffs_each_open_slot_and_nobody_on_a_holiday() -> None:
    # Two weeks of (1, 3) every weekday; the plan of 11-17 May 2026: Thursday 14 May is Ascension
    # Day. Its usual slots are rows with 0 open seconds, 0 calls and 0 agents; Saturday and Sunday
    # have no rows. Monday 11 May is May's 6th working day (4-8 May are 1-5): no month start.
    ag = agreements(holidays="SE")
    days = week(date(2026, 4, 27), [(1, 3)] * 4) | week(date(2026, 5, 4), [(1, 3)] * 5)  # 1 May: closed
    days[date(2026, 5, 1)] = (0, 0)
    stats = {
        d: DayStats(
            offered=4,
            base=4,
            talks=4,
            talk_seconds=1200,
            abandons=1,
            waited_seconds=150,
            wrap_ups=4,
            wrap_up_seconds=160,
        )
        for d in days
    }
    plan = plan_week(history_of(days, stats=stats), ag, date(2026, 5, 11), history_weeks=2)
    (qp,) = plan.queues
    assert plan.week == "2026-W20" and plan.history_days == 10
    assert qp.parameters.handle_seconds == 340 and qp.parameters.patience_seconds == 150  # 10 abandons, 1500 s
    holiday = [s for s in qp.slots if s.day == date(2026, 5, 14)]
    assert [(s.slot, s.open_seconds, s.calls, s.agents) for s in holiday] == [(32, 0.0, 0.0, 0), (33, 0.0, 0.0, 0)]
    assert not [s for s in qp.slots if s.day.weekday() >= 5]
    monday = [s for s in qp.slots if s.day == date(2026, 5, 11)]
    assert not any(s.month_start for s in monday)
    # 4-8 May were month-start days at (1, 3) like the ordinary days 27-30 April: 20 calls where
    # 20 were expected (a Friday, not among the ordinary days, at the mean level of Mon-Thu), so
    # the multiplier is (20 + 20) / (20 + 20) = 1 and the forecast (1, 3).
    assert qp.model.month_start == pytest.approx(1.0)
    assert [s.calls for s in monday] == pytest.approx([1.0, 3.0])
    load = erlang.Load(3.0 / 900, 340, 150)
    assert monday[1].agents == erlang.agents_needed(load, 60, 0.8, 0.9)
    outlook = erlang.steady(load, monday[1].agents, 60)
    assert (monday[1].service_level, monday[1].answer_rate) == (outlook.service_level, outlook.answer_rate)
    assert monday[1].start.isoformat() == "2026-05-11T08:15:00+02:00"
    assert qp.calls == pytest.approx(4 * 4)  # four open days of 4 calls
    assert qp.agent_hours == pytest.approx(sum(s.agents * 0.25 for s in qp.slots))


def test_the_plan_of_a_week_without_history_says_so() -> None:
    from schemas.errors import InputError

    h = history_of(week(date(2026, 3, 9), [(1, 3)] * 5))
    with pytest.raises(InputError, match=r"no calls in the 2 weeks before 2026-W20 \(2026-04-27 to 2026-05-10\)"):
        plan_week(h, agreements(), date(2026, 5, 11), history_weeks=2)


# -- the backtest ------------------------------------------------------------------------------


def test_backtest_errors_by_hand() -> None:
    # History: 9-13 March every day (2, 2), 16-20 March every day (0, 4): the forecast of 23-27
    # March is the slots' means, (1, 3) each day (4 calls). What came: Mon (2, 2), Tue (0, 3),
    # Wed (1, 3), Thu (1, 5), Fri (0, 0). The naive forecast is the week before: (0, 4).
    days = (
        week(date(2026, 3, 9), [(2, 2)] * 5)
        | week(date(2026, 3, 16), [(0, 4)] * 5)
        | week(date(2026, 3, 23), [(2, 2), (0, 3), (1, 3), (1, 5), (0, 0)])
    )
    bt = backtest(history_of(days), agreements(), [date(2026, 3, 23)], history_weeks=2)
    s = bt.queue_total("q")
    assert (s.slots, s.forecast, s.actual) == (10, pytest.approx(20.0), 17.0)
    # |F − A| per day: Mon 1 + 1, Tue 1 + 0, Wed 0, Thu 0 + 2, Fri 1 + 3 = 9 of 17.
    assert s.wape == pytest.approx(9 / 17)
    # Naive: Mon 2 + 2, Tue 0 + 1, Wed 1 + 1, Thu 1 + 1, Fri 0 + 4 = 13 of 17.
    assert s.naive_wape == pytest.approx(13 / 17)
    # A forecast equal to the true rates would still miss by Poisson noise: E|X − λ| = 2e^−λ λ^(k+1)/k!
    # (k = ⌊λ⌋): 2/e for λ = 1, 27/e³ for λ = 3; five days of both over the 20 calls forecast.
    assert s.floor_wape == pytest.approx(5 * (2 / math.e + 27 / math.e**3) / 20)
    # Slots with A ≥ 1: Mon 1/2, 1/2; Tue(08:15) 0/3; Wed 0/1, 0/3; Thu 0/1, 2/5: 1.4 over 7.
    assert (s.ape_slots, s.mape_slots) == (7, pytest.approx(0.2))
    # Days with A ≥ 1 (F = 4 each): Mon 0/4, Tue 1/3, Wed 0/4, Thu 2/6: (2/3) / 4. Friday had none.
    assert (s.days, s.mape_days) == (4, pytest.approx(1 / 6))
    # Agents: without talk, wrap-up or abandons in the history, 300 + 45 s and Erlang C.
    need = {n: erlang.agents_needed(erlang.Load(n / 900, 345, math.inf), 60, 0.8, 0.9) if n else 0 for n in range(6)}
    forecast_agents = 5 * (need[1] + need[3])
    actual = [2, 2, 0, 3, 1, 3, 1, 5, 0, 0]
    actual_agents = sum(need[a] for a in actual)
    assert s.agents_forecast == pytest.approx(forecast_agents / 4) and s.agents_actual == pytest.approx(
        actual_agents / 4
    )
    assert s.agents_diff == forecast_agents - actual_agents
    assert s.agents_abs_diff == sum(abs(need[f] - need[a]) for f, a in zip([1, 3] * 5, actual, strict=True))
    assert s.under == sum(need[f] < need[a] for f, a in zip([1, 3] * 5, actual, strict=True))
    assert bt.total().wape == s.wape and bt.week_total(date(2026, 3, 23)).actual == 17


def test_backtest_uses_only_the_history_before_each_week() -> None:
    # The second week's forecast sees the first week's calls; the first's does not see its own.
    days = (
        week(date(2026, 3, 9), [(1, 1)] * 5)
        | week(date(2026, 3, 16), [(3, 3)] * 5)
        | week(date(2026, 3, 23), [(3, 3)] * 5)
    )
    bt = backtest(history_of(days), agreements(), [date(2026, 3, 16), date(2026, 3, 23)], history_weeks=1)
    assert bt.scores["q"][date(2026, 3, 16)].forecast == pytest.approx(10.0)  # (1, 1) × 5 days
    assert bt.scores["q"][date(2026, 3, 23)].forecast == pytest.approx(30.0)  # (3, 3) × 5
    assert bt.scores["q"][date(2026, 3, 23)].wape == 0


def test_backtest_skips_days_without_data_and_refuses_weeks_without_any() -> None:
    from schemas.errors import InputError

    days = week(date(2026, 3, 9), [(1, 1)] * 5) | week(date(2026, 3, 16), [(1, 1)] * 3)  # data ends Wednesday
    bt = backtest(history_of(days), agreements(), [date(2026, 3, 16)], history_weeks=1)
    assert bt.queue_total("q").slots == 6 and bt.missing_days[:2] == (date(2026, 3, 19), date(2026, 3, 20))
    with pytest.raises(InputError, match="no calls in 2026-W13 to compare"):
        backtest(history_of(days), agreements(), [date(2026, 3, 23)], history_weeks=1)
    with pytest.raises(InputError, match="before 2026-W11"):
        backtest(history_of(days), agreements(), [date(2026, 3, 9)], history_weeks=1)


# -- the formats -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def centre_plan() -> Any:
    """The shipped agreements' nine queues, each with a call in every slot of two weeks."""
    ag = load_agreements()
    days = [date(2026, 5, 11) + timedelta(days=i) for i in range(14)]
    counts = {(d, s): 1.0 for d in days for s in range(34, 64)}
    h = History(days[0], days[-1] + timedelta(days=1), frozenset(days), dict.fromkeys(ag.queues, counts), {})
    return plan_week(h, ag, date(2026, 6, 1), history_weeks=3), ag


def test_the_table_fits_80_columns(centre_plan: Any) -> None:
    plan, _ = centre_plan
    for lang in ("sv", "en"):
        out = io.StringIO()
        formats.plan_table(plan, lang, out)
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    text = out.getvalue()
    assert "Mon 1 Jun · month start" in text  # 1 June 2026 is June's first working day
    assert "Sat 6 Jun · no queue open" in text and "Fri 5 Jun · month start" in text


def test_the_csv_has_one_row_per_queue_and_slot(centre_plan: Any) -> None:
    plan, ag = centre_plan
    out = io.StringIO(newline="")
    formats.plan_csv(plan, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == formats.PLAN_COLUMNS
    # telefontid: Mon-Thu 08:30-12:00 and 13:00-16:00 (26 slots), Fri 08:30-12:00 and 13:00-15:00 (22).
    assert len(rows) == len(ag.queues) * (4 * 26 + 22)
    first = rows[0]
    assert (first["week"], first["date"], first["time"], first["start"]) == (
        "2026-W23", "2026-06-01", "08:30", "2026-06-01T08:30:00+02:00",
    )  # fmt: skip
    assert {r["month_start"] for r in rows if r["date"] == "2026-06-05"} == {"1"}


def test_the_workbook_opens(centre_plan: Any) -> None:
    plan, ag = centre_plan
    out = io.BytesIO()
    formats.plan_xlsx(plan, "en", out)
    book = openpyxl.load_workbook(io.BytesIO(out.getvalue()))
    assert book.sheetnames == ["Summary", "Agents", "Calls (forecast)", "Rows"]
    agents = book["Agents"]
    assert [c.value for c in agents[1]][3:-1] == list(ag.queues)
    assert agents.max_row == 1 + 4 * 26 + 22
    rows = book["Rows"]
    assert tuple(c.value for c in rows[1]) == formats.PLAN_COLUMNS


def test_the_backtest_formats() -> None:
    days = week(date(2026, 3, 9), [(2, 2)] * 5) | week(date(2026, 3, 16), [(0, 4)] * 5)
    bt = backtest(history_of(days), agreements(), [date(2026, 3, 16)], history_weeks=1)
    out = io.StringIO(newline="")
    formats.backtest_csv(bt, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == formats.BACKTEST_COLUMNS
    assert [(r["queue"], r["week"]) for r in rows] == [
        ("q", "2026-W12"),
        ("q", "all"),
        ("all", "2026-W12"),
        ("all", "all"),
    ]
    assert float(rows[0]["wape"]) == pytest.approx(20 / 20)  # F (2, 2) against A (0, 4): 4 per day of 4
    table = io.StringIO()
    formats.backtest_table(bt, "en", table)
    assert max(len(line) for line in table.getvalue().splitlines()) <= 80
    book = io.BytesIO()
    formats.backtest_xlsx(bt, "sv", book)
    assert openpyxl.load_workbook(io.BytesIO(book.getvalue())).sheetnames == ["Översikt", "Veckor"]


def test_column_codes_are_short_and_unique() -> None:
    ids = list(load_agreements().queues)
    codes = formats.codes(ids)
    assert codes["kundreskontra"] == "kun" and codes["kassa_bank"] == "kas"
    assert len(set(codes.values())) == len(ids)
    assert formats.codes(["abc1", "abc2"]) == {"abc1": "abc1", "abc2": "abc2"}


def test_a_queue_without_calls_is_named_and_staffed_with_nobody() -> None:
    ag = agreements(queues=("q", "r"))
    plan = plan_week(history_of(week(date(2026, 3, 9), [(1, 3)] * 5)), ag, date(2026, 3, 16), history_weeks=1)
    assert plan.notes == ("queue r: no call in the history: forecast 0",)
    r = next(qp for qp in plan.queues if qp.queue.id == "r")
    assert {(s.calls, s.agents) for s in r.slots} == {(0.0, 0)}


def test_the_command_s_help_names_the_model_s_defaults() -> None:
    from availability.cli import staffing as cli
    from dashboards.staffing import plan

    assert cli.HISTORY_WEEKS == plan.HISTORY_WEEKS  # the command does not import the model for --help
    assert plan.WRAP_UP_ASSUMED == 45  # named in --wrap-up's help
