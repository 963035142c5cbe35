"""Property tests: the facts depend on the events only, and generated calls follow the contact rules.

- Any order and any repetition of a scenario's events give the same facts (the simulator's days,
  the spec's worked example, and generated calls with `call.exited` and many same-instant events).
- Splitting the events into batches through the Deriver, with restarts between them, gives the
  same facts; a conflicting duplicate (same source and id, other content) gives the same facts
  whichever version arrives first, and is recorded once.
- Generated call lifecycles (transfer chains, answer + re-queue, callback or flow-out + re-queue,
  many events in one second) give the contacts worked out while generating them, whatever the
  events' ids (spec/metrics.md, "Events at the same instant": "never by their ids").
- Adding events to a call never lowers its number of contacts (what the warehouse's call_contacts
  table relies on: schemas/ddl/006_contract_v2.sql).

Generated times are local summer time (+02:00) on Wednesday 1 April 2026, when the default
agreements' queues are open.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import CALL_CLASSES, MAIL_CLASSES, CallEvent, Event, decode, encode, event_key
from stream_jobs.core.calls import ABANDONED, ANSWERED, CALLBACK, FLOWED_OUT, WAITING, CallFact, derive_call
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.mail import derive_thread
from stream_jobs.core.ordering import digest, preferred
from stream_jobs.core.store import MemoryStore
from tests.conftest import shared_examples

AGREEMENTS = load_agreements()
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def canonical(events: list[Event]) -> list[Event]:
    boundary = Boundary(AGREEMENTS, Pseudonymiser(b"test", AGREEMENTS))
    out = []
    for ev in events:
        accepted = boundary.accept(encode(ev))
        assert not isinstance(accepted, Rejection), accepted
        out.append(accepted)
    return out


# A simulated Monday (with transfers, callbacks, flow-outs, internal transfers, follow-up mail) and
# a month-start Friday, small enough for many examples.
SCENARIO = canonical(
    list(simulate(AGREEMENTS, date(2026, 3, 2), 1, seed=3, scale=0.25))
    + list(simulate(AGREEMENTS, date(2026, 5, 29), 1, seed=4, scale=0.25))
)


def facts(events: Sequence[Event]) -> tuple[dict[str, CallFact], dict[str, object]]:
    calls: dict[str, list[Event]] = defaultdict(list)
    threads: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        if type(ev) in CALL_CLASSES:
            calls[event_key(ev)].append(ev)
        elif type(ev) in MAIL_CLASSES:
            threads[event_key(ev)].append(ev)
    call_facts = {k: derive_call(k, evs, AGREEMENTS) for k, evs in calls.items()}  # type: ignore[arg-type]
    cases = {
        k: derive_thread(k.partition("/")[2], evs, AGREEMENTS.mailboxes[k.partition("/")[0]])  # type: ignore[arg-type]
        for k, evs in threads.items()
    }
    return call_facts, cases


EXPECTED = facts(SCENARIO)


def test_the_scenario_exercises_the_rules() -> None:
    # guards: a simulator change that no longer makes some kind of contact would let the order
    # property below pass without testing that rule
    call_facts, cases = EXPECTED
    contacts = [c for f in call_facts.values() for c in f.contacts]
    assert {ANSWERED, ABANDONED, CALLBACK, FLOWED_OUT} <= {c.outcome for c in contacts}
    assert any(c.transferred_from for c in contacts)
    assert any(not c.queue_open for c in contacts)
    assert any(c.internal for c in contacts)  # queued again after an answer
    assert any(len(f.ordinary) > 1 for f in call_facts.values())  # re-queued after a callback or flow-out
    assert any(f.offered_at is not None and not f.contacts for f in call_facts.values())  # hung up in the menu
    instants = defaultdict(int)
    for ev in SCENARIO:
        if type(ev) in CALL_CLASSES and type(ev).__name__ != "CallOffered":
            instants[(event_key(ev), ev.time)] += 1
    assert max(instants.values()) >= 3  # several events of one call at one instant (answer + re-queue)
    assert any(len(c) > 1 for c in cases.values())  # a thread with a second case


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.lists(st.integers(min_value=0), max_size=300))
def test_any_order_and_duplicates_give_the_same_facts(rng: random.Random, duplicates: list[int]) -> None:
    events = SCENARIO + [SCENARIO[i % len(SCENARIO)] for i in duplicates]
    rng.shuffle(events)
    assert facts(events) == EXPECTED


@pytest.fixture(scope="module")
def example_events() -> list[Event]:
    """The spec's worked example (events.jsonl), through the ingest boundary; however long it is."""
    lines = (shared_examples() / "events.jsonl").read_bytes().splitlines()
    return canonical([decode(line) for line in lines if line.strip()])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.lists(st.integers(min_value=0), max_size=64))
