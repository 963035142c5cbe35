"""What every human format of the report shows (dashboards/reporting/model.py), by hand: how a
value is written, when a promise is met (exactly at the target too), periods, names, warnings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dashboards.report import DEFINITIONS
from dashboards.reporting import model
from schemas.agreements import Agreements, parse_agreements
from tests.conftest import AGREEMENTS


@pytest.mark.parametrize(
    ("value", "unit", "sv", "en"),
    [
        (1284, "count", "1\u00a0284", "1,284"),
        (0, "count", "0", "0"),
        (0.8467741935483871, "ratio", "84,7\u00a0%", "84.7%"),
        (1.0, "ratio", "100,0\u00a0%", "100.0%"),
        (39.0, "seconds", "0:39", "0:39"),
        (139.4, "seconds", "2:19", "2:19"),  # rounded to the second
        (3725, "seconds", "1:02:05", "1:02:05"),  # an hour or more: h:mm:ss
        (6374.0, "hours", "1,8\u00a0h", "1.8\u00a0h"),  # business seconds written in hours
        (None, "ratio", "–", "–"),  # no data, never 0
        (float("nan"), "seconds", "–", "–"),
    ],
)
def test_a_value_is_written_as_a_person_reads_it(value: Any, unit: model.Unit, sv: str, en: str) -> None:
    assert (model.fmt(value, unit, "sv"), model.fmt(value, unit, "en")) == (sv, en)


def test_a_promise_is_met_exactly_at_its_target(agreements: Agreements) -> None:
    sl = model.target(agreements, "queues", "kundreskontra", "service_level")
    assert sl is not None and sl.value == 0.8
    assert (sl.met(0.8), sl.met(0.7999999), sl.met(0.81), sl.met(None)) == (True, False, True, None)
    ar = model.target(agreements, "queues", "kundreskontra", "answer_rate")
    assert ar is not None and (ar.value, ar.met(0.9), ar.met(0.89)) == (0.9, True, False)
    # A mailbox promises every case within its lead time: met with no case breached.
    breached = model.target(agreements, "mailboxes", "kundreskontra", "breached")
    assert breached is not None and (breached.met(0), breached.met(1)) == (True, False)
    # Not judged: the extra levels, counts, the median (shown beside the lead-time target).
    assert model.target(agreements, "queues", "kundreskontra", "offered") is None
    assert model.target(agreements, "mailboxes", "kundreskontra", "median_lead_seconds") is None
    ref = model.reference(agreements, "mailboxes", "kundreskontra", "median_lead_seconds")
    assert ref is not None and ref.value == 8 * 3600


def test_the_extra_service_levels_stand_beside_the_judged_one() -> None:
    raw = copy.deepcopy(AGREEMENTS)
    raw["queues"]["kundreskontra"]["extra_service_levels"] = [20, 7.5]
    a = parse_agreements(raw)
    keys = [(m.key, m.label("sv")) for m in model.phone_measures(a, "kundreskontra")]
    at = [k for k, _ in keys].index("service_level")
    assert keys[at : at + 3] == [
        ("service_level", "Servicenivå ≤ 60 s"), ("service_levels.20", "Servicenivå ≤ 20 s"),
        ("service_levels.7.5", "Servicenivå ≤ 7.5 s"),
    ]  # fmt: skip
    assert model.value_of({"service_levels": {"7.5": 0.5}}, "service_levels.7.5") == 0.5
    # The views hold the measures of one queue over a bucket: no callers, transfers or recoveries.
    in_views = {m.key for m in model.phone_measures(a, "kundreskontra", "days")}
    assert {"callers", "transferred_out", "abandoned_recovered", "internal_transfers"}.isdisjoint(in_views)
    assert {"service_levels.20", "out_of_hours"} <= in_views


def test_periods_and_their_labels() -> None:
    report = {"month": "2026-02", "views": {"months": {"months": ["2025-02", "2026-02"]}}}
    days = model.periods(report, "days")
    assert (len(days), days[0], days[-1]) == (28, "2026-02-01", "2026-02-28")
    assert model.periods({"month": "2024-02"}, "days")[-1] == "2024-02-29"  # a leap year
    assert model.periods({"month": "2026-12"}, "days")[-1] == "2026-12-31"  # the year's end
    assert model.periods(report, "hours")[0] == "00" and len(model.periods(report, "hours")) == 24
    assert model.periods(report, "months") == ["2025-02", "2026-02"]
    assert model.period_label("days", "2026-05-04", "sv") == "mån 4 maj"
    assert model.period_label("days", "2026-05-04", "en") == "Mon 4 May"
    assert model.period_label("hours", "23", "sv") == "23–00"
    assert model.period_label("months", "2026-05", "sv") == "maj 2026"


def test_times_are_local(agreements: Agreements) -> None:
    assert model.local_time("2026-05-31T22:00:00Z", agreements) == "2026-06-01 00:00"  # summer: +02:00
    assert model.local_time("2026-01-31T23:00:00Z", agreements) == "2026-02-01 00:00"  # winter: +01:00


def test_a_process_is_its_queue_and_its_mailbox(agreements: Agreements) -> None:
    assert model.processes(agreements) == [("kundreskontra", "Kundreskontra"), ("avgifter", "Avgifter")]


def test_every_definition_has_its_swedish_words() -> None:
    assert set(model.DEFINITIONS_SV) == set(DEFINITIONS)
    assert model.definitions({"definitions": DEFINITIONS}, "en") == DEFINITIONS


def test_the_warnings_come_in_the_readers_language(agreements: Agreements) -> None:
    report = {
        "month": "2026-04",
        "no_events": True,
        "incomplete_loads": [{"started_at": "2026-04-30T22:15:00Z", "files": ["/data/a.jsonl"]}],
        "conflicting_duplicates": 2,
        "agreements_changed": [
            {
                "channel": "queues",
                "process": "kundreskontra",
                "setting": "service_level_seconds",
                "measures": ["service_level", "service_levels"],
                "months": ["2026-03", "2026-04"],
            },
        ],
    }
    sv = model.notices(report, agreements, "sv")
    assert len(sv) == 4 and sv[0].startswith("Inga händelser för 2026-04")
    assert "2026-05-01 00:15" in sv[1] and "/data/a.jsonl" in sv[1]  # local time
    assert "Kundreskontra (telefoni), servicenivåns gräns: Servicenivå" in sv[3]
    assert "Servicenivå · Extra servicenivåer (mar 2026, apr 2026)" in sv[3]
    en = model.notices(report, agreements, "en")
    assert "Kundreskontra (phone queues), the service-level threshold: Service level" in en[3]
    assert en[2].startswith("2 events shared a source and id")
    assert model.notices({"month": "2026-04"}, agreements) == []


def test_the_headline_says_each_promise_and_whether_it_was_kept(agreements: Agreements) -> None:
    q = {"service_level": 0.8, "answer_rate": 0.5}
    report = {
        "queues": {"kundreskontra": q, "avgifter": {"service_level": None, "answer_rate": None}},
        "mailboxes": {"kundreskontra": {"received": 3, "breached": 0}},
    }
    kund, avg = model.headline(report, agreements, "sv")
    assert kund == (
        "Kundreskontra: Servicenivå ≤ 60 s 80,0\u00a0% (mål 80,0\u00a0%) ✓; "
        "Svarsfrekvens 50,0\u00a0% (mål 90,0\u00a0%) ✗; 3 ärenden, varav över ledtid 0 ✓"
    )
    assert avg == "Avgifter: Servicenivå ≤ 120 s – (mål 80,0\u00a0%); Svarsfrekvens – (mål 90,0\u00a0%)"


def test_rows_hold_every_number_once(agreements: Agreements) -> None:
    empty_q = {"offered": 0, "service_level": None, "service_levels": {}}
    report: dict[str, Any] = {
        "month": "2026-04",
        "queues": {"kundreskontra": empty_q, "avgifter": empty_q},
        "mailboxes": {"kundreskontra": {"received": 1}},
        "views": {
            "days": {
                "queues": {"kundreskontra": {"2026-04-14": {"offered": 2, "service_level": 0.5}}},
                "mailboxes": {},
            },
            "hours": {"queues": {}, "mailboxes": {}},
            "months": {"months": ["2026-04"], "queues": {}, "mailboxes": {}},
        },
    }
    rows = list(model.rows(report, agreements, "en"))
    keys = [(r.view, r.channel, r.process, r.period, r.measure) for r in rows]
    assert len(keys) == len(set(keys))
    day = {r.measure: r for r in rows if r.view == "days"}
    assert (day["offered"].value, day["service_level"].value, day["service_level"].met) == (2, 0.5, False)
    assert day["service_level"].target == 0.8 and day["offered"].target is None
    assert day["abandoned"].value is None  # a key the bucket lacks is no data, not 0
    assert {r.view for r in rows} == {"month", "days"}  # empty views add no rows


def test_every_format_takes_agreements_without_any_process() -> None:
    """A new installation's first agreements may hold only a calendar: an empty report, no crash."""
    import io

    from dashboards.reporting.csvfile import write_csv
    from dashboards.reporting.html import render_html
    from dashboards.reporting.table import render_table
    from dashboards.reporting.xlsx import write_xlsx

    bare = parse_agreements({"timezone": "Europe/Stockholm", "calendars": {"k": {"hours": {"mon": ["08:00-16:00"]}}}})
    empty_views = {"queues": {}, "mailboxes": {}}
    report: dict[str, Any] = {
        "month": "2026-04", "queues": {}, "mailboxes": {}, "evaluated_at": "2026-04-30T22:00:00Z",
        "definitions": DEFINITIONS, "no_events": True, "incomplete_loads": [], "conflicting_duplicates": 0,
        "agreements_changed": [],
        "views": {"days": empty_views, "hours": empty_views, "months": {"months": ["2026-04"], **empty_views}},
    }  # fmt: skip
    assert list(model.rows(report, bare)) == []
    workbook = io.BytesIO()
    write_xlsx(report, bare, "sv", workbook)
    assert workbook.getvalue().startswith(b"PK")
    assert "Inga händelser för 2026-04" in render_html(report, bare, "sv")
    table = io.StringIO()
    render_table(report, bare, "sv", table, 80)
    assert "Inga händelser" in table.getvalue()
    rows = io.StringIO()
    write_csv(report, bare, "sv", rows)
    assert rows.getvalue().count("\n") == 1  # the header only
