"""The Deriver's failure paths and defaults (docs/testing.md, "Mutation testing").

Each test kills mutants of stream_jobs/core/deriver.py that tests/unit let survive (the
warehouse hardening tests reach some of these paths, but mutmut runs tests/unit only). A call
queued in a queue the agreements do not have, or mail of a mailbox they do not have, makes the
derivation raise (KeyError): such an entity's events go to `failed` with a reason and are not
stored, and the rest of the batch is (the module doc of stream_jobs/core/deriver.py).
"""

from __future__ import annotations

from datetime import datetime

from stream_jobs.core.deriver import Deriver, _not_derived
from stream_jobs.core.ordering import digest
from stream_jobs.core.store import MemoryStore
from tests.conftest import call, ev

K, X = {"queue": "kundreskontra"}, {"queue": "nowhere"}
T0, T1 = "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:45+02:00"


def mail(type_, t, thread, msg, mailbox="kundreskontra"):
    return ev(f"mail.{type_}", t, source=f"imap/{mailbox}", mailbox=mailbox, thread_id=thread, message_id=msg)


def test_changes_are_not_tracked_unless_asked(agreements):
    # __init__ mutant 1 (track_changes=True by default)
    result = Deriver(MemoryStore(), agreements).apply(call("c1", ("queued", T0, K)))
    assert (result.calls, result.call_changes, result.case_changes) == (1, [], [])


def test_an_event_out_of_range_fails_alone(agreements):
    # apply mutant 10 (`continue` -> `break` after an out-of-range time): the events after it
    # in the batch are still derived and stored.
    old = ev("call.queued", "1989-12-31T10:00:00+01:00", call_id="c0", **K)
    store = MemoryStore()
    result = Deriver(store, agreements).apply(
        [old, *call("c1", ("queued", T0, K), ("answered", T1, K | {"agent": "a"}))]
    )
    assert [(e.id, reason.startswith("time 1989-12-31")) for e, reason in result.failed] == [(old.id, True)]
    assert (result.events, result.calls) == (2, 1)
    assert store.calls["c1"].contact.outcome == "answered"


def test_events_stored_out_of_range_by_an_earlier_version_are_left_out(agreements):
    # apply mutants 30 and 44 (`and` -> `or` in the reload filter): a 1989 event already in the
    # store is not folded into its call or thread again.
    store = MemoryStore()
    store.insert_events(
        [
            ev("call.queued", "1989-12-31T10:00:00+01:00", call_id="c1", **K),
            mail("received", "1989-12-31T10:00:00+01:00", "u1", "m0"),
        ]
    )
    deriver = Deriver(store, agreements)
    result = deriver.apply([*call("c1", ("queued", T0, K)), mail("received", T0, "u1", "m1")])
    assert result.failed == []
    assert store.calls["c1"].contact.queued_at == datetime.fromisoformat(T0)
    assert store.calls["c1"].events == 1
    (case,) = store.cases.values()
    assert (case.opened_at, case.messages) == (datetime.fromisoformat(T0), 1)


def test_a_call_that_fails_is_forgotten_and_the_next_call_of_the_batch_derived(agreements):
    # apply mutants 62 (the failed call stays in memory) and 66 (`continue` -> `break`).
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    first = deriver.apply([*call("c1", ("queued", T0, X)), *call("c2", ("queued", T0, K))])
    assert [reason for _, reason in first.failed] == ["could not be derived (KeyError: 'nowhere')"]
    assert (first.calls, sorted(store.calls)) == (1, ["c2"])
    # The queue was a mistake; the call's later events derive without the failed one.
    again = deriver.apply(call("c1", ("queued", T1, K)))
    assert again.failed == []
    assert store.calls["c1"].contact.queued_at == datetime.fromisoformat(T1)
    assert store.calls["c1"].contact.transferred_from == ()


def test_every_failure_of_a_batch_is_returned(agreements):
    # apply mutants 63 and 80 (`failed =` for `+=`), 81 (`-=`) and 82 (the reason without the
    # exception): an out-of-range event, a failing call and a failing thread, all three returned.
    old = ev("call.queued", "1989-12-31T10:00:00+01:00", call_id="c0", **K)
    bad_call = call("c1", ("queued", T0, X))
    bad_mail = mail("received", T0, "u1", "m1", mailbox="nowhere")
    result = Deriver(MemoryStore(), agreements).apply([old, *bad_call, bad_mail])
    reasons = {e.id: reason for e, reason in result.failed}
    assert set(reasons) == {old.id, bad_call[0].id, bad_mail.id}
    assert reasons[bad_call[0].id] == "could not be derived (KeyError: 'nowhere')"
    assert reasons[bad_mail.id] == "could not be derived (KeyError: 'nowhere')"
    assert result.events == 0


def test_a_thread_that_fails_is_forgotten_and_the_next_thread_of_the_batch_derived(agreements):
    # apply mutants 79 (the failed thread stays in memory) and 83 (`continue` -> `break`).
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    result = deriver.apply([mail("received", T0, "u1", "m1", mailbox="nowhere"), mail("received", T0, "u2", "m2")])
    assert (len(result.failed), result.cases) == (1, 1)
    assert [(c.mailbox, c.thread_id) for c in store.cases.values()] == [("kundreskontra", "u2")]
    assert "nowhere/u1" not in deriver.threads.events  # forgotten: reloaded from the store if touched again


def test_a_thread_id_with_a_slash(agreements):
    # _derive_thread mutant 6 (`rpartition`): the key is `mailbox/thread_id`, split at the first "/".
    store = MemoryStore()
    result = Deriver(store, agreements).apply([mail("received", T0, "a/b", "m1")])
    assert result.failed == []
    assert [(c.mailbox, c.thread_id) for c in store.cases.values()] == [("kundreskontra", "a/b")]


def test_the_reason_names_the_exception_and_the_first_200_characters_of_its_first_line():
    # _not_derived mutants 6 ([:201]) and 7 (no message: the type of None).
    assert _not_derived(ValueError("x" * 300 + "\nmore")) == f"could not be derived (ValueError: {'x' * 200})"
    assert _not_derived(ValueError()) == "could not be derived (ValueError)"


def test_a_conflict_between_a_stored_event_and_the_batch_is_reported(agreements):
    # apply: the conflicts met while loading what the store holds (a new process, nothing in
    # memory) are reported and recorded like those within a batch. The stored answer (10:00:45) and
    # the redelivered one (10:00:50) share source and id; "…10:00:45…" sorts first and is kept.
    queued = ev("call.queued", T0, id="q", call_id="c1", **K)
    stored = ev("call.answered", T1, id="dup", call_id="c1", **K, agent="a1")
    other = ev("call.answered", "2026-04-14T10:00:50+02:00", id="dup", call_id="c1", **K, agent="a1")
    store = MemoryStore()
    Deriver(store, agreements).apply([queued, stored])
    result = Deriver(store, agreements).apply([other])  # restarted: loads queued and stored first
    assert result.conflicts == [(stored, other)]
    assert store.conflicts == {("callguide", "dup", digest(other))}
    assert store.calls["c1"].contact.wait_seconds == 45  # 10:00:00 -> 10:00:45, the kept version