def test_the_worked_example_in_any_order_with_repeats(
    example_events: list[Event], rng: random.Random, repeats: list[int]
) -> None:
    # Any order (a shuffle of the whole file) with any repeats (indices taken modulo the
    # number of events), so the property holds whatever the file's length.
    events = example_events
    shuffled = events + [events[i % len(events)] for i in repeats]
    rng.shuffle(shuffled)
    assert facts(shuffled) == facts(events)


def test_round_trip_through_json_keeps_every_event() -> None:
    for ev in SCENARIO:
        assert decode(encode(ev)) == ev


def test_the_stream_path_gives_the_replay_path_events() -> None:
    # Replay: file -> accept -> warehouse. Stream: webhook -> accept -> topic -> accept_published
    # -> warehouse. The second boundary (same key) must neither reject nor hash again, so both
    # paths store equal events and derive equal facts.
    worker = Boundary(AGREEMENTS, Pseudonymiser(b"test", AGREEMENTS))
    streamed = []
    for ev in SCENARIO:
        published = worker.accept_published(encode(ev))
        assert published == ev, published
        streamed.append(published)
    assert facts(streamed) == EXPECTED


# -- generated calls ------------------------------------------------------------------------------

K, A, D = "kundreskontra", "avgifter", "redovisning"  # T = 60 s, 60 s, 120 s in the default agreements
QUEUES = (K, A, D)
BASE = datetime.fromisoformat("2026-04-01T10:00:00+02:00")
KINDS = ("offered", "queued", "transferred", "answered", "callback_requested", "abandoned", "exited", "ended")
REASONS = ("timeout", "exit_key", "queue_full", "no_agents")
# (kind, second after BASE, queue, to_queue, agent, exit reason): the fields a kind has no use for
# are ignored.
Step = tuple[str, int, str, str, str, str]


def call_event(call_id: str, id: str, step: Step, source: str = "callguide") -> CallEvent:
    """One canonical call event, through the real decoder (so it is valid by the contract)."""
    kind, second, queue, to_queue, agent, reason = step
    data: dict[str, Any] = {"call_id": call_id}
    if kind == "offered":
        data["entrance"] = "0101234500"
    elif kind != "ended":
        data["queue"] = queue
    if kind == "transferred":
        data["to_queue"] = to_queue
    elif kind == "answered":
        data["agent"] = agent
    elif kind == "exited":
        data["reason"] = reason
    raw = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": f"call.{kind}",
        "time": (BASE + timedelta(seconds=second)).isoformat(),
        "data": data,
    }
    ev = decode(msgspec.json.encode(raw))
    assert type(ev) in CALL_CLASSES
    return ev  # type: ignore[return-value]


# Any event of any kind in one of four instants 30 s apart: several events of a call at one
# instant are the rule here, and so are contradictions (an answer in a queue the call never
# entered, a transfer to the queue it leaves, two ends) that the fold must take all the same.
STEP = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from((0, 30, 60, 90)),
    st.sampled_from(QUEUES),
    st.sampled_from(QUEUES),
    st.sampled_from(("ag1", "ag2")),
    st.sampled_from(REASONS),
)


