"""The facts sorted by time and the interval aggregates give the numbers the full scan gave.

A simulated week across a month's end and the spring DST change (Thu 26 March - Wed 1 April
2026, Europe/Stockholm) goes through the Deriver into the embedded warehouse in a hostile way:
batches out of order, a share of the events delivered twice, a share held back and delivered
last (late), and late `call.queued` events earlier than a call's first one, which move the
contact's first queued time, and so its row, its interval, its day and for some its month (from
1 April back to 31 March). Then:

- the warehouse's contacts (FINAL) are exactly those a `MemoryStore` holds after the same events
  in order, one row per contact: every moved row was withdrawn under its old key;
- the report of March and of April (dashboards/report.py: counts, waits, percentiles, transfers
  and fingerprints from `queue_intervals`, callers and recovered abandons from the facts within
  bounds) equals, field for field, the full scan over the facts (dashboards/full_scan.py);
- every interval row equals a recompute from the facts.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from dashboards import full_scan, provenance, report
from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import Agreements, load_agreements, parse_agreements
from schemas.calendar import local_month_bounds
from schemas.events import CallQueued, Event, encode
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.store import MemoryStore, stored_instant
from stream_jobs.intervals import refresh_sql
from stream_jobs.warehouse import AggregatesFailed, Warehouse, ms
from tests.conftest import AGREEMENTS, call

START = date(2026, 3, 26)
DAYS = 7
SEED = 20260326
NOW = datetime(2026, 5, 1, tzinfo=UTC)  # both months judged at their end


@pytest.fixture(scope="module")
def shipped() -> Agreements:
    return load_agreements()


def _events(agreements: Agreements) -> list[Event]:
    boundary = Boundary(agreements, Pseudonymiser(b"interval-test-key", agreements))
    out = []
    for raw in simulate(agreements, START, DAYS, SEED):
        accepted = boundary.accept(encode(raw))
        assert not isinstance(accepted, Rejection), accepted
        out.append(accepted)
    return out


def _moved(events: list[Event], rng: random.Random) -> list[Event]:
    """Late call.queued events before some calls' first one (same queue), each moving its
    contact's first queued time into another interval: 20 minutes before for a sample of calls,
    and to 31 March 23:50 for the first five calls queued on 1 April (their contacts move back
    into March)."""
    first: dict[str, CallQueued] = {}
    for ev in events:
        if isinstance(ev, CallQueued) and ev.data.call_id not in first:
            first[ev.data.call_id] = ev
    midnight = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # 1 April 00:00 CEST
    april = sorted((q for q in first.values() if q.time >= midnight), key=lambda q: q.time)[:5]
    sample = rng.sample(sorted(first.values(), key=lambda q: q.id), 60)
    return [msgspec.structs.replace(q, id=f"{q.id}-early", time=midnight - timedelta(minutes=10)) for q in april] + [
        msgspec.structs.replace(q, id=f"{q.id}-early", time=q.time - timedelta(minutes=20))
        for q in sample
        if q not in april
    ]


@pytest.fixture(scope="module")
def loaded(chdb_dir: str, shipped: Agreements) -> Iterator[tuple[Warehouse, MemoryStore, int]]:
    rng = random.Random(SEED)
    events = _events(shipped)
    moved = _moved(events, rng)
    # In order, into memory: the truth the warehouse must hold.
    memory = MemoryStore()
    truth = Deriver(memory, shipped)
    for i in range(0, len(events), 3000):
        truth.apply(events[i : i + 3000])
    truth.apply(moved)

    # Hostile, into the warehouse: batches shuffled within a sliding window, a tenth of the events
    # delivered twice, a twentieth held back to the end with the moving events.
    held = [ev for ev in events if rng.random() < 0.05]
    held_ids = {id(ev) for ev in held}
    rest = [ev for ev in events if id(ev) not in held_ids]
    batches = [rest[i : i + 1500] for i in range(0, len(rest), 1500)]
    for i in range(len(batches) - 1):
        if rng.random() < 0.3:
            batches[i], batches[i + 1] = batches[i + 1], batches[i]
    again = [ev for ev in events if rng.random() < 0.1]
    database = f"test_intervals_{uuid.uuid4().hex[:10]}"
    wh = Warehouse.open(chdb_dir, database=database)
    deriver = Deriver(wh, shipped)
    for batch in batches:
        deriver.apply(batch)
    deriver.forget()  # a restart: what follows is reloaded from the warehouse
    for i in range(0, len(again), 2000):
        deriver.apply(again[i : i + 2000])
    deriver.apply(held)
    wh.flush()
    deriver.apply(moved)  # alone: no other event refreshes the intervals the moved contacts left
    wh.flush()
    yield wh, memory, len(moved)
    wh.close()


def test_the_warehouse_holds_one_row_per_contact_as_memory_does(loaded):
    wh, memory, moved = loaded
    assert moved >= 60  # the sample and the calls moved back into March
    rows = wh.query("SELECT call_id, seq, first_queued_at, queue, outcome FROM call_contacts FINAL")
    got = sorted((c, s, stored_instant(t.replace(tzinfo=UTC)), q, o) for c, s, t, q, o in rows)
    want = sorted(
        (call_id, seq, stored_instant(c.queued_at), c.queue, c.outcome) for (call_id, seq), c in memory.contacts.items()
    )
    assert len(got) == len(want) > 900
    assert got == want
    # The moved contacts' old rows are withdrawn, not left beside the new ones.
    assert wh.query("SELECT count() FROM call_contacts FINAL WHERE deleted = 0")[0][0] == len(want)


@pytest.mark.parametrize("month", ["2026-03", "2026-04"])
def test_the_report_equals_the_full_scan(loaded, shipped, month):
    wh, _, _ = loaded
    got = report.monthly_report(wh, shipped, month, now=NOW)
    reference = full_scan.queue_parts(wh, shipped, month)
    first, _ = local_month_bounds(report.trend_months(month)[0], shipped.timezone)
    _, end = local_month_bounds(month, shipped.timezone)
    prints = wh.query(provenance.FINGERPRINTS_SQL, {"start": ms(first), "end": ms(end), "tz": str(shipped.timezone)})
    assert full_scan.differences(got, reference, shipped, prints) == []
    # Not vacuous: the week's traffic is in both months, with waits, transfers and recoveries.
    queues = got["queues"].values()
    assert sum(q["offered"] for q in queues) > 100
    assert sum(q["transferred_out"] for q in queues) > 0
    assert sum(q["internal_transfers"] for q in queues) > 0
    assert any(q["wait_p90_seconds"] for q in queues)
    if month == "2026-03":
        assert sum(q["abandoned_recovered"] for q in queues) > 0
        assert len(got["views"]["days"]["queues"]["kundreskontra"]) >= 4  # 26, 27, 30, 31 March


def test_every_interval_equals_a_recompute_from_the_facts(loaded):
    wh, _, _ = loaded
    columns = (
        "interval_start, queue, offered, answered, abandoned, short_abandoned, callbacks, flowed_out, "
        "in_service_level, out_of_hours, internal_transfers, levels, levels_met, wait_us, wait_counts, max_wait, "
        "left_queues, left_counts, derived_with"
    )
    held = wh.query(
        f"SELECT {columns} FROM queue_intervals FINAL WHERE offered + out_of_hours + internal_transfers > 0 "
        "ORDER BY interval_start, queue"
    )
    fresh_sql = refresh_sql("queue_intervals").split("\n", 1)[1]  # the SELECT of the full recompute
    fresh = wh.query(f"SELECT {columns} FROM ({fresh_sql}) ORDER BY interval_start, queue")
    assert held == fresh and len(held) > 100


def test_a_transfer_counts_for_the_queue_left_whatever_queue_it_went_on_to(new_warehouse, agreements):
    """Queued in kundreskontra, transferred to avgifter, answered there; then the agreements drop
    avgifter. kundreskontra still counts the contact that left it, as the full scan does."""
    wh = new_warehouse()
    Deriver(wh, agreements).apply(
        call(
            "c1",
            ("queued", "2026-04-14T10:00:00+02:00", {"queue": "kundreskontra"}),
            ("transferred", "2026-04-14T10:00:20+02:00", {"queue": "kundreskontra", "to_queue": "avgifter"}),
            ("answered", "2026-04-14T10:00:40+02:00", {"queue": "avgifter", "agent": "a1"}),
        )
    )
    raw = copy.deepcopy(AGREEMENTS)
    del raw["queues"]["avgifter"]
    fewer = parse_agreements(raw)
    got = report.monthly_report(wh, fewer, "2026-04", now=NOW)
    assert got["queues"]["kundreskontra"]["transferred_out"] == 1
    reference = full_scan.queue_parts(wh, fewer, "2026-04")
    assert reference["queues"]["kundreskontra"]["transferred_out"] == 1


def test_a_failed_recompute_is_never_the_events_fault():
    """The sink dead-letters what the warehouse refused for its data (a parse error, code 62...);
    a failed recompute of the aggregates holds no event, whatever its code: the batch waits."""
    assert Warehouse.refused_for_data(Exception("Code: 62. DB::Exception: Syntax error"))
    assert not Warehouse.refused_for_data(AggregatesFailed("recomputing failed: Code: 62. DB::Exception: too big"))
