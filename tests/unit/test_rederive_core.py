"""Deriver.refold on the in-memory store: the stored events folded again with other agreements.

Calendar `kontor` of tests/conftest.py: Tue 14 April 2026 is open 08:00-16:30 (+02:00). Agreements
A are the conftest's (kundreskontra: service level within 60 s, mail answered within 8 h); B
tightens both (30 s, 1 h).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest

from schemas.agreements import Agreements, parse_agreements
from schemas.events import Event
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.ordering import digest
from stream_jobs.core.store import MemoryStore
from tests.conftest import AGREEMENTS, agreements_with, call, ev

K = {"queue": "kundreskontra"}
T = "2026-04-14T10:{}+02:00"
THREAD = "kundreskontra/t1"


def mail(type_: str, t: str, msg: str) -> Event:
    return ev(f"mail.{type_}", t, source="imap/kundreskontra", mailbox="kundreskontra", thread_id="t1", message_id=msg)


def traffic() -> list[Event]:
    """c1 answered after 45 s; c2 abandoned after 20 s; thread t1 replied 2 business hours after
    it was received (09:00 -> 11:00)."""
    return [
        *call("c1", ("queued", T.format("00:00"), K), ("answered", T.format("00:45"), K | {"agent": "a1"})),
        *call("c2", ("queued", T.format("02:00"), K), ("abandoned", T.format("02:20"), K)),
        mail("received", "2026-04-14T09:00:00+02:00", "m1"),
        mail("replied", "2026-04-14T11:00:00+02:00", "r1"),
    ]


@pytest.fixture
def tighter() -> Agreements:
    return agreements_with(
        queues__kundreskontra__service_level_seconds=30, mailboxes__kundreskontra__response_target="1h"
    )


class CountingStore(MemoryStore):
    """Counts the events it is asked to store."""

    def __init__(self) -> None:
        super().__init__()
        self.inserted = 0

    def insert_events(self, events: Sequence[Event]) -> None:
        self.inserted += len(events)
        super().insert_events(events)


def facts(store: MemoryStore) -> tuple[Any, ...]:
    return store.contacts, store.cases, store.calls, store.derived_with, store.conflicts


def test_a_refold_gives_the_facts_a_fresh_derivation_with_the_new_agreements_gives(agreements, tighter):
    events, store = traffic(), MemoryStore()
    Deriver(store, agreements).apply(events)
    assert store.contacts[("c1", 1)].in_service_level  # 45 s <= 60 s
    assert store.cases[("kundreskontra", "t1", 1)].within_target  # 2 h <= 8 h

    deriver = Deriver(store, tighter)
    result = deriver.refold(["c1", "c2"], [THREAD])
    fresh = MemoryStore()
    Deriver(fresh, tighter).apply(events)

    assert facts(store) == facts(fresh)
    assert not store.contacts[("c1", 1)].in_service_level  # 45 s > 30 s
    assert not store.cases[("kundreskontra", "t1", 1)].within_target  # 2 h > 1 h
    assert set(store.derived_with.values()) == {deriver.fingerprint}
    assert store.agreements[deriver.fingerprint] == deriver.inputs  # recorded with the facts
    assert (result.calls, result.cases, result.failed, result.conflicts) == (2, 1, [], [])
    assert (result.call_changes, result.case_changes) == ([], [])


def test_a_second_refold_changes_nothing_and_no_event_is_stored_again(agreements, tighter):
    store = CountingStore()
    Deriver(store, agreements).apply(traffic())
    events = copy.deepcopy(store.events)
    store.inserted = 0

    deriver = Deriver(store, tighter)
    deriver.refold(["c1", "c2"], [THREAD])
    once = copy.deepcopy(facts(store))
    deriver.refold(["c1", "c2"], [THREAD])
    Deriver(store, tighter).refold(["c1", "c2"], [THREAD])  # another process, the same

    assert facts(store) == once
    assert (store.inserted, store.events) == (0, events)


def test_a_call_whose_stored_events_now_fold_to_fewer_contacts_loses_the_others(agreements):
    # Re-queued after a callback: two contacts. Then the store gives only the first two events
    # (the warehouse leaves out an event an earlier version stored that no longer decodes).
    store = MemoryStore()
    Deriver(store, agreements).apply(
        call(
            "c1",
            ("queued", T.format("00:00"), K),
            ("callback_requested", T.format("01:00"), K),
            ("queued", T.format("05:00"), K),
            ("answered", T.format("05:30"), K | {"agent": "a1"}),
        )
    )
    assert sorted(store.contacts) == [("c1", 1), ("c1", 2)]
    held = store.events[("call", "c1")]
    for dedup in list(held)[2:]:
        del held[dedup]

    result = Deriver(store, agreements).refold(["c1"], [])
    assert sorted(store.contacts) == [("c1", 1)]
    assert (store.contacts[("c1", 1)].outcome, result.calls) == ("callback", 1)


def test_memory_forgets_the_refolded_keys_and_reloads_them_when_touched(agreements, tighter):
    # A running worker's Deriver holds c1; after the refold it holds neither c1 nor t1, and a
    # later event of c1 is folded with every stored one.
    events, store = traffic(), MemoryStore()
    deriver = Deriver(store, tighter)
    deriver.apply(events[:2] + events[4:])
    assert "c1" in deriver.calls.events and THREAD in deriver.threads.events

    deriver.refold(["c1"], [THREAD])
    assert "c1" not in deriver.calls.events and "c1" not in deriver.calls.written
    assert THREAD not in deriver.threads.events

    deriver.apply(call("c1", ("ended", T.format("05:45"), {})))
    fact = store.calls["c1"]
    # Answered 10:00:45, ended 10:05:45: 300 s of talk, from the stored answer.
    assert (fact.events, fact.talk_seconds(fact.contacts[0])) == (3, 300)


def test_keys_the_store_holds_nothing_of_are_passed_over(agreements):
    store = MemoryStore()
    result = Deriver(store, agreements).refold(["nope"], ["kundreskontra/nope"])
    assert (result.calls, result.cases, result.failed) == (0, 0, [])
    assert (store.calls, store.cases, store.derived_with) == ({}, {}, {})


def test_an_entity_the_new_agreements_cannot_derive_keeps_its_facts(agreements):
    # Queue avgifter is gone from the new agreements: c9 cannot be derived (its events fail with
    # the reason) and keeps the fact derived with the old ones; c1 is derived with the new ones.
    raw = copy.deepcopy(AGREEMENTS)
    del raw["queues"]["avgifter"]
    without = parse_agreements(raw)
    store = MemoryStore()
    old = Deriver(store, agreements)
    c9 = call("c9", ("queued", T.format("00:00"), {"queue": "avgifter"}))
    old.apply([*c9, *traffic()[:2]])

    new = Deriver(store, without)
    result = new.refold(["c9", "c1"], [])
    assert [(e.id, reason) for e, reason in result.failed] == [
        (c9[0].id, "could not be derived (KeyError: 'avgifter')")
    ]
    assert (store.derived_with["c9"], store.derived_with["c1"]) == (old.fingerprint, new.fingerprint)
    assert result.calls == 1 and "c9" not in new.calls.events


def test_conflicts_among_the_stored_events_are_recorded_once(agreements):
    # Two versions of one answer, stored on two UTC days by a version that did not yet record
    # conflicts: the refold meets them, records the other version once, and keeps the preferred.
    queued = ev("call.queued", "2026-04-14T23:30:00+02:00", id="q", call_id="c1", **K)
    kept = ev("call.answered", "2026-04-14T23:30:40+02:00", id="dup", call_id="c1", **K, agent="a1")
    other = ev("call.answered", "2026-04-15T02:30:00+02:00", id="dup", call_id="c1", **K, agent="a1")
    store = MemoryStore()
    store.insert_events([queued, kept, other])

    first = Deriver(store, agreements).refold(["c1"], [])
    again = Deriver(store, agreements).refold(["c1"], [])
    assert first.conflicts == again.conflicts == [(kept, other)]
    assert store.conflicts == {("callguide", "dup", digest(other))}
    assert store.contacts[("c1", 1)].wait_seconds == 40  # 23:30:00 -> 23:30:40, the kept version