def events_of(call_id: str, steps: Sequence[Step], prefix: str = "r") -> list[CallEvent]:
    return [call_event(call_id, f"{call_id}-{prefix}{i}", step) for i, step in enumerate(steps)]


@dataclass
class Expected:
    """One contact as the rules make it, worked out while its events are generated."""

    queue: str
    queued_at: int  # seconds after BASE
    internal: bool
    transferred_from: list[str] = field(default_factory=list)
    outcome: str = WAITING
    left_at: int | None = None
    agent: str | None = None
    entered: list[str] = field(default_factory=list)  # the queues transferred to, in order


@dataclass
class Lifecycle:
    steps: list[Step]
    contacts: list[Expected]
    ended_at: int | None


GAP = st.sampled_from((0, 0, 0, 7, 45))  # seconds to the next event: the same instant most often
LATER = st.sampled_from((7, 45))
OUTCOME = {"abandoned": ABANDONED, "callback_requested": CALLBACK, "exited": FLOWED_OUT}


@st.composite
def lifecycles(draw: st.DrawFn) -> Lifecycle:
    """A call as a switch reports it: offered, then one to three stays in the queues, each queued,
    transferred 0-2 times (a switch may also send call.queued for the queue entered), then
    answered, abandoned, called back, flowed out, or (the last) still waiting or ended while
    waiting; then perhaps call.ended. Any of these may share the instant of the event before.

    Left out are the same-instant sets where the spec's lifecycle does not say which stay an event
    belongs to, so no single answer is right. The next transfer or end of the wait comes at a later
    second (the final call.ended may still share it) after: a re-queue at the instant of the
    previous stay's end, if it transfers, or is into a queue that stay was in, or that stay also
    started at that instant (two stays queued and ended in one second: either could be first); and
    a call.queued echoing a transfer (an end of the wait in that queue at that instant would make it
    a re-queue, docs/decisions.md); and a re-queue into a queue a transfer entered at the same
    instant, which reads as the switch echoing that transfer. A re-queue comes at a later second than a stay that began in
    that instant and came back to its first queue (K->R->K): the re-queue could be read as the
    call's first queue and the call.queued of K as a transfer to it.
    """
    steps: list[Step] = []
    contacts: list[Expected] = []
    t = 0
    if draw(st.booleans()):
        steps.append(("offered", t, "", "", "", ""))
        t += draw(GAP)
    answered = False
    ended_at: int | None = None
    previous_start = 0  # the index of the previous stay's call.queued in `steps`
    stays = draw(st.integers(1, 3))
    for i in range(stays):
        last = i == stays - 1
        previous = contacts[-1] if contacts else None
        q = draw(st.sampled_from(QUEUES))
        if previous is not None:
            # A stay that began in this instant and came back to its first queue: a re-queue in the
            # same instant could also be read as its start (see the docstring).
            round_trip = previous.queued_at == t and steps[previous_start][2] in previous.entered
            t += draw(LATER if round_trip else GAP)
            if any(step[0] == "transferred" and step[1] == t and step[3] == q for step in steps):
                t += 7  # a re-queue into a queue a transfer of this instant entered reads as its echo
        previous_start = len(steps)
        steps.append(("queued", t, q, "", "", ""))
        c = Expected(queue=q, queued_at=t, internal=answered)
        contacts.append(c)
        same_start = previous is not None and t == previous.left_at
        been = {previous.queue, *previous.transferred_from} if previous is not None else set()
        later = same_start  # the next transfer must come later (see the docstring)
        end_later = same_start and previous is not None and (q in been or previous.queued_at == t)
        for _ in range(draw(st.integers(0, 2))):
            t += draw(LATER if later else GAP)
            later = False
            to = draw(st.sampled_from([x for x in QUEUES if x != c.queue]))
            steps.append(("transferred", t, c.queue, to, "", ""))
            if c.queue not in c.transferred_from:
                c.transferred_from.append(c.queue)
            c.queue = to
            c.entered.append(to)
            end_later = False
            if draw(st.booleans()):  # the switch also reports entering `to` as call.queued
                steps.append(("queued", t, to, "", "", ""))
                later = True  # a round trip K->A->K with echoes in one second: either queue could be first
        end = draw(
            st.sampled_from(
                ("answered", "abandoned", "callback_requested", "exited", "waiting", "ended")[: 6 if last else 4]
            )
        )
        if end == "waiting":
            continue
        t += draw(LATER if end_later and end != "ended" else GAP)
        agent = f"ag{i}"
        steps.append((end, t, c.queue, "", agent, draw(st.sampled_from(REASONS))))
        c.left_at = t
        if end == "answered":
            c.outcome, c.agent, answered = ANSWERED, agent, True
        elif end == "ended":  # a call.ended while waiting: the caller hung up
            c.outcome, ended_at = ABANDONED, t
        else:
            c.outcome = OUTCOME[end]
    if ended_at is None and draw(st.booleans()):
        t += draw(GAP)
        steps.append(("ended", t, "", "", "", ""))
        ended_at = t
        if contacts[-1].outcome == WAITING:
            contacts[-1].outcome, contacts[-1].left_at = ABANDONED, t
    return Lifecycle(steps, contacts, ended_at)


