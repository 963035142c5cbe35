"""The monthly report at the edges of its comparisons, through the real report SQL on chDB.

Each test names the bug it guards (issue #16): a change that moves one of these edges makes it fail.
Calendar `kontor` (tests/conftest.py): Mon 08-12 + 13-16:30, Tue-Thu 08-16:30; April 2026 is
summer time (+02:00). The mailbox's targets are 8 h (priority 4 h) of business time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.report import monthly_report
from stream_jobs.core.deriver import Deriver
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)  # "now" well after April 2026


def mail(type_: str, t: str, thread: str, msg: str | None = None, **data):
    data |= {"mailbox": "kundreskontra", "thread_id": thread}
    if msg:
        data["message_id"] = msg
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", **data)


def mailbox(warehouse, agreements, events, now=LATER):
    Deriver(warehouse, agreements).apply(events)
    return monthly_report(warehouse, agreements, "2026-04", now=now)["mailboxes"]["kundreskontra"]


# Opened Mon 13 Apr 15:30: Mon 15:30-16:30 is 1 h, Tue 14 Apr 08:00-15:00 is 7 h, so the business
# time reaches the 8 h target at Tue 14 Apr 15:00:00 (23.5 h of wall time later).
OPENED = "2026-04-13T15:30:00+02:00"


@pytest.mark.parametrize(
    ("replied_at", "lead", "within", "breached"),
    [
        ("2026-04-14T14:59:59+02:00", 8 * 3600 - 1, 1, 0),
        ("2026-04-14T15:00:00+02:00", 8 * 3600, 1, 0),  # exactly at the target: within (<=), not breached
        ("2026-04-14T15:00:01+02:00", 8 * 3600 + 1, 0, 1),
    ],
    ids=["below", "at", "above"],
)
def test_reply_at_the_target_in_business_time_is_within_and_not_breached(
    warehouse, agreements, replied_at, lead, within, breached
):
    # guards: a reply exactly at the target counted as neither within nor breached
    # (kpi_sql.IN_TIME `lead_seconds <= target_seconds` -> `<`)
    m = mailbox(warehouse, agreements, [mail("received", OPENED, "u1", "m1"), mail("replied", replied_at, "u1", "r1")])
    assert (m["received"], m["answered"], m["open_at_end"]) == (1, 1, 0)
    assert (m["within_target"], m["breached"]) == (within, breached)
    assert m["median_lead_seconds"] == lead


def test_priority_reply_at_its_4h_target_is_within(warehouse, agreements):
    # guards: the same `<=` -> `<` bug on the priority target (4 h): Tue 14 Apr 15:00 -> 16:30 is
    # 1.5 h, Wed 15 Apr 08:00 -> 10:30 is 2.5 h: exactly 4 h.
    events = [
        mail("received", "2026-04-14T15:00:00+02:00", "p1", "m1", categories=["priority"]),
        mail("replied", "2026-04-15T10:30:00+02:00", "p1", "r1"),
    ]
    m = mailbox(warehouse, agreements, events)
    assert m["median_lead_seconds"] == 4 * 3600
    assert (m["priority_received"], m["priority_within_target"], m["within_target"], m["breached"]) == (1, 1, 1, 0)


@pytest.mark.parametrize(
    ("now", "breached"),
    [
        (datetime(2026, 4, 14, 12, 59, 59, tzinfo=UTC), 0),  # Tue 14:59:59 local: age 8 h - 1 s
        (datetime(2026, 4, 14, 13, 0, 0, tzinfo=UTC), 0),  # Tue 15:00:00 local: age exactly 8 h, not breached
        (datetime(2026, 4, 14, 13, 0, 1, tzinfo=UTC), 1),  # Tue 15:00:01 local: age 8 h + 1 s, breached
    ],
    ids=["below", "at", "above"],
)
def test_open_case_exactly_at_its_target_at_the_evaluation_time_is_not_breached(warehouse, agreements, now, breached):
    # guards: an open case exactly at its target counted as breached (report open-case breach,
    # kpi_sql.overdue `age > target_seconds` -> `>=`)
    m = mailbox(warehouse, agreements, [mail("received", OPENED, "u1", "m1")], now=now)
    assert (m["received"], m["open_at_end"], m["within_target"]) == (1, 1, 0)
    assert m["breached"] == breached


def _answered(i: int, wait: int):
    return call(
        f"c{i}",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", f"2026-04-14T10:{wait // 60:02d}:{wait % 60:02d}+02:00", K | {"agent": "a"}),
    )


@pytest.mark.parametrize(
    ("waits", "p90"),
    [
        ([10], 10),  # n = 1: ceil(0.9) = 1st smallest (rounded down it would be the 0th: no wait at all)
        ([10, 20, 30, 40, 50], 50),  # n = 5: ceil(4.5) = 5th smallest (rounded down: the 4th, 40)
        ([50, 10, 40, 20, 30], 50),  # the same waits in another order: the rank is over the sorted waits
        ([10 * i for i in range(1, 11)], 90),  # n = 10: ceil(9) = 9th smallest
        ([10 * i for i in range(1, 12)], 100),  # n = 11: ceil(9.9) = 10th smallest
        ([10 * i for i in range(1, 21)], 180),  # n = 20: ceil(18) = 18th smallest
    ],
    ids=["n1", "n5", "n5-unsorted", "n10", "n11", "n20"],
)
def test_wait_p90_is_the_nearest_rank(warehouse, agreements, waits, p90):
    # guards: p90 nearest rank rounded down (kpi_sql.wait_p90 `intDiv(9 * n + 9, 10)` -> `intDiv(9 * n, 10)`):
    # one 10 s wait reported p90 = 0, waits 10-50 s reported 40
    events = [e for i, w in enumerate(waits) for e in _answered(i, w)]
    Deriver(warehouse, agreements).apply(events)
    q = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    assert q["answered"] == len(waits)
    assert q["wait_p90_seconds"] == p90
