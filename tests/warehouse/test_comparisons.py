"""Each comparison of spec/metrics.md, at its edge, through every place it is written or read.

| comparison | defined once in | read by |
|---|---|---|
| in service level: answered, wait <= service_level_seconds | stream_jobs/core/calls.py (stored flag `in_service_level`) | kpi_sql.IN_SERVICE_LEVEL: report, history dashboard; live counters |
| short abandon: abandoned, wait < short_abandon_seconds | stream_jobs/core/calls.py (stored flag `short_abandon`) | kpi_sql.SHORT_ABANDONED: report, history dashboard; live counters |
| within target: lead <= target | kpi_sql.IN_TIME (SQL); MailCase.within_target (Python) | report, history and mailbox dashboards; the live `answered_within` counter |
| breached, answered: lead > target | kpi_sql.LATE (SQL); not MailCase.within_target (Python) | report, mailbox dashboard; the live `answered_late` counter |
| breached, open: business age > target | kpi_sql.overdue (SQL); stream_jobs/core/live.py (Python) | report; the live `breached_cases` gauge |
| p90 rank: ceil(0.9 n)-th smallest | kpi_sql.wait_p90 | the report only (tests/warehouse/test_report_boundaries.py) |

Every test runs the same three cases (one below the edge, exactly at it, one above) through the
Python derivation, the live state, the report's SQL and the committed dashboards' SQL (as
tests/warehouse/test_dashboard_queries.py runs it), with the expected values written by hand.
Calendar `kontor` of tests/conftest.py; April 2026 is +02:00; kundreskontra: service level 60 s,
short abandon under 5 s; its mailbox: 8 h, priority 4 h.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboards import full_scan, kpi_sql
from dashboards import report as report_sql
from dashboards.grafana.mailbox import LEAD_BUCKETS
from dashboards.report import monthly_report
from stream_jobs.core.calls import derive_call
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.mail import derive_thread
from tests.conftest import call, ev
from tests.warehouse.test_dashboard_queries import QUERIES, PanelQuery, Request, run

K = {"queue": "kundreskontra"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)
at = datetime.fromisoformat


def panel(title: str) -> PanelQuery:
    [query] = [q for q in QUERIES if q.panel["title"] == title]
    return query


def dashboard(wh, agreements, title: str, start: str, end: str) -> list[dict[str, Any]]:
    """The rows of a committed dashboard query for the local range [start, end]."""
    variables = {"queue": list(agreements.queues), "mailbox": list(agreements.mailboxes)}
    return run(wh, panel(title), Request(at(start), at(end), 3600, variables)).records()


def live_samples(wh, agreements, events, now: datetime) -> dict[tuple[str, tuple[str, ...]], float]:
    live = LiveState(agreements, clock=lambda: now)
    live.observe(events, Deriver(wh, agreements, track_changes=True).apply(events))
    return {(s.name, tuple(s.labels.values())): s.value for family in live.collect() for s in family.samples}


TUESDAY = ("2026-04-14T00:00:00+02:00", "2026-04-14T23:59:59+02:00")

# -- phone queues: the flags decided in calls.py ----------------------------------------------------


def answered_after(wait: int):
    return call(
        "c1",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", f"2026-04-14T10:{wait // 60:02d}:{wait % 60:02d}+02:00", K | {"agent": "a"}),
    )


@pytest.mark.parametrize(("wait", "in_sl"), [(59, True), (60, True), (61, False)])  # kundreskontra: 60 s
def test_in_service_level_is_wait_at_most_the_threshold_everywhere(warehouse, agreements, wait, in_sl):
    events = answered_after(wait)
    fact = derive_call("c1", events, agreements)
    assert (fact.contact.outcome, fact.contact.wait_seconds, fact.contact.in_service_level) == ("answered", wait, in_sl)

    live = live_samples(warehouse, agreements, events, LATER)
    outcome = "answered_in_sl" if in_sl else "answered_late"
    assert live[("availability_queue_contacts_total", ("kundreskontra", outcome))] == 1

    sl = 1.0 if in_sl else 0.0  # one answered contact, base 1
    report = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    assert (report["answered"], report["service_level"]) == (1, sl)

    [daily] = dashboard(warehouse, agreements, "Servicenivå per dag", *TUESDAY)
    assert (daily["queue"], daily["service_level"]) == ("kundreskontra", sl)
    [period] = dashboard(warehouse, agreements, "Perioden per process", *TUESDAY)
    assert (period["queue"], period["answered"], period["service_level"]) == ("kundreskontra", 1, sl)


@pytest.mark.parametrize(("wait", "short"), [(4, True), (5, False), (6, False)])  # kundreskontra: under 5 s
def test_short_abandon_is_wait_under_the_threshold_everywhere(warehouse, agreements, wait, short):
    events = call(
        "c1",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("abandoned", f"2026-04-14T10:00:{wait:02d}+02:00", K),
    )
    fact = derive_call("c1", events, agreements)
    assert (fact.contact.outcome, fact.contact.wait_seconds, fact.contact.short_abandon) == ("abandoned", wait, short)

    live = live_samples(warehouse, agreements, events, LATER)
    outcome = "abandoned_short" if short else "abandoned"
    assert live[("availability_queue_contacts_total", ("kundreskontra", outcome))] == 1

    # A short abandon leaves the base (1 offered - 1 short = 0): the answer rate is null, else 0/1.
    count, rate = (1, None) if short else (0, 0.0)
    report = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    assert (report["abandoned"], report["short_abandoned"], report["answer_rate"]) == (1, count, rate)

    [period] = dashboard(warehouse, agreements, "Perioden per process", *TUESDAY)
    assert (period["abandoned"], period["short_abandoned"], period["answer_rate"]) == (1, count, rate)
    [daily] = dashboard(warehouse, agreements, "Svarsfrekvens per dag", *TUESDAY)
    assert daily["answer_rate"] == rate


# -- mailboxes ---------------------------------------------------------------------------------------

# Normal (8 h): opened Mon 13 Apr 15:30; Mon 15:30-16:30 (1 h) + Tue 08:00-15:00 (7 h) = 8 h at Tue 15:00.
# Priority (4 h): opened Tue 14 Apr 15:00; Tue 15:00-16:30 (1.5 h) + Wed 08:00-10:30 (2.5 h) = 4 h at Wed 10:30.
CASES = {
    False: (
        "2026-04-13T15:30:00+02:00",
        {-1: "2026-04-14T14:59:59+02:00", 0: "2026-04-14T15:00:00+02:00", 1: "2026-04-14T15:00:01+02:00"},
        8 * 3600,
    ),
    True: (
        "2026-04-14T15:00:00+02:00",
        {-1: "2026-04-15T10:29:59+02:00", 0: "2026-04-15T10:30:00+02:00", 1: "2026-04-15T10:30:01+02:00"},
        4 * 3600,
    ),
}
MAIL_DAYS = ("2026-04-13T00:00:00+02:00", "2026-04-15T23:59:59+02:00")


def mail(type_: str, t: str, **data: Any):
    data |= {"mailbox": "kundreskontra", "thread_id": "u1"}
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", **data)


@pytest.mark.parametrize("priority", [False, True], ids=["8h", "priority-4h"])
@pytest.mark.parametrize(("offset", "within"), [(-1, True), (0, True), (1, False)], ids=["below", "at", "above"])
def test_within_target_and_breached_for_a_reply_everywhere(warehouse, agreements, priority, offset, within):
    opened, times, target = CASES[priority]
    replied_at = times[offset]  # target - 1 s, exactly at the target, target + 1 s
    categories = ["priority"] if priority else []
    events = [
        mail("received", opened, message_id="m1", categories=categories),
        mail("replied", replied_at, message_id="r1"),
    ]
    [case] = derive_thread("u1", events, agreements.mailboxes["kundreskontra"])
    assert (case.lead_seconds, case.target_seconds, case.within_target) == (target + offset, target, within)

    live = live_samples(warehouse, agreements, events, LATER)
    for outcome, count in (("answered_within", within), ("answered_late", not within)):
        assert live[("availability_mailbox_cases_total", ("kundreskontra", outcome))] == count

    m = monthly_report(warehouse, agreements, "2026-04", now=LATER)["mailboxes"]["kundreskontra"]
    assert (m["answered"], m["within_target"], m["breached"]) == (1, int(within), int(not within))
    assert (m["priority_received"], m["priority_within_target"]) == (int(priority), int(priority and within))

    [share] = dashboard(warehouse, agreements, "Andel besvarade inom svarstid per dag", *MAIL_DAYS)
    assert share["within_target_share"] == (1.0 if within else 0.0)
    if priority:
        [day] = dashboard(warehouse, agreements, "Prioriterade ärenden per dag", *MAIL_DAYS)
        assert (day["priority_received"], day["priority_within_target"], day["priority_answered_late"]) == (
            1,
            int(within),
            int(not within),
        )
        [row] = dashboard(warehouse, agreements, "Prioriterade ärenden", *MAIL_DAYS)
        assert (row["lead_seconds"], bool(row["within_target"])) == (target + offset, within)


@pytest.mark.parametrize("priority", [False, True], ids=["8h", "priority-4h"])
@pytest.mark.parametrize(("offset", "breached"), [(-1, False), (0, False), (1, True)], ids=["below", "at", "above"])
def test_an_open_case_is_breached_only_past_its_target_everywhere(warehouse, agreements, priority, offset, breached):
    opened, times, _ = CASES[priority]
    now = at(times[offset])  # the business age is the target - 1 s, exactly the target, the target + 1 s
    events = [mail("received", opened, message_id="m1", categories=["priority"] if priority else [])]

    live = live_samples(warehouse, agreements, events, now)
    label = ("kundreskontra", "true" if priority else "false")
    assert live[("availability_mailbox_open_cases", label)] == 1
    assert live[("availability_mailbox_breached_cases", label)] == int(breached)

    m = monthly_report(warehouse, agreements, "2026-04", now=now)["mailboxes"]["kundreskontra"]
    assert (m["open_at_end"], m["breached"]) == (1, int(breached))


# -- one text for each comparison ------------------------------------------------------------------

# A comparison of a wait, lead time, age or target, or a rank or percentile computed in place.
COMPARISON = re.compile(
    r"\b(wait_seconds|lead_seconds|target_seconds|age|hours)\s*(<=|>=|<|>)"
    r"|(<=|>=|<|>)\s*(wait_seconds|lead_seconds|target_seconds|service_level_seconds|short_abandon_seconds)\b"
    r"|intDiv\(|quantile"
)
# kpi_sql's definitions as they appear in the composed SQL; the lead-time buckets of the mailbox
# dashboard's histogram (`hours <= 1`, ...) are a display, not a comparison of the spec.
DEFINED = sorted(
    {
        kpi_sql.IN_TIME,
        kpi_sql.LATE,
        kpi_sql.overdue("age"),
        kpi_sql.wait_p90("waits"),
        kpi_sql.histogram_p90("waits"),
        kpi_sql.median_lead("answered_case"),
        kpi_sql.median_lead(),
        *(f"hours <= {limit}" for limit, _ in LEAD_BUCKETS),
    },
    key=len,
    reverse=True,
)
SQL = {
    **{
        f"report:{name}": getattr(report_sql, name)
        for name in ("QUEUES_SQL", "CALLERS_SQL", "RECOVERED_SQL", "MAILBOXES_SQL", "CONFLICTS_SQL")
    },
    **{f"full_scan:{name}": getattr(full_scan, name) for name in ("QUEUES_SQL", "TRANSFERS_SQL", "INTERNAL_SQL")},
    **{q.id: str(q.target["rawSql"]) for q in QUERIES},
}


@pytest.mark.parametrize("name", sorted(SQL))
def test_the_report_and_dashboard_sql_write_no_comparison_of_their_own(name):
    """Every comparison in the SQL of the report and the committed dashboards is kpi_sql's text."""
    sql = SQL[name]
    for text in DEFINED:
        sql = sql.replace(text, "")
    assert [m.group(0) for m in COMPARISON.finditer(sql)] == []


def test_the_comparisons_are_used():
    """The check above is not vacuous: the report and the dashboards do contain kpi_sql's texts."""
    everything = "\n".join(SQL.values())
    for text in (kpi_sql.IN_TIME, kpi_sql.LATE, kpi_sql.overdue("age"), kpi_sql.histogram_p90("waits")):
        assert text in everything
    assert everything.count(kpi_sql.IN_TIME) >= 4  # report, history share, mailbox priority per day and table
