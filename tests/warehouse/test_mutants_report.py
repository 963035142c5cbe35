"""The report's SQL at edges its other tests left open (docs/testing.md, "Mutation testing").

Each test kills a mutant of tests/mutate_sql.py that tests/warehouse/test_report.py and
test_report_boundaries.py let survive; expected values are by hand from spec/metrics.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dashboards.report import monthly_report
from stream_jobs.core.deriver import Deriver
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}


LATER = datetime(2027, 1, 1, tzinfo=UTC)


def test_max_wait_leaves_out_out_of_hours_calls_and_callbacks(warehouse, agreements):
    # mutant `maxIf(wait_seconds, queue_open OR outcome IN ('answered', 'abandoned'))`: in
    # test_report.py the out-of-hours call and the callback waited less than the longest abandon.
    # The maximum wait is over in-hours contacts that were answered or abandoned.
    events = [
        # Tuesday 14 April, in hours: answered after 30 s, abandoned after 45 s (the maximum).
        *call(
            "in1",
            ("queued", "2026-04-14T10:00:00+02:00", K),
            ("answered", "2026-04-14T10:00:30+02:00", K | {"agent": "a"}),
        ),
        *call("in2", ("queued", "2026-04-14T10:00:00+02:00", K), ("abandoned", "2026-04-14T10:00:45+02:00", K)),
        # Tuesday, in hours, a callback after 300 s: not answered, not abandoned.
        *call("cb", ("queued", "2026-04-14T11:00:00+02:00", K), ("callback_requested", "2026-04-14T11:05:00+02:00", K)),
        # Saturday 18 April, out of hours: answered after 600 s, abandoned after 900 s.
        *call(
            "sat1",
            ("queued", "2026-04-18T10:00:00+02:00", K),
            ("answered", "2026-04-18T10:10:00+02:00", K | {"agent": "a"}),
        ),
        *call("sat2", ("queued", "2026-04-18T10:00:00+02:00", K), ("abandoned", "2026-04-18T10:15:00+02:00", K)),
    ]
    Deriver(warehouse, agreements).apply(events)
    q = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    assert (q["offered"], q["answered"], q["abandoned"], q["callbacks"], q["out_of_hours"]) == (3, 1, 1, 1, 2)
    assert q["max_wait_seconds"] == 45


def test_transferred_out_counts_in_hours_contacts_of_the_month_only(warehouse, agreements):
    # mutant `WHERE queue_open OR <period>` of TRANSFERS_SQL. Three contacts leave kundreskontra
    # for avgifter: one in hours in April (counted), one on Saturday 18 April (out of hours: in no
    # count), one in hours in March (another month).
    def moved(cid, queued, moved_at, answered_at):
        return call(
            cid,
            ("queued", queued, K),
            ("transferred", moved_at, K | {"to_queue": "avgifter"}),
            ("answered", answered_at, {"queue": "avgifter", "agent": "a"}),
        )

    events = [
        *moved("apr", "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:20+02:00", "2026-04-14T10:01:00+02:00"),
        *moved("sat", "2026-04-18T10:00:00+02:00", "2026-04-18T10:00:20+02:00", "2026-04-18T10:01:00+02:00"),
        *moved("mar", "2026-03-17T10:00:00+01:00", "2026-03-17T10:00:20+01:00", "2026-03-17T10:01:00+01:00"),
    ]
    Deriver(warehouse, agreements).apply(events)
    assert (
        monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]["transferred_out"] == 1
    )


def test_a_reply_exactly_at_the_evaluation_time_counts_as_answered(warehouse, agreements):
    # mutant `ended_at < eval_at` (for `<=`): docs/decisions.md, a case answered *after* the
    # evaluation time counts as open; one answered exactly at it is answered. Opened Tue 14 April
    # 09:00, replied 10:00, the report evaluated at 10:00 ("now" before the month's end).
    def mail(type_, t, msg):
        data = {"mailbox": "kundreskontra", "thread_id": "u1", "message_id": msg}
        return ev(f"mail.{type_}", t, source="imap/kundreskontra", **data)

    events = [mail("received", "2026-04-14T09:00:00+02:00", "m1"), mail("replied", "2026-04-14T10:00:00+02:00", "r1")]
    Deriver(warehouse, agreements).apply(events)
    now = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)  # 10:00 +02:00
    m = monthly_report(warehouse, agreements, "2026-04", now=now)["mailboxes"]["kundreskontra"]
    assert (m["received"], m["answered"], m["open_at_end"], m["within_target"]) == (1, 1, 0, 1)
    assert m["median_lead_seconds"] == 3600


def test_a_case_opened_exactly_at_the_evaluation_time_is_received_and_open(warehouse, agreements):
    # mutant `opened_at < eval_at` (for `<=`): like a reply at that instant, a message received
    # exactly at the evaluation time has arrived by then. Tue 14 April 10:00, evaluated at 10:00:
    # one case, open, business age 0 (not breached).
    data = {"mailbox": "kundreskontra", "thread_id": "u1", "message_id": "m1"}
    Deriver(warehouse, agreements).apply([ev("mail.received", "2026-04-14T10:00:00+02:00", source="imap/k", **data)])
    now = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)  # 10:00 +02:00
    m = monthly_report(warehouse, agreements, "2026-04", now=now)["mailboxes"]["kundreskontra"]
    assert (m["received"], m["answered"], m["open_at_end"], m["breached"]) == (1, 0, 1, 0)