def at(second: int | None) -> datetime | None:
    return None if second is None else BASE + timedelta(seconds=second)


@BOUNDED
@given(lifecycles(), st.randoms(use_true_random=False), st.data())
def test_generated_lifecycles_give_the_contacts_worked_out_whatever_the_ids(
    life: Lifecycle, rng: random.Random, data: st.DataObject
) -> None:
    # guards: calls._Fold.next_of ordering same-instant events by id, or against the lifecycle (a
    # transfer chain taken out of order, a re-queue before the answer or flow-out it follows, an
    # echoing call.queued read as a transfer); _Fold.apply's rules for re-queues and transfers
    ids = data.draw(st.permutations([f"e{i:02d}" for i in range(len(life.steps))]))
    events = [call_event("g1", id, step) for id, step in zip(ids, life.steps, strict=True)]
    events += data.draw(st.lists(st.sampled_from(events), max_size=4))  # repeats
    rng.shuffle(events)
    f = derive_call("g1", events, AGREEMENTS)
    got = [
        (c.seq, c.queue, c.queued_at, c.outcome, c.left_at, c.agent, c.transferred_from, c.internal) for c in f.contacts
    ]
    want = [
        (n, c.queue, at(c.queued_at), c.outcome, at(c.left_at), c.agent, tuple(c.transferred_from), c.internal)
        for n, c in enumerate(life.contacts, 1)
    ]
    assert got == want, life.steps
    assert f.ended_at == at(life.ended_at)


# Calls for the invariance properties: generated lifecycles and calls of arbitrary events.
CALLS = st.tuples(
    st.lists(lifecycles(), min_size=1, max_size=2),
    st.lists(st.lists(STEP, min_size=1, max_size=8), max_size=2),
)


def generated(calls: tuple[list[Lifecycle], list[list[Step]]]) -> list[CallEvent]:
    lives, arbitrary = calls
    events: list[CallEvent] = []
    for n, life in enumerate(lives):
        events += events_of(f"g{n}", life.steps, prefix="l")
    for n, steps in enumerate(arbitrary):
        events += events_of(f"x{n}", steps)
    return events


@BOUNDED
@given(CALLS, st.randoms(use_true_random=False), st.lists(st.integers(min_value=0), max_size=20))
def test_generated_calls_in_any_order_with_repeats_give_the_same_facts(
    calls: tuple[list[Lifecycle], list[list[Step]]], rng: random.Random, repeats: list[int]
) -> None:
    # guards: a fold whose result depends on the order it is given the events in (ordering.ordered
    # not sorting same-instant events fully, _Fold.next_of reading the arrival order) or on repeats
    events = generated(calls)
    expected = facts(events)
    shuffled = events + [events[i % len(events)] for i in repeats]
    rng.shuffle(shuffled)
    assert facts(shuffled) == expected


