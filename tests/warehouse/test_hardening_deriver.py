"""Hardening (issue #7) of the Deriver and the warehouse reads: items 2, 3 and 5.

2. no query exceeds ClickHouse's max query size, however long and many the keys of a batch;
3. an entity whose derivation raises is reported in `BatchResult.failed` and not stored, and
   every other entity of the batch goes on;
5. a late event reloads every stored event of its entity, however old.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import stream_jobs.core.deriver as deriver_module
from dashboards.report import monthly_report
from schemas.events import CallEnded
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import MAX_KEYS_LITERAL_BYTES, Warehouse, key_literals
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)
# ClickHouse's default max_query_size: the whole query text, literals included.
MAX_QUERY_SIZE = 256 * 1024


def mail(type_, t, thread, msg=None, **data):
    data |= {"mailbox": "kundreskontra", "thread_id": thread}
    if msg:
        data["message_id"] = msg
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", **data)


def exchange_id(i: int) -> str:
    """An Exchange-shaped Message-ID of 85 characters (what Outlook puts in a thread's id)."""
    text = f"<AM0PR04MB{i:07d}D8C6F2B0A41E7C3D9E2F1A0B5C8D7E6F5A4B3C2D1E0F@AM0PR04MB6290.eurprd04.prod>"
    return text[:84] + ">"


def count(warehouse: Warehouse, sql: str) -> int:
    return int(warehouse.query(sql)[0][0])


# -- item 2: the keys of a batch never make a query longer than ClickHouse accepts ---------------


def test_key_literals_stay_under_the_bound_and_keep_every_key():
    keys = [f"k{i}-" + "å'\\" * 30 for i in range(2000)]  # quotes, backslashes and 2-byte letters
    literals = list(key_literals(keys, 10_000))
    assert len(literals) > 1
    decoded = []
    for literal in literals:
        # Measured in bytes after escaping, which is what ClickHouse counts.
        assert len(literal.encode()) <= 10_000
        assert literal[0] == literal[-1] == "'"
        decoded += json.loads(literal[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
    assert decoded == keys
    # The bound used for real queries leaves room for the rest of the query under 256 KiB.
    assert MAX_KEYS_LITERAL_BYTES + 1024 <= MAX_QUERY_SIZE


def test_a_batch_of_threads_with_exchange_message_ids_is_stored_and_reloaded(new_warehouse, agreements):
    warehouse = new_warehouse()
    n = 3000
    threads = [exchange_id(i) for i in range(n)]
    assert len(threads[0]) == 85
    keys = [f"kundreskontra/{t}" for t in threads]
    # Joined as one JSON literal the keys exceed ClickHouse's 256 KiB (the crash of the issue).
    assert len(json.dumps(keys)) > MAX_QUERY_SIZE
    received = [mail("received", "2026-04-14T09:00:00+02:00", t, f"m{i}") for i, t in enumerate(threads)]
    result = Deriver(warehouse, agreements).apply(received)
    assert (result.events, result.cases, result.failed) == (n, n, [])
    # A second run (a new Deriver, nothing in memory) must load all 3000 threads back.
    replies = [mail("replied", "2026-04-14T10:00:00+02:00", t, f"r{i}") for i, t in enumerate(threads)]
    result = Deriver(warehouse, agreements).apply(replies)
    assert (result.events, result.cases, result.failed) == (n, n, [])
    m = monthly_report(warehouse, agreements, "2026-04", now=LATER)["mailboxes"]["kundreskontra"]
    # Each case: received Tue 14 Apr 09:00, replied 10:00 (open hours) -> 1 h, within 8 h.
    assert (m["received"], m["answered"], m["within_target"], m["median_lead_seconds"]) == (n, n, n, 3600)


def test_calls_with_300_character_ids_are_stored_and_reloaded(new_warehouse, agreements):
    warehouse = new_warehouse()
    ids = [f"{i:05d}-" + "c" * 294 for i in range(1000)]  # 300 characters each, 300 KB together
    assert len(json.dumps(ids)) > MAX_QUERY_SIZE
    queued = [e for cid in ids for e in call(cid, ("queued", "2026-04-14T10:00:00+02:00", K))]
    assert Deriver(warehouse, agreements).apply(queued).failed == []
    answered = [e for cid in ids for e in call(cid, ("answered", "2026-04-14T10:00:20+02:00", K | {"agent": "a"}))]
    assert Deriver(warehouse, agreements).apply(answered).failed == []
    q = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    # Every call: queued 10:00:00, answered 10:00:20 -> one offered, answered contact of 20 s.
    assert (q["offered"], q["answered"], q["asa_seconds"]) == (1000, 1000, 20)


# -- item 3: a derivation that raises fails its entity only -------------------------------------


@pytest.fixture
def poisoned(monkeypatch):
    """derive_call and derive_thread raise for the call or thread named "poison"."""
    real_call, real_thread = deriver_module.derive_call, deriver_module.derive_thread

    def derive_call(call_id, events, agreements):
        if call_id == "poison":
            raise ValueError("cannot fold this call")
        return real_call(call_id, events, agreements)

    def derive_thread(thread_id, events, mailbox):
        if thread_id == "poison":
            raise RecursionError("maximum recursion depth exceeded")
        return real_thread(thread_id, events, mailbox)

    monkeypatch.setattr(deriver_module, "derive_call", derive_call)
    monkeypatch.setattr(deriver_module, "derive_thread", derive_thread)
    return monkeypatch


@pytest.mark.parametrize("track_changes", [False, True])
def test_an_entity_whose_derivation_raises_is_failed_and_the_others_stored(
    warehouse, agreements, poisoned, track_changes
):
    good_call = call(
        "ok", ("queued", "2026-04-14T10:00:00+02:00", K), ("answered", "2026-04-14T10:00:30+02:00", K | {"agent": "a"})
    )
    bad_call = call("poison", ("queued", "2026-04-14T10:01:00+02:00", K), ("ended", "2026-04-14T10:02:00+02:00", {}))
    good_mail = [mail("received", "2026-04-14T09:00:00+02:00", "t1", "m1")]
    bad_mail = [mail("received", "2026-04-14T09:00:00+02:00", "poison", "m2")]
    batch = [good_call[0], bad_call[0], good_mail[0], bad_mail[0], good_call[1], bad_call[1]]

    result = Deriver(warehouse, agreements, track_changes=track_changes).apply(batch)

    # The three events of the two poisoned entities, each with the exception that stopped it.
    call_reason = "could not be derived (ValueError: cannot fold this call)"
    mail_reason = "could not be derived (RecursionError: maximum recursion depth exceeded)"
    assert sorted((e.id, r) for e, r in result.failed) == sorted(
        [(bad_call[0].id, call_reason), (bad_call[1].id, call_reason), (bad_mail[0].id, mail_reason)]
    )
    assert (result.events, result.calls, result.cases) == (3, 1, 1)  # the good call (2 events) and thread
    # Not stored: a raw event without its fact is what made every later run crash again.
    assert count(warehouse, "SELECT count() FROM events") == 3
    assert count(warehouse, "SELECT count() FROM events WHERE key LIKE '%poison%'") == 0
    assert warehouse.query("SELECT call_id, outcome, wait_seconds FROM call_contacts FINAL") == [
        ("ok", "answered", 30.0)
    ]
    assert warehouse.query("SELECT thread_id FROM mail_cases FINAL") == [("t1",)]
    if track_changes:
        assert [after.call_id for _, after in result.call_changes] == ["ok"]
        assert [[c.thread_id for c in after] for _, after in result.case_changes] == [["t1"]]


def test_a_failed_entity_leaves_nothing_in_memory(warehouse, agreements, poisoned):
    deriver = Deriver(warehouse, agreements)
    queued = call("poison", ("queued", "2026-04-14T10:00:00+02:00", K))
    poisoned.undo()  # the first batch derives normally: the call is stored and held in memory
    assert deriver.apply(queued).failed == []
    poisoned.setattr(deriver_module, "derive_call", _raising)
    answered = call("poison", ("answered", "2026-04-14T10:00:30+02:00", K | {"agent": "a"}))
    assert [e.id for e, _ in deriver.apply(answered).failed] == [answered[0].id]
    poisoned.undo()
    ended = call("poison", ("ended", "2026-04-14T10:05:00+02:00", {}))
    assert deriver.apply(ended).failed == []
    # The fact folds queued + ended only (the answer was rejected, never stored): 2 events, and
    # the caller hung up while waiting at 10:05 -> abandoned after 300 s.
    assert warehouse.query("SELECT events, outcome, wait_seconds FROM call_contacts FINAL") == [(2, "abandoned", 300.0)]
    assert count(warehouse, "SELECT count() FROM events") == 2


def _raising(call_id, events, agreements):
    raise ValueError("boom")


@pytest.mark.parametrize(
    "time",
    [
        "0001-04-14T10:00:00Z",
        "1989-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2950-04-14T10:00:00Z",
        "9999-04-14T10:00:00Z",
    ],
)
def test_an_event_outside_the_time_range_is_failed_with_a_reason(warehouse, agreements, time):
    batch = [
        *call("ok", ("queued", "2026-04-14T10:00:00+02:00", K)),
        *call("ok", ("ended", time, {})),  # the same call: only the bad event fails
        mail("received", time, "t-bad", "m1"),
    ]
    result = Deriver(warehouse, agreements).apply(batch)
    assert sorted(e.id for e, _ in result.failed) == sorted([batch[1].id, batch[2].id])
    for _, reason in result.failed:
        assert reason.startswith(f"time {time[:4]}") and "1990-01-01" in reason and "2100-01-01" in reason, reason
    assert count(warehouse, "SELECT count() FROM events") == 1
    # The call is folded without the bad call.ended: still waiting.
    assert warehouse.query("SELECT call_id, outcome FROM call_contacts FINAL") == [("ok", "waiting")]


# -- item 5: a late event reloads every stored event of its entity ------------------------------


def test_a_call_ended_five_days_later_in_a_second_run_keeps_its_contact(new_warehouse, agreements):
    warehouse = new_warehouse()
    # Run 1: "late" is queued Tue 14 Apr 10:00 (open) and answered after 40 s; "ooh" is queued on
    # Saturday 18 Apr (closed: out of hours).
    first = call(
        "late",
        ("offered", "2026-04-14T09:59:50+02:00", {"entrance": "växel"}),
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:40+02:00", K | {"agent": "a"}),
    ) + call("ooh", ("queued", "2026-04-18T10:00:00+02:00", K))
    Deriver(warehouse, agreements).apply(first)
    # Run 2 (a new process): each call's call.ended arrives five days after the rest.
    second = call("late", ("ended", "2026-04-19T10:00:40+02:00", {})) + call(
        "ooh", ("ended", "2026-04-23T10:00:00+02:00", {})
    )
    result = Deriver(warehouse, agreements).apply(second)
    assert (result.calls, result.failed) == (2, [])
    rows = warehouse.records(
        "SELECT call_id, queue, outcome, wait_seconds, talk_seconds, events, queue_open FROM call_contacts FINAL"
        " ORDER BY call_id"
    )
    assert rows == [
        # 3 stored events + the late end; talk = 19 Apr 10:00:40 - 14 Apr 10:00:40 = 5 days.
        {"call_id": "late", "queue": "kundreskontra", "outcome": "answered", "wait_seconds": 40.0,
         "talk_seconds": 5 * 86400.0, "events": 4, "queue_open": True},
        # ended while waiting: abandoned after 5 days, but out of hours, in no other count.
        {"call_id": "ooh", "queue": "kundreskontra", "outcome": "abandoned", "wait_seconds": 5 * 86400.0,
         "talk_seconds": None, "events": 2, "queue_open": False},
    ]  # fmt: skip
    q = monthly_report(warehouse, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
    assert (q["offered"], q["answered"], q["asa_seconds"], q["out_of_hours"]) == (1, 1, 40, 1)


def test_a_late_event_after_eviction_in_the_same_run_reloads_the_call(warehouse, agreements):
    deriver = Deriver(warehouse, agreements)
    deriver.apply(
        call(
            "late",
            ("queued", "2026-04-14T10:00:00+02:00", K),
            ("answered", "2026-04-14T10:00:40+02:00", K | {"agent": "a"}),
        )
    )
    # Four days later another call moves the watermark past the grace: "late" leaves memory.
    deriver.apply(call("other", ("queued", "2026-04-18T10:00:00+02:00", K)))
    assert "late" not in deriver.calls.events
    ended = call("late", ("ended", "2026-04-20T10:00:40+02:00", {}))
    assert isinstance(ended[0], CallEnded)
    deriver.apply(ended)
    # wait 40 s as before; talk = 20 Apr 10:00:40 - 14 Apr 10:00:40 = 6 days.
    assert warehouse.query(
        "SELECT outcome, wait_seconds, talk_seconds, events FROM call_contacts FINAL WHERE call_id = 'late'"
    ) == [("answered", 40.0, 6 * 86400.0, 3)]


def test_a_thread_with_an_old_bad_event_stored_by_an_earlier_version_derives_again(warehouse, agreements):
    # An earlier version stored a mail.received of 1989 without its facts (the derivation
    # raised after the insert); every later event of the thread then crashed again.
    warehouse.insert_events([mail("received", "1989-06-01T10:00:00+02:00", "t-old", "m0")])
    received = mail("received", "2026-04-14T09:00:00+02:00", "t-old", "m1")
    replied = mail("replied", "2026-04-14T11:00:00+02:00", "t-old", "r1")
    result = Deriver(warehouse, agreements).apply([received, replied])
    assert (result.failed, result.cases) == ([], 1)
    # The stored 1989 event is left out of the fold: one case, received 09:00, replied 11:00
    # on Tuesday 14 April (open all the time) -> 2 h.
    assert warehouse.query("SELECT seq, lead_seconds, messages FROM mail_cases FINAL WHERE thread_id = 't-old'") == [
        (1, 7200.0, 1)
    ]


def test_a_stored_payload_that_no_longer_decodes_is_left_out_not_a_crash(warehouse, agreements):
    """Review finding: a payload stored under a looser contract (a 600-character Message-ID, before
    ids were bounded to 512) made every later event of its thread crash `process` at the reload."""
    old = mail("received", "2026-04-14T08:30:00+02:00", "t-loose", "m0")
    warehouse.insert_events([old])
    warehouse.flush()
    loose = json.dumps(json.loads(old_payload(warehouse)) | {"id": "x" * 600})
    warehouse.client.command(
        f"ALTER TABLE events UPDATE payload = '{loose}' WHERE key LIKE '%t-loose' SETTINGS mutations_sync = 1"
    )
    received = mail("received", "2026-04-14T09:00:00+02:00", "t-loose", "m1")
    replied = mail("replied", "2026-04-14T11:00:00+02:00", "t-loose", "r1")
    result = Deriver(warehouse, agreements).apply([received, replied])
    assert (result.failed, result.cases) == ([], 1)
    # Without the undecodable 08:30 message: received 09:00, replied 11:00 -> 2 h, one message.
    assert warehouse.query("SELECT lead_seconds, messages FROM mail_cases FINAL WHERE thread_id = 't-loose'") == [
        (7200.0, 1)
    ]


def old_payload(warehouse: Warehouse) -> str:
    [(payload,)] = warehouse.query("SELECT payload FROM events WHERE key LIKE '%t-loose'")
    return str(payload)
