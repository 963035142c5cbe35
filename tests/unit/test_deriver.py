"""The Deriver on the in-memory store: no ClickHouse, no Kafka (tests/warehouse/ runs the same on chDB).

Calendar `kontor` of tests/conftest.py: Tue 14 April 2026 is open 08:00-16:30 (+02:00);
kundreskontra's service level threshold is 60 s, its mailbox's response target 8 h.
"""

from __future__ import annotations

import pytest

import stream_jobs.core.deriver as deriver_module
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.store import MemoryStore
from tests.conftest import call, ev

K = {"queue": "kundreskontra"}


def mail(type_, t, thread, msg):
    return ev(
        f"mail.{type_}", t, source="imap/kundreskontra", mailbox="kundreskontra", thread_id=thread, message_id=msg
    )


def answered_call(call_id="c1"):
    """Queued 10:00:00, answered 10:00:45, ended 10:05:45 (Tuesday, open)."""
    return call(
        call_id,
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("answered", "2026-04-14T10:00:45+02:00", K | {"agent": "a1"}),
        ("ended", "2026-04-14T10:05:45+02:00", {}),
    )


def replied_thread(thread="t1"):
    """Received 09:00, replied 11:00 (Tuesday, open all the time)."""
    return [
        mail("received", "2026-04-14T09:00:00+02:00", thread, f"m-{thread}"),
        mail("replied", "2026-04-14T11:00:00+02:00", thread, f"r-{thread}"),
    ]


def test_a_call_and_a_mail_thread_give_their_facts(agreements):
    store = MemoryStore()
    result = Deriver(store, agreements).apply(answered_call() + replied_thread())

    # Five events stored, one call fact, one case.
    assert (result.events, result.calls, result.cases, result.failed) == (5, 1, 1, [])
    assert sum(len(held) for held in store.events.values()) == 5
    fact = store.calls["c1"]
    # Waited 10:00:00 -> 10:00:45 = 45 s <= 60 s: in service level; talked 10:00:45 -> 10:05:45 = 300 s.
    assert fact.contact is not None
    assert (fact.contact.outcome, fact.contact.wait_seconds, fact.contact.agent) == ("answered", 45, "a1")
    assert (fact.in_service_level, fact.queue_open, fact.talk_seconds, fact.events) == (True, True, 300, 3)
    [case] = store.cases.values()
    # Opened 09:00 and replied 11:00 within opening hours: 2 business hours, inside the 8 h target.
    assert (case.thread_id, case.seq, case.end, case.lead_seconds, case.messages) == ("t1", 1, "replied", 7200, 1)
    assert case.within_target


def test_a_redelivered_batch_counts_nothing_twice(agreements):
    store = MemoryStore()
    batch = answered_call() + replied_thread()
    deriver = Deriver(store, agreements, track_changes=True)
    first = deriver.apply(batch)
    [(before, after)] = first.call_changes
    assert before is None and after.contact is not None  # new: a transition the live state counts

    again = deriver.apply(batch)  # Kafka delivers the same batch again (same sources and ids)
    # The fold de-duplicates by (source, id): still 3 events, and the fact before equals after,
    # so the live state sees no transition.
    [(before, after)] = again.call_changes
    assert before == after and after.events == 3
    [(cases_before, cases_after)] = again.case_changes
    assert cases_before == cases_after
    # The store keeps one row per event (as the warehouse's ReplacingMergeTree): 5, not 10.
    assert sum(len(held) for held in store.events.values()) == 5

    # A restarted worker (nothing in memory) gets it once more: it reloads the stored events
    # first, so its "before" is already the full fact.
    restarted = Deriver(store, agreements, track_changes=True).apply(batch)
    [(before, after)] = restarted.call_changes
    assert before == after == store.calls["c1"]


