"""Facts keyed by time: a late event that moves a fact's instant withdraws its old row, and every
interval a batch touches, before and after, is recomputed (stream_jobs/intervals.py).

The memory store keys its rows as the warehouse does ((first queued, call, seq) and (opened,
mailbox, thread, seq)), and reading its contacts or cases fails when a fact is held under two
keys, as a FINAL read of the warehouse would count it twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from schemas.cluster import statements
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.store import MemoryStore, interval_of, stored_instant
from stream_jobs.intervals import RANGES_PER_STATEMENT, _ranges, _runs, refresh_sql, refresh_statements
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}


def utc(hh: int, mm: int, ss: int = 0, day: int = 14) -> datetime:
    return datetime(2026, 4, day, hh, mm, ss, tzinfo=UTC)


def mail(type_: str, t: str, msg: str, id: str) -> object:
    return ev(
        f"mail.{type_}",
        t,
        source="imap/kundreskontra",
        id=id,
        mailbox="kundreskontra",
        thread_id="t1",
        message_id=msg,
    )


def test_a_late_earlier_queued_moves_the_contact_and_withdraws_its_old_row(agreements):
    """Queued 10:00:30 and answered 10:00:45 (14 April, CEST: 08:00:30Z, interval 08:00Z); then a
    late call.queued at 09:40:00 (07:40Z, interval 07:30Z): the contact is first queued at 09:40
    now, its row moves, the old row is withdrawn, and both intervals are recomputed."""
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    deriver.apply(
        call(
            "c1",
            ("queued", "2026-04-14T10:00:30+02:00", K),
            ("answered", "2026-04-14T10:00:45+02:00", K | {"agent": "a1"}),
        )
    )
    assert list(store.contact_rows) == [(utc(8, 0, 30), "c1", 1)]
    assert store.intervals == {utc(8, 0)}

    store.intervals.clear()  # what the late batch refreshes: the interval left and the one entered
    deriver.apply(call("c1", ("queued", "2026-04-14T09:40:00+02:00", K)))
    assert list(store.contact_rows) == [(utc(7, 40), "c1", 1)]  # one row, under the new key
    (contact,) = store.contacts.values()
    assert (contact.queued_at, contact.wait_seconds) == (utc(7, 40), 20 * 60 + 45)
    assert store.intervals == {utc(8, 0), utc(7, 30)}


def test_the_move_is_found_after_a_restart(agreements):
    """The same late event met by a new Deriver (memory empty): the old key is read from the store."""
    store = MemoryStore()
    Deriver(store, agreements).apply(call("c1", ("queued", "2026-04-14T10:00:30+02:00", K)))
    fresh = Deriver(store, agreements)
    store.intervals.clear()
    fresh.apply(call("c1", ("queued", "2026-04-14T09:40:00+02:00", K)))
    assert list(store.contact_rows) == [(utc(7, 40), "c1", 1)]
    assert store.intervals == {utc(8, 0), utc(7, 30)}


def test_a_key_left_behind_would_fail_the_read(agreements):
    """Not vacuous: a row under a second key is two contacts to a FINAL read, and the store says so."""
    store = MemoryStore()
    Deriver(store, agreements).apply(call("c1", ("queued", "2026-04-14T10:00:30+02:00", K)))
    (row,) = store.contact_rows.values()
    store.contact_rows[(utc(7, 40), "c1", 1)] = row
    with pytest.raises(AssertionError, match="second key"):
        _ = store.contacts


def test_a_late_earlier_message_moves_the_case(agreements):
    """Received 09:00 (07:00Z), replied 11:00; then an earlier message of the thread at 08:50
    arrives late: the case opens at 08:50 (06:50Z, interval 06:45Z), its old row is withdrawn."""
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    deriver.apply(
        [
            mail("received", "2026-04-14T09:00:00+02:00", "m1", "r1"),
            mail("replied", "2026-04-14T11:00:00+02:00", "m2", "p1"),
        ]
    )
    assert [k[0] for k in store.case_rows] == [utc(7, 0)]
    deriver.forget()  # after a restart too
    store.intervals.clear()
    deriver.apply([mail("received", "2026-04-14T08:50:00+02:00", "m0", "r0")])
    assert [k[0] for k in store.case_rows] == [utc(6, 50)]
    (case,) = store.cases.values()
    assert (case.opened_at, case.end) == (utc(6, 50), "replied")
    assert store.intervals == {utc(7, 0), utc(6, 45)}


def test_instants_are_keyed_as_the_warehouse_stores_them():
    """DateTime64(3) truncates: 10:00:00.123999 is stored as .123, in the interval of 10:00."""
    t = datetime(2026, 4, 14, 10, 14, 59, 123999, tzinfo=UTC)
    assert stored_instant(t) == datetime(2026, 4, 14, 10, 14, 59, 123000, tzinfo=UTC)
    assert interval_of(t) == utc(10, 0)
    assert interval_of(utc(10, 15)) == utc(10, 15)


def test_adjacent_intervals_are_read_as_one_range():
    where = _ranges("t", _runs([utc(10, 15), utc(10, 0), utc(12, 0), utc(10, 0)]))
    ten, half_past, noon = (int(x.timestamp()) for x in (utc(10, 0), utc(10, 30), utc(12, 0)))
    assert where == (
        f"((t >= toDateTime({ten}, 'UTC') AND t < toDateTime({half_past}, 'UTC'))"
        f" OR (t >= toDateTime({noon}, 'UTC') AND t < toDateTime({noon + 900}, 'UTC')))"
    )


def test_the_migration_fills_the_aggregates_as_the_deriver_recomputes_them():
    """schemas/ddl/009 ends with the full recompute of both tables, as refresh_sql renders it."""
    ddl = (resources.files("schemas") / "ddl" / "009_facts_by_time.sql").read_text(encoding="utf-8")
    fills = [s for s in statements(ddl) if s.startswith("INSERT INTO") and "_intervals" in s.split("\n")[0]]
    assert fills == [refresh_sql("queue_intervals"), refresh_sql("mailbox_intervals")]


def test_a_year_of_intervals_is_recomputed_in_statements_of_bounded_size():
    """`rederive` of a year, or a long replay, touches thousands of separate intervals: they go in
    statements of at most RANGES_PER_STATEMENT ranges, each far below max_query_size (256 KiB),
    together covering every interval once."""
    year = [utc(8, 0, day=1) + timedelta(hours=2 * i) for i in range(4 * 365)]  # none adjacent
    statements_ = list(refresh_statements("queue_intervals", year))
    assert len(statements_) == -(-len(year) // RANGES_PER_STATEMENT) == 6
    assert max(len(s.encode()) for s in statements_) < 128 * 1024
    starts = [int(t.timestamp()) for t in year]
    assert sum(s.count(f"first_queued_at >= toDateTime({a}, 'UTC')") for s in statements_ for a in starts) == len(year)