def through_deriver(batches: Sequence[Sequence[Event]], restarts: Sequence[bool] = ()) -> MemoryStore:
    """Apply the batches in turn; before batch i, a restart (a new process: nothing in memory) if
    restarts[i]."""
    store = MemoryStore()
    deriver = Deriver(store, AGREEMENTS)
    for i, batch in enumerate(batches):
        if i < len(restarts) and restarts[i]:
            deriver = Deriver(store, AGREEMENTS)
        assert deriver.apply(batch).failed == []
    return store


def split(events: list[Any], cuts: list[int]) -> list[list[Any]]:
    points = sorted({c % (len(events) + 1) for c in cuts})
    return [events[a:b] for a, b in zip([0, *points], [*points, len(events)], strict=True)]


@BOUNDED
@given(
    CALLS,
    st.randoms(use_true_random=False),
    st.lists(st.integers(min_value=0), max_size=6),
    st.lists(st.booleans(), max_size=7),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_batches_and_restarts_through_the_deriver_give_the_same_facts(
    calls: tuple[list[Lifecycle], list[list[Step]]],
    rng: random.Random,
    cuts: list[int],
    restarts: list[bool],
    repeats: list[int],
) -> None:
    # guards: the Deriver deriving a call from the batch's events only, or not reloading what the
    # store holds of a call after a restart (the fact would lose the earlier batches' events)
    events = generated(calls)
    expected, _ = facts(events)
    arrival = events + [events[i % len(events)] for i in repeats]
    rng.shuffle(arrival)
    store = through_deriver(split(arrival, cuts), restarts)
    assert store.calls == expected
    assert store.conflicts == set()


def conflicting(ev: CallEvent, shift: int, rng: random.Random) -> CallEvent:
    """Another version of `ev`: same source and id, other content (its time moved by `shift`
    seconds, or another queue)."""
    moved = msgspec.structs.replace(ev, time=ev.time + timedelta(seconds=shift))
    if shift == 0 and hasattr(ev.data, "queue"):
        other = rng.choice([q for q in QUEUES if q != ev.data.queue])
        moved = msgspec.structs.replace(ev, data=msgspec.structs.replace(ev.data, queue=other))
    return moved if moved != ev else msgspec.structs.replace(ev, time=ev.time + timedelta(seconds=1))


@BOUNDED
@given(
    CALLS,
    st.integers(min_value=0),
    st.sampled_from((0, -30, 30, 45)),
    st.randoms(use_true_random=False),
    st.lists(st.integers(min_value=0), max_size=6),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_a_conflicting_duplicate_gives_the_same_facts_whichever_version_arrives_first(
    calls: tuple[list[Lifecycle], list[list[Step]]],
    pick: int,
    shift: int,
    rng: random.Random,
    cuts: list[int],
    repeats: list[int],
) -> None:
    """spec/events.md: the product keeps one of two events with the same source and id but other
    content (docs/decisions.md: the one whose canonical JSON sorts first) and counts the conflict."""
    # guards: ordering.ordered or Deriver._Entities.add keeping the version that arrived first (or
    # last), and a conflict recorded more than once
    events = generated(calls)
    i = pick % len(events)
    other = conflicting(events[i], shift, rng)
    kept = preferred(events[i], other)
    loser = other if kept is events[i] else events[i]
    expected, _ = facts([*events[:i], kept, *events[i + 1 :]])
    arrival = [*events, other] + [[*events, other][j % (len(events) + 1)] for j in repeats]
    rng.shuffle(arrival)
    assert facts(arrival)[0] == expected
    store = through_deriver(split(arrival, cuts))
    assert store.calls == expected
    assert store.conflicts == {(loser.source, loser.id, digest(loser))}


# -- events arriving later, even those that leave a call fewer contacts -----------------------------


def _steps(*spec: tuple[str, int, str] | tuple[str, int, str, str]) -> list[Step]:
    return [(s[0], s[1], s[2], s[3] if len(s) > 3 else "", "ag1", "timeout") for s in spec]  # type: ignore[misc]


@st.composite
def arriving_in_part(draw: st.DrawFn) -> tuple[list[Step], list[Step]]:
    """Some events of a generated call (what has arrived so far: the rest is late or lost), and
    some more of them (a later batch)."""
    steps = draw(lifecycles()).steps
    n = len(steps)
    now = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    later = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return (
        [s for s, a in zip(steps, now, strict=True) if a],
        [s for s, a, b in zip(steps, now, later, strict=True) if b and not a],
    )


GROWING = st.one_of(st.tuples(st.lists(STEP, max_size=8), st.lists(STEP, min_size=1, max_size=4)), arriving_in_part())


@BOUNDED
@given(GROWING)
# Adding events can lower a call's number of contacts; these are the cases hypothesis found.
# Two call.ended: the earlier one (before anything was queued) makes the later one end no wait,
# so the K stay it abandoned runs on and the re-queue into K is no new contact (2 -> 1).
@example((_steps(("queued", 30, K), ("ended", 60, ""), ("queued", 90, K)), _steps(("ended", 0, ""))))
# One instant: queued K, queued K, answered K is an answer and a re-queue (2 contacts); with a
# transfer K->A at that instant it reads as K->A->K, answered (1 contact).
@example((_steps(("queued", 0, K), ("queued", 0, K), ("answered", 0, K)), _steps(("transferred", 0, K, A))))
# One instant: queued K, abandoned K, queued A is an abandon and a re-queue (2); with a transfer
# K->A it is one stay, K->A, whose abandon in K drags it back: (K, A) left, 1 contact.
@example((_steps(("queued", 0, K), ("abandoned", 0, K), ("queued", 0, A)), _steps(("transferred", 0, K, A))))
# Two instants: queued K at 0, queued K and answered K at 30 (answer, re-queue: 2); with queued A at
# 0 the second queued K is a transfer back from A before the answer (1).
@example((_steps(("queued", 0, K), ("queued", 30, K), ("answered", 30, K)), _steps(("queued", 0, A))))
# A real call arriving in two batches: queued D at 0, then at 14 s D->K, K->D, answered in D. While
# D->K is late, the K->D transfer after the answer reads as an internal transfer waiting in D (2
# contacts); once it arrives the chain is whole and the call has 1 contact.
@example((_steps(("queued", 0, D), ("transferred", 14, K, D), ("answered", 14, D)), _steps(("transferred", 14, D, K))))
@pytest.mark.parametrize("restart", [False, True], ids=["same-worker", "restarted"])
def test_the_store_holds_exactly_the_contacts_of_all_events_however_they_arrive(
    restart: bool, growing: tuple[list[Step], list[Step]]
) -> None:
    """For any events S of a call and more events arriving later (in the same worker, or after a
    restart that forgot what it held): the store's contacts of the call are exactly those of
    derive(S + more), even when the later events leave the call fewer contacts than before (the
    examples). The warehouse's rows are keyed (call_id, seq); the Deriver drops the ones the call
    no longer has (Store.drop_contacts). S is arbitrary events or part of a generated call's."""
    # guards: a contact row left behind when a late event merges two contacts into one
    base, extra = growing
    s = events_of("m1", base)
    more = events_of("m1", extra, prefix="x")
    store = MemoryStore()
    deriver = Deriver(store, AGREEMENTS)
    deriver.apply(s)
    (Deriver(store, AGREEMENTS) if restart else deriver).apply(more)
    whole = derive_call("m1", s + more, AGREEMENTS)
    assert {k: v for k, v in store.contacts.items() if k[0] == "m1"} == {("m1", c.seq): c for c in whole.contacts}