def test_events_out_of_order_and_split_over_batches_give_the_same_facts(agreements):
    in_order = MemoryStore()
    Deriver(in_order, agreements).apply(answered_call() + replied_thread())

    shuffled = MemoryStore()
    deriver = Deriver(shuffled, agreements)
    queued, answered, ended = answered_call()
    received, replied = replied_thread()
    # The end first, then the reply before the message it answers, the queueing last.
    for batch in ([ended], [replied, answered], [received], [queued]):
        assert deriver.apply(batch).failed == []
    # The fold sorts by time, so the result is the one of the ordered run (45 s wait, 300 s talk,
    # a 2 h reply).
    assert shuffled.calls == in_order.calls
    assert shuffled.cases == in_order.cases
    assert shuffled.calls["c1"].talk_seconds == 300


def test_an_entity_the_store_already_holds_is_folded_with_its_stored_events(agreements):
    store = MemoryStore()
    queued, answered, ended = answered_call()
    received, replied = replied_thread()
    store.insert_events([queued, answered, received])  # what an earlier run stored

    result = Deriver(store, agreements).apply([ended, replied])  # a new process: nothing in memory
    assert (result.events, result.calls, result.cases) == (2, 1, 1)
    # The ended call folds the stored queued and answered: 3 events, wait 45 s, talk 300 s.
    fact = store.calls["c1"]
    assert (fact.events, fact.contact.wait_seconds, fact.talk_seconds) == (3, 45, 300)
    # The reply ends the stored message's case: 09:00 -> 11:00 is 2 business hours.
    [case] = store.cases.values()
    assert (case.end, case.lead_seconds, case.messages) == ("replied", 7200, 1)


def test_a_call_evicted_from_memory_is_reloaded_from_the_store(agreements):
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    queued, answered, ended = answered_call("late")
    deriver.apply([queued, answered])
    # Four days later another call moves the watermark past the 6 h grace: "late" leaves memory.
    deriver.apply(call("other", ("queued", "2026-04-18T10:00:00+02:00", K)))
    assert "late" not in deriver.calls.events
    deriver.apply([ended])
    # Reloaded: all three events folded, the answer after 45 s kept.
    assert (store.calls["late"].events, store.calls["late"].contact.outcome) == (3, "answered")


def test_an_event_outside_the_time_range_is_failed_and_not_stored(agreements):
    store = MemoryStore()
    queued = call("c1", ("queued", "2026-04-14T10:00:00+02:00", K))
    bad_end = call("c1", ("ended", "2150-01-01T00:00:00Z", {}))
    result = Deriver(store, agreements).apply(queued + bad_end)
    [(event, reason)] = result.failed
    # Only the 2150 event fails (its year is outside 2000..2100); the call is folded without it.
    assert event is bad_end[0] and reason.startswith("time 2150") and "2100-01-01" in reason
    assert result.events == 1 and store.calls["c1"].contact.outcome == "waiting"
    assert sum(len(held) for held in store.events.values()) == 1


def test_an_entity_whose_derivation_raises_is_failed_and_the_rest_stored(agreements, monkeypatch):
    real = deriver_module.derive_call

    def derive_call(call_id, events, agreements):
        if call_id == "poison":
            raise ValueError("cannot fold this call")
        return real(call_id, events, agreements)

    monkeypatch.setattr(deriver_module, "derive_call", derive_call)
    store = MemoryStore()
    bad = call("poison", ("queued", "2026-04-14T10:01:00+02:00", K))
    result = Deriver(store, agreements).apply(answered_call() + bad)
    # The poisoned call's one event fails with the exception's first line; the good call's 3 are stored.
    assert [(e.id, r) for e, r in result.failed] == [
        (bad[0].id, "could not be derived (ValueError: cannot fold this call)")
    ]
    assert (result.events, result.calls) == (3, 1)
    assert set(store.calls) == {"c1"} and ("call", "poison") not in store.events


@pytest.mark.parametrize("kind", ["call", "mail"])
def test_stored_events_leave_out_keys_the_store_does_not_hold(kind):
    # The Deriver asks for every key new to memory; a store answers only for keys it holds.
    assert MemoryStore().stored_events(kind, ["nope"]) == {}
