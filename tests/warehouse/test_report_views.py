"""The report's views (per local day, hour of the day and the last 13 months), the empty month and
the warning for facts derived with other agreements, on the embedded ClickHouse, by hand.

The `kontor` calendar (tests/conftest.py) is open Mon 08-12 and 13-16:30, Tue-Thu 08-16:30,
Fri 08-16; kundreskontra: T = 60 s, short abandon < 5 s; the mailbox: 8 h, priority 4 h.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.report import AFFECTED, MAILBOX_KEYS, monthly_report, trend_months
from stream_jobs.core.deriver import Deriver
from stream_jobs.intervals import refresh_sql
from tests.conftest import agreements_with, call, ev

K = {"queue": "kundreskontra"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)


def mail(type_, t, thread, msg):
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", mailbox="kundreskontra", thread_id=thread,
              message_id=msg, **({"sender_ref": "s" * 32} if type_ == "received" else {}))  # fmt: skip


def contacts():
    return [
        # Tue 14 Apr: c1 answered after 30 s (in T), c2 abandoned after 120 s; c4 queued before opening.
        *call("c1", ("queued", "2026-04-14T08:10:00+02:00", K), ("answered", "2026-04-14T08:10:30+02:00", K | {"agent": "a"})),
        *call("c2", ("queued", "2026-04-14T08:50:00+02:00", K), ("abandoned", "2026-04-14T08:52:00+02:00", K)),
        *call("c4", ("queued", "2026-04-14T07:30:00+02:00", K), ("abandoned", "2026-04-14T07:31:00+02:00", K)),
        # Wed 15 Apr 13:05: answered after 120 s, outside T.
        *call("c3", ("queued", "2026-04-15T13:05:00+02:00", K), ("answered", "2026-04-15T13:07:00+02:00", K | {"agent": "a"})),
        # 1 Apr 00:30 local is 31 Mar 22:30 UTC: April's first day, hour 00 (closed), not March's.
        *call("c5", ("queued", "2026-03-31T22:30:00Z", K), ("abandoned", "2026-03-31T22:31:00Z", K)),
        # March: answered within T on Tue 10 Mar (winter time); and Sun 29 Mar 03:30 summer time
        # (01:30 UTC, the night the clocks went forward): hour 03, closed.
        *call("c6", ("queued", "2026-03-10T09:00:00+01:00", K), ("answered", "2026-03-10T09:00:10+01:00", K | {"agent": "a"})),
        *call("c7", ("queued", "2026-03-29T01:30:00Z", K), ("abandoned", "2026-03-29T01:31:00Z", K)),
    ]  # fmt: skip


def mails():
    return [
        # m1: Tue 14 Apr 09:00 -> 10:00, 1 h: within 8 h.
        mail("received", "2026-04-14T09:00:00+02:00", "t1", "m1"),
        mail("replied", "2026-04-14T10:00:00+02:00", "t1", "r1"),
        # m2: Wed 15 Apr 15:00, never answered: past 8 h by the end of April.
        mail("received", "2026-04-15T15:00:00+02:00", "t2", "m2"),
        # m3: Tue 31 Mar 15:00, never answered. Judged at the end of March (its own month in the
        # trend) its business age is 15:00-16:30 = 1.5 h: open, not breached; judged at the end of
        # April it would be far past 8 h.
        mail("received", "2026-03-31T15:00:00+02:00", "t3", "m3"),
    ]


@pytest.fixture
def april(warehouse, agreements):
    Deriver(warehouse, agreements).apply(contacts() + mails())
    return monthly_report(warehouse, agreements, "2026-04", now=LATER)


def test_per_day_is_by_local_day_with_the_month_formulas(april):
    days = april["views"]["days"]["queues"]["kundreskontra"]
    assert sorted(days) == ["2026-04-01", "2026-04-14", "2026-04-15"]  # days without a contact are left out
    assert days["2026-04-01"]["out_of_hours"] == 1 and days["2026-04-01"]["offered"] == 0  # c5, local day
    assert days["2026-04-01"]["answer_rate"] is None and days["2026-04-01"]["service_level"] is None  # base 0
    d14 = days["2026-04-14"]
    assert (d14["offered"], d14["answered"], d14["abandoned"], d14["out_of_hours"]) == (2, 1, 1, 1)
    # base = 2 offered - 0 short - 0 callbacks; c1 in T, c2 not answered: 1/2 both.
    assert (d14["answer_rate"], d14["service_level"]) == (0.5, 0.5)
    assert (d14["asa_seconds"], d14["wait_p90_seconds"], d14["max_wait_seconds"]) == (30, 30, 120)
    d15 = days["2026-04-15"]
    assert (d15["offered"], d15["answered"], d15["answer_rate"], d15["service_level"]) == (1, 1, 1.0, 0.0)
    assert "avgifter" not in april["views"]["days"]["queues"]  # no contact in the month


def test_per_hour_of_day_is_local_and_holds_the_unmet_demand(april):
    hours = april["views"]["hours"]["queues"]["kundreskontra"]
    assert sorted(hours) == ["00", "07", "08", "13"]
    assert hours["00"]["out_of_hours"] == 1 and hours["07"]["out_of_hours"] == 1  # c5, c4
    assert (hours["08"]["offered"], hours["08"]["answered"], hours["08"]["service_level"]) == (2, 1, 0.5)
    assert (hours["13"]["offered"], hours["13"]["service_level"]) == (1, 0.0)


def test_the_sums_of_the_day_and_hour_views_are_the_month(april):
    month = april["queues"]["kundreskontra"]
    for view in ("days", "hours"):
        buckets = april["views"][view]["queues"]["kundreskontra"].values()
        for key in ("offered", "answered", "abandoned", "out_of_hours"):
            assert sum(b[key] for b in buckets) == month[key], (view, key)
    mail_days = april["views"]["days"]["mailboxes"]["kundreskontra"]
    assert mail_days["2026-04-14"]["within_target"] == 1 and mail_days["2026-04-15"]["breached"] == 1
    assert sum(b["received"] for b in mail_days.values()) == april["mailboxes"]["kundreskontra"]["received"] == 2


def test_thirteen_months_each_judged_at_its_own_end(april):
    trend = april["views"]["months"]
    assert trend["months"] == trend_months("2026-04") == [f"2025-{m:02d}" for m in range(4, 13)] + [
        "2026-01", "2026-02", "2026-03", "2026-04",
    ]  # fmt: skip
    q = trend["queues"]["kundreskontra"]
    assert sorted(q) == ["2026-03", "2026-04"]
    # March: c6 offered and answered in T; c7 (the DST night) out of hours.
    assert (q["2026-03"]["offered"], q["2026-03"]["service_level"], q["2026-03"]["out_of_hours"]) == (1, 1.0, 1)
    # The report's month in the trend is the month itself, measure for measure.
    month = april["queues"]["kundreskontra"]
    assert all(q["2026-04"][k] == month[k] for k in q["2026-04"])
    m = trend["mailboxes"]["kundreskontra"]
    assert m["2026-04"] == april["mailboxes"]["kundreskontra"]
    # m3 judged at the end of March: open, 1.5 h old, not breached.
    assert (m["2026-03"]["received"], m["2026-03"]["open_at_end"], m["2026-03"]["breached"]) == (1, 1, 0)


def test_trend_months_stop_at_the_first_month_the_warehouse_accepts():
    assert trend_months("1990-03") == ["1990-01", "1990-02", "1990-03"]  # EARLIEST_TIME is 1990-01-01
    assert trend_months("2027-01")[0] == "2026-01"


def test_an_empty_month_says_so_and_a_month_with_only_closed_hours_calls_does_not(warehouse, agreements):
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER)["no_events"] is True
    Deriver(warehouse, agreements).apply(call("c4", ("queued", "2026-04-14T07:30:00+02:00", K)))
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER)["no_events"] is False  # unmet demand
    assert monthly_report(warehouse, agreements, "2026-05", now=LATER)["no_events"] is True


# -- facts derived with other agreements ---------------------------------------------------------------


def test_a_report_with_other_thresholds_names_the_measures_and_reprocessing_clears_it(warehouse, agreements):
    Deriver(warehouse, agreements).apply(contacts() + mails())
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER)["agreements_changed"] == []
    other = agreements_with(
        queues__kundreskontra__service_level_seconds=45,
        queues__kundreskontra__service_level_target=0.5,  # a target: read at report time, no warning
        queues__kundreskontra__name="Kundreskontra (ny)",  # a name: likewise
        mailboxes__kundreskontra__response_target="6h",
        mailboxes__kundreskontra__priority_keywords=["x"],  # applied at ingest, to later mail only
    )
    got = monthly_report(warehouse, other, "2026-04", now=LATER)["agreements_changed"]
    # The facts of March (c6, c7, m3) are in the trend: both months are named.
    assert got == [
        {"channel": "mailboxes", "process": "kundreskontra", "setting": "response_target_seconds",
         "measures": ["breached", "priority_within_target", "within_target"], "months": ["2026-03", "2026-04"]},
        {"channel": "queues", "process": "kundreskontra", "setting": "service_level_seconds",
         "measures": ["service_level"], "months": ["2026-03", "2026-04"]},
    ]  # fmt: skip
    # Processing the same events again with the new agreements re-derives every fact of them.
    Deriver(warehouse, other).apply(contacts() + mails())
    assert monthly_report(warehouse, other, "2026-04", now=LATER)["agreements_changed"] == []
    # and now the old agreements are the other ones
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER)["agreements_changed"] != []


def test_each_process_and_month_is_judged_by_its_own_facts(warehouse, agreements):
    Deriver(warehouse, agreements).apply(contacts())
    other = agreements_with(queues__kundreskontra__short_abandon_seconds=10, queues__avgifter__short_abandon_seconds=10)
    # May's facts (and avgifter's April contact) derived with the new agreements.
    Deriver(warehouse, other).apply(
        call("c9", ("queued", "2026-05-05T09:00:00+02:00", K))
        + call("a1", ("queued", "2026-04-14T09:00:00+02:00", {"queue": "avgifter"}))
    )
    may = monthly_report(warehouse, other, "2026-05", now=LATER)["agreements_changed"]
    # May itself is clean; its trend holds March and April of kundreskontra, derived before.
    assert [(c["process"], c["setting"], c["months"]) for c in may] == [
        ("kundreskontra", "short_abandon_seconds", ["2026-03", "2026-04"])
    ]
    assert may[0]["measures"] == sorted(AFFECTED["queues"]["short_abandon_seconds"])
    # avgifter's facts are all new: nothing to say of it, though kundreskontra's are old.
    april = monthly_report(warehouse, other, "2026-04", now=LATER)["agreements_changed"]
    assert {c["process"] for c in april} == {"kundreskontra"}


def test_a_calendar_change_counts_only_on_the_days_that_matter(warehouse, agreements):
    Deriver(warehouse, agreements).apply(contacts() + mails())

    def settings(report):
        return {(c["channel"], c["setting"], tuple(c["months"])) for c in report["agreements_changed"]}

    # A reduced day in a later year: no fact of 2026 changes.
    later = agreements_with(
        calendars__kontor__reduced={"valborgsmassoafton": ["08:00-13:00"], "2031-04-29": ["08:00-12:00"]}
    )
    assert settings(monthly_report(warehouse, later, "2026-04", now=LATER)) == set()
    # Tue 14 Apr shortened: April's queue and mailbox change; March's do not (its queue's days
    # end on 1 Apr, its mail is judged with a clock that stops at the end of March).
    april = agreements_with(
        calendars__kontor__reduced={"valborgsmassoafton": ["08:00-13:00"], "2026-04-14": ["08:00-12:00"]}
    )
    assert settings(monthly_report(warehouse, april, "2026-04", now=LATER)) == {
        ("queues", "calendar", ("2026-04",)), ("mailboxes", "calendar", ("2026-04",)),
    }  # fmt: skip
    # A day of 2025 changed: the queues of 2026 are untouched; the mailbox's cases opened later
    # carry a business clock counted from 2000 through that day, so both months of mail change.
    old_day = agreements_with(
        calendars__kontor__reduced={"valborgsmassoafton": ["08:00-13:00"], "2025-06-10": ["08:00-12:00"]}
    )
    assert settings(monthly_report(warehouse, old_day, "2026-04", now=LATER)) == {
        ("mailboxes", "calendar", ("2026-03", "2026-04")),
    }  # fmt: skip
    # The last day of March: March's queue and mail, and April's mail (its clock counts that day);
    # April's queue only if the day before its first lies in its window (it does: 31 Mar).
    last_march = agreements_with(
        calendars__kontor__reduced={"valborgsmassoafton": ["08:00-13:00"], "2026-03-31": ["08:00-12:00"]}
    )
    assert settings(monthly_report(warehouse, last_march, "2026-04", now=LATER)) == {
        ("queues", "calendar", ("2026-03", "2026-04")), ("mailboxes", "calendar", ("2026-03", "2026-04")),
    }  # fmt: skip


def test_facts_without_a_fingerprint_are_not_judged(warehouse, agreements):
    Deriver(warehouse, agreements).apply(contacts())
    warehouse.flush()
    warehouse.client.command("ALTER TABLE call_contacts UPDATE derived_with = '' WHERE 1 SETTINGS mutations_sync = 1")
    warehouse.client.command(refresh_sql("queue_intervals"))  # as the migration to 009 fills them
    other = agreements_with(queues__kundreskontra__service_level_seconds=45)
    assert monthly_report(warehouse, other, "2026-04", now=LATER)["agreements_changed"] == []


def test_other_rules_another_time_zone_or_unknown_inputs_change_every_measure(warehouse, agreements, monkeypatch):
    Deriver(warehouse, agreements).apply(contacts() + mails())
    tz = monthly_report(warehouse, agreements_with(timezone="Europe/Helsinki"), "2026-04", now=LATER)[
        "agreements_changed"
    ]
    assert {(c["channel"], c["process"], c["setting"]) for c in tz} == {
        ("queues", "kundreskontra", "timezone"), ("mailboxes", "kundreskontra", "timezone"),
    }  # fmt: skip
    assert next(c for c in tz if c["channel"] == "mailboxes")["measures"] == sorted(MAILBOX_KEYS)
    # The derivation rules of a later version: everything derived before is named.
    monkeypatch.setattr("stream_jobs.core.provenance.RULES", "a later version")
    rules = monthly_report(warehouse, agreements, "2026-04", now=LATER)["agreements_changed"]
    assert {c["setting"] for c in rules} == {"rules"} and len(rules) == 2
    monkeypatch.undo()
    # Inputs never recorded (a fingerprint whose record was lost): every measure too.
    warehouse.flush()
    warehouse.client.command("TRUNCATE TABLE agreements_seen")
    other = agreements_with(queues__kundreskontra__service_level_seconds=45)
    unknown = monthly_report(warehouse, other, "2026-04", now=LATER)["agreements_changed"]
    assert {c["setting"] for c in unknown} == {"agreements"}
