"""The monthly report's SQL against hand-computed values (spec/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.report import monthly_report
from stream_jobs.core.deriver import Deriver
from tests.conftest import call, ev

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)  # "now" well after the reported months


def report(warehouse, agreements, events, month="2026-04", now=LATER):
    Deriver(warehouse, agreements).apply(events)
    return monthly_report(warehouse, agreements, month, now=now)


def answered(cid, queued, answered_at, q=K):
    return call(cid, ("queued", queued, q), ("answered", answered_at, q | {"agent": "a"}))


def test_empty_month_has_every_queue_and_mailbox_with_zeros_and_nulls(warehouse, agreements):
    r = monthly_report(warehouse, agreements, "2026-04", now=LATER)
    assert set(r["queues"]) == {"kundreskontra", "avgifter"} and set(r["mailboxes"]) == {"kundreskontra"}
    q = r["queues"]["kundreskontra"]
    assert q["offered"] == 0 and q["answer_rate"] is None and q["service_level"] is None
    assert q["asa_seconds"] is None and q["max_wait_seconds"] is None and q["wait_p90_seconds"] is None
    assert r["mailboxes"]["kundreskontra"]["median_lead_seconds"] is None


def test_queue_kpis(warehouse, agreements):
    # Ten answered contacts with waits 10, 20, ..., 100 s, one short abandon (3 s), one abandon
    # after 200 s, one callback after 90 s, one out of hours (Saturday), all in kundreskontra.
    events = []
    for i in range(1, 11):
        events += answered(
            f"a{i}", "2026-04-14T10:00:00+02:00", f"2026-04-14T10:0{i * 10 // 60}:{i * 10 % 60:02d}+02:00"
        )
    events += call("s", ("queued", "2026-04-14T11:00:00+02:00", K), ("abandoned", "2026-04-14T11:00:03+02:00", K))
    events += call("l", ("queued", "2026-04-14T11:00:00+02:00", K), ("ended", "2026-04-14T11:03:20+02:00", {}))
    events += call(
        "cb", ("queued", "2026-04-14T11:00:00+02:00", K), ("callback_requested", "2026-04-14T11:01:30+02:00", K)
    )
    events += answered("sat", "2026-04-18T10:00:00+02:00", "2026-04-18T10:00:05+02:00")
    q = report(warehouse, agreements, events)["queues"]["kundreskontra"]
    # offered = 10 + 3 (the Saturday call is out of hours, in no other count)
    assert (q["offered"], q["answered"], q["abandoned"], q["short_abandoned"], q["callbacks"]) == (13, 10, 2, 1, 1)
    assert q["out_of_hours"] == 1
    # base = 13 - 1 short - 1 callback = 11; answered 10 -> 10/11; within 60 s: waits 10..60 -> 6/11
    assert q["answer_rate"] == 10 / 11
    assert q["service_level"] == 6 / 11
    assert q["asa_seconds"] == 55  # mean of 10..100
    assert q["max_wait_seconds"] == 200  # the 200 s abandon; answered and abandoned both count
    assert q["wait_p90_seconds"] == 90  # nearest rank: ceil(0.9 * 10) = 9th of 10 sorted waits


def test_transfers_count_out_of_each_left_queue_and_the_contact_in_the_last(warehouse, agreements):
    events = call(
        "t",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("transferred", "2026-04-14T10:00:30+02:00", K | {"to_queue": "avgifter"}),
        ("answered", "2026-04-14T10:01:00+02:00", A | {"agent": "a"}),
    )
    r = report(warehouse, agreements, events)["queues"]
    assert (r["kundreskontra"]["offered"], r["kundreskontra"]["transferred_out"]) == (0, 1)
    assert (r["avgifter"]["offered"], r["avgifter"]["answered"], r["avgifter"]["asa_seconds"]) == (1, 1, 60)
    assert r["avgifter"]["service_level"] == 1.0  # 60 s <= avgifter's 120 s


def test_internal_transfer_is_reported_apart(warehouse, agreements):
    events = call(
        "i",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:10+02:00", K | {"agent": "a"}),
        ("queued", "2026-04-14T10:04:00+02:00", A),
        ("answered", "2026-04-14T10:09:00+02:00", A | {"agent": "b"}),
    )
    r = report(warehouse, agreements, events)["queues"]
    assert r["kundreskontra"]["offered"] == 1 and r["kundreskontra"]["asa_seconds"] == 10
    assert r["avgifter"]["offered"] == 0 and r["avgifter"]["internal_transfers"] == 1
    assert r["avgifter"]["max_wait_seconds"] is None  # the 300 s internal wait is in no KPI


def test_contact_belongs_to_the_local_month_it_was_first_queued(warehouse, agreements):
    # 2026-04-30T21:59:59Z is 23:59:59 local on 30 April; 22:00:00Z is 1 May 00:00 local.
    events = call("apr", ("queued", "2026-04-30T21:59:59Z", K), ("ended", "2026-04-30T22:05:00Z", {}))
    events += call("may", ("queued", "2026-04-30T22:00:00Z", K), ("ended", "2026-04-30T22:05:00Z", {}))
    Deriver(warehouse, agreements).apply(events)
    april = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    may = monthly_report(warehouse, agreements, "2026-05", now=LATER)["queues"]["kundreskontra"]
    assert april["out_of_hours"] == 1 and may["out_of_hours"] == 1


def mail(type_, t, thread, msg=None, **data):
    data |= {"mailbox": "kundreskontra", "thread_id": thread}
    if msg:
        data["message_id"] = msg
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", **data)


def test_mailbox_kpis_and_open_case_at_month_end(warehouse, agreements):
    events = [
        # u1: Fri 17 Apr 15:30 -> Mon 20 Apr 09:00 = 1.5 h: within 8 h.
        mail("received", "2026-04-17T15:30:00+02:00", "u1", "m1"),
        mail("replied", "2026-04-20T09:00:00+02:00", "u1", "r1"),
        # u2: priority, Wed 29 Apr 15:00 -> Thu 30 Apr 12:00 = 5.5 h > 4 h: breached.
        mail("received", "2026-04-29T15:00:00+02:00", "u2", "m2", categories=["priority"]),
        mail("replied", "2026-04-30T12:00:00+02:00", "u2", "r2"),
        # u3: opened Mon 27 Apr 08:00, still open at month end: business age at 1 May 00:00 is
        # Mon 08-12 + 13-16:30 (7.5 h) + Tue 8.5 + Wed 8.5 + Thu valborg 08-13 (5 h) = 29.5 h > 8 h.
        mail("received", "2026-04-27T08:00:00+02:00", "u3", "m3"),
        # u4: opened Thu 30 Apr 12:30, open: age 0.5 h at month end (1 May is a holiday anyway).
        mail("received", "2026-04-30T12:30:00+02:00", "u4", "m4"),
        # u5: closed without reply.
        mail("received", "2026-04-14T09:00:00+02:00", "u5", "m5"),
        mail("closed", "2026-04-14T09:10:00+02:00", "u5", reason="forwarded"),
        # u6: replied in May, after the evaluation time: open at the end of April with an age of
        # 1 h (Thu 12-13), so not breached.
        mail("received", "2026-04-30T12:00:00+02:00", "u6", "m6"),
        mail("replied", "2026-05-04T09:00:00+02:00", "u6", "r6"),
    ]
    m = report(warehouse, agreements, events)["mailboxes"]["kundreskontra"]
    assert (m["received"], m["answered"], m["closed_without_reply"], m["open_at_end"]) == (6, 2, 1, 3)
    assert (m["within_target"], m["breached"]) == (1, 2)  # u1 within; u2 late, u3 open too long
    assert m["median_lead_seconds"] == (1.5 + 5.5) / 2 * 3600  # even count: mean of the middle two
    assert (m["priority_received"], m["priority_within_target"]) == (1, 0)


def test_open_case_is_judged_now_when_now_is_before_month_end(warehouse, agreements):
    events = [mail("received", "2026-04-14T08:00:00+02:00", "u1", "m1")]
    # Now = Tue 14 Apr 15:00 local: age 7 h < 8 h, not breached; at month end it would be.
    now = datetime(2026, 4, 14, 13, 0, tzinfo=UTC)
    m = report(warehouse, agreements, events, now=now)["mailboxes"]["kundreskontra"]
    assert (m["open_at_end"], m["breached"]) == (1, 0)
    m = monthly_report(warehouse, agreements, "2026-04", now=LATER)["mailboxes"]["kundreskontra"]
    assert (m["open_at_end"], m["breached"]) == (1, 1)


@pytest.mark.parametrize("split", [1, 2, 3, 7])
def test_events_split_across_batches_in_any_order_give_the_same_report(new_warehouse, agreements, split):
    events = [
        *call(
            "x",
            ("queued", "2026-04-14T10:00:00+02:00", K),
            ("transferred", "2026-04-14T10:00:30+02:00", K | {"to_queue": "avgifter"}),
            ("answered", "2026-04-14T10:01:00+02:00", A | {"agent": "a"}),
            ("ended", "2026-04-14T10:05:00+02:00", {}),
        ),
        mail("received", "2026-04-14T09:00:00+02:00", "u1", "m1"),
        mail("replied", "2026-04-14T10:00:00+02:00", "u1", "r1"),
    ]
    expected = report(new_warehouse(), agreements, events)
    # Another warehouse gets the events in reverse, in `split` batches, some twice, and then
    # all of them again through a new Deriver (a restart).
    warehouse = new_warehouse()
    deriver = Deriver(warehouse, agreements)
    backwards = events[::-1] + events[:2]
    for i in range(split):
        deriver.apply(backwards[i::split])
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER) == expected
    Deriver(warehouse, agreements).apply(events)
    assert monthly_report(warehouse, agreements, "2026-04", now=LATER) == expected


def test_report_has_internal_transfers_evaluated_at_and_definitions_beside_the_spec_keys(warehouse, agreements):
    """Rule (docs/decisions.md, "The report"): beside the keys of spec/metrics.md the JSON report has
    `internal_transfers` per queue, `evaluated_at` (the end of the month, or now if earlier) and
    `definitions`."""
    r = monthly_report(warehouse, agreements, "2026-04", now=LATER)
    assert r["evaluated_at"] == "2026-04-30T22:00:00Z"  # 1 May 00:00 local (+02:00): the end of April
    now = datetime(2026, 4, 14, 13, 0, tzinfo=UTC)  # before the end of the month: judged now
    assert monthly_report(warehouse, agreements, "2026-04", now=now)["evaluated_at"] == "2026-04-14T13:00:00Z"
    assert all(q["internal_transfers"] == 0 for q in r["queues"].values())
    for key in (
        "answer_rate",
        "service_level",
        "wait_p90_seconds",
        "lead_time",
        "internal_transfers",
        "evaluation_time",
    ):
        assert r["definitions"][key]
