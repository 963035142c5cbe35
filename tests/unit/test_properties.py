"""Property tests: any order and any duplication of a scenario's events give the same facts."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import CALL_CLASSES, MAIL_CLASSES, Event, decode, encode, event_key
from stream_jobs.core.calls import derive_call
from stream_jobs.core.mail import derive_thread
from tests.conftest import shared_examples

AGREEMENTS = load_agreements()


def canonical(events: list[Event]) -> list[Event]:
    boundary = Boundary(AGREEMENTS, Pseudonymiser(b"test", AGREEMENTS))
    out = []
    for ev in events:
        accepted = boundary.accept(encode(ev))
        assert not isinstance(accepted, Rejection), accepted
        out.append(accepted)
    return out


# A simulated Monday (with transfers, callbacks, internal transfers, follow-up mail) and a
# month-start Friday, small enough for many examples.
SCENARIO = canonical(
    list(simulate(AGREEMENTS, date(2026, 3, 2), 1, seed=3, scale=0.25))
    + list(simulate(AGREEMENTS, date(2026, 5, 29), 1, seed=4, scale=0.25))
)


def facts(events: list[Event]) -> tuple[dict[str, object], dict[str, object]]:
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


def test_the_scenario_exercises_the_rules():
    call_facts, cases = EXPECTED
    outcomes = {f.contact.outcome for f in call_facts.values() if f.contact}
    assert {"answered", "abandoned"} <= outcomes
    assert any(f.contact and f.contact.transferred_from for f in call_facts.values())
    assert any(not f.queue_open for f in call_facts.values() if f.contact)
    assert any(len(c) > 1 for c in cases.values())  # a thread with a second case


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.lists(st.integers(min_value=0), max_size=300))
def test_any_order_and_duplicates_give_the_same_facts(rng, duplicates):
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
def test_the_worked_example_in_any_order_with_repeats(example_events, rng, repeats):
    # Any order (a shuffle of the whole file) with any repeats (indices taken modulo the
    # number of events), so the property holds whatever the file's length.
    events = example_events
    shuffled = events + [events[i % len(events)] for i in repeats]
    rng.shuffle(shuffled)
    assert facts(shuffled) == facts(events)


def test_round_trip_through_json_keeps_every_event():
    for ev in SCENARIO:
        assert decode(encode(ev)) == ev


def test_the_stream_path_gives_the_replay_path_events():
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
