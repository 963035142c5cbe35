"""The Deriver on the in-memory store: no ClickHouse, no Kafka (tests/warehouse/ runs the same on chDB).

Calendar `kontor` of tests/conftest.py: Tue 14 April 2026 is open 08:00-16:30 (+02:00);
kundreskontra's service level threshold is 60 s, its mailbox's response target 8 h.
"""

from __future__ import annotations

import pytest

import stream_jobs.core.deriver as deriver_module
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.ordering import digest
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
    assert (fact.contact.in_service_level, fact.contact.queue_open, fact.talk_seconds(fact.contact), fact.events) == (
        True, True, 300, 3
    )  # fmt: skip
    assert fact.contacts == (fact.contact,) and fact.contact.seq == 1
    assert (result.conflicts, store.conflicts) == ([], set())  # repeats of one event are no conflict
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
    assert shuffled.calls["c1"].talk_seconds(shuffled.calls["c1"].contact) == 300


def test_an_entity_the_store_already_holds_is_folded_with_its_stored_events(agreements):
    store = MemoryStore()
    queued, answered, ended = answered_call()
    received, replied = replied_thread()
    store.insert_events([queued, answered, received])  # what an earlier run stored

    result = Deriver(store, agreements).apply([ended, replied])  # a new process: nothing in memory
    assert (result.events, result.calls, result.cases) == (2, 1, 1)
    # The ended call folds the stored queued and answered: 3 events, wait 45 s, talk 300 s.
    fact = store.calls["c1"]
    assert (fact.events, fact.contact.wait_seconds, fact.talk_seconds(fact.contact)) == (3, 45, 300)
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


def conflict():
    """Two versions of one event (callguide/dup): answered 10:00:40 and 10:00:50, after a call.queued
    at 10:00:00. Their canonical JSON differs only in the time, and "...10:00:40..." sorts first, so
    the 10:00:40 one is kept (stream_jobs/core/ordering.preferred): a wait of 40 s, not 50 s."""
    queued = ev("call.queued", "2026-04-14T10:00:00+02:00", id="q", call_id="c1", **K)
    kept = ev("call.answered", "2026-04-14T10:00:40+02:00", id="dup", call_id="c1", **K, agent="a1")
    other = ev("call.answered", "2026-04-14T10:00:50+02:00", id="dup", call_id="c1", **K, agent="a1")
    return queued, kept, other


@pytest.mark.parametrize("other_first", [False, True], ids=["kept-first", "other-first"])
def test_a_conflicting_duplicate_is_reported_and_recorded_once(agreements, other_first):
    """spec/events.md: two events with the same source and id but other content break the contract;
    the product keeps one of them and counts the conflict."""
    # guards: Deriver._Entities.add keeping the version that arrived last (the wait would depend on
    # the order), not reporting the conflict (BatchResult.conflicts, Store.record_conflicts), or
    # reporting the kept version as the other one
    queued, kept, other = conflict()
    first, second = (other, kept) if other_first else (kept, other)
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    assert deriver.apply([queued, first]).conflicts == []
    result = deriver.apply([second])
    assert result.conflicts == [(kept, other)]
    assert store.conflicts == {("callguide", "dup", digest(other))}
    assert (store.calls["c1"].contact.wait_seconds, store.calls["c1"].events) == (40, 2)
    # Met again (a redelivery of both): the other version against the kept one held, once in the
    # batch's result; the store still records it once.
    assert deriver.apply([other, kept]).conflicts == [(kept, other)]
    assert store.conflicts == {("callguide", "dup", digest(other))}
    assert store.calls["c1"].contact.wait_seconds == 40


def test_the_kept_version_of_a_conflict_survives_a_restart(agreements):
    """The Deriver's module doc: the result does not depend on order, duplicates or restarts. The
    kept version (10:00:40) must be what the store holds, whichever version arrived last."""
    # guards: Deriver.apply storing the version not kept, which replaced the kept one in the store
    # (same source, id and day): after a restart the call folded the 10:00:50 answer, wait 50 s
    queued, kept, other = conflict()
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    deriver.apply([queued, kept])
    deriver.apply([other])  # the version not kept arrives last
    assert store.calls["c1"].contact.wait_seconds == 40
    Deriver(store, agreements).apply([ev("call.ended", "2026-04-14T10:05:00+02:00", id="e", call_id="c1")])
    assert store.calls["c1"].contact.wait_seconds == 40  # 10:00:00 -> 10:00:40, after the restart too
    assert store.calls["c1"].talk_seconds(store.calls["c1"].contact) == 260  # 10:05:00 - 10:00:40


def test_contacts_are_stored_per_call_with_their_sequence(agreements):
    """A call re-queued after a callback holds two ordinary contacts (spec/metrics.md, "Phone
    queues"); the store keeps them together, seq 1 and 2, as the warehouse's rows (call_id, seq)."""
    # guards: the Deriver deriving from the batch's events only (a re-queue arriving in a later batch
    # would replace the first contact instead of adding the second)
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    deriver.apply(
        call("c1", ("queued", "2026-04-14T10:00:00+02:00", K), ("callback_requested", "2026-04-14T10:01:00+02:00", K))
    )
    deriver.apply(call("c1", ("queued", "2026-04-14T10:05:00+02:00", {"queue": "avgifter"})))
    first, second = store.calls["c1"].contacts
    assert (first.seq, first.queue, first.outcome, first.wait_seconds) == (1, "kundreskontra", "callback", 60)
    assert (second.seq, second.queue, second.outcome, second.internal) == (2, "avgifter", "waiting", False)
    assert store.waiting_calls(first.queued_at, second.queued_at) == [("c1", "avgifter", second.queued_at)]


@pytest.mark.parametrize("kind", ["call", "mail"])
def test_stored_events_leave_out_keys_the_store_does_not_hold(kind):
    # The Deriver asks for every key new to memory; a store answers only for keys it holds.
    assert MemoryStore().stored_events(kind, ["nope"]) == {}
