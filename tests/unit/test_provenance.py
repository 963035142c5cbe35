"""Which rules and agreements derived a fact (stream_jobs/core/provenance.py), without a warehouse:
the inputs and their fingerprint, the calendar rebuilt from them, and the Deriver marking every
fact it writes."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest

from schemas.agreements import parse_agreements
from stream_jobs.core import provenance
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.provenance import calendar_inputs, calendar_of, derivation_inputs, fingerprint
from stream_jobs.core.store import MemoryStore
from tests.conftest import AGREEMENTS, agreements_with, call, ev

K = {"queue": "kundreskontra"}


def test_the_inputs_are_what_a_fact_depends_on(agreements):
    inputs = derivation_inputs(agreements)
    assert inputs["rules"] == provenance.RULES and inputs["timezone"] == "Europe/Stockholm"
    assert set(inputs["queues"]["kundreskontra"]) == {
        "calendar", "service_level_seconds", "short_abandon_seconds", "extra_service_levels",
    }  # fmt: skip
    assert set(inputs["mailboxes"]["kundreskontra"]) == {
        "calendar", "response_target_seconds", "priority_response_target_seconds",
    }  # fmt: skip
    assert inputs["mailboxes"]["kundreskontra"]["priority_response_target_seconds"] == 4 * 3600


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        ({"queues__kundreskontra__name": "X"}, True),  # read at report time
        ({"queues__kundreskontra__answer_rate_target": 0.5}, True),
        ({"queues__kundreskontra__service_level_target": 0.5}, True),
        ({"mailboxes__kundreskontra__priority_keywords": ["x"]}, True),  # applied at ingest only
        ({"queues__kundreskontra__short_abandon_seconds": 6}, False),
        ({"queues__kundreskontra__service_level_seconds": 61}, False),
        ({"queues__kundreskontra__extra_service_levels": [20]}, False),
        ({"mailboxes__kundreskontra__response_target": "7h"}, False),
        ({"mailboxes__kundreskontra__priority_response_target": "3h"}, False),
        ({"calendars__kontor__closed": ["julafton"]}, False),
        ({"timezone": "Europe/Helsinki"}, False),
    ],
)
def test_the_fingerprint_changes_with_the_inputs_only(agreements, edit, same):
    assert (
        fingerprint(derivation_inputs(agreements_with(**edit))) == fingerprint(derivation_inputs(agreements))
    ) is same


def test_the_order_a_calendar_is_written_in_changes_nothing(agreements):
    hours = AGREEMENTS["calendars"]["kontor"]["hours"]
    reordered = agreements_with(calendars__kontor__hours=dict(reversed(list(hours.items()))))
    assert fingerprint(derivation_inputs(reordered)) == fingerprint(derivation_inputs(agreements))
    assert len(fingerprint(derivation_inputs(agreements))) == 16


def test_a_calendar_rebuilt_from_its_inputs_opens_on_the_same_days(agreements):
    original = agreements.calendars["kontor"]
    rebuilt = calendar_of(calendar_inputs(original), agreements.timezone)
    day = date(2026, 1, 1)
    while day < date(2027, 1, 1):  # holidays, valborg (reduced), midsommarafton (closed), weekends
        assert rebuilt.intervals_on(day) == original.intervals_on(day), day
        day += timedelta(days=1)
    assert rebuilt.intervals_on(date(2026, 4, 30)) != original.intervals_on(date(2026, 4, 29))  # reduced


def test_the_deriver_marks_every_fact_and_records_its_inputs_once(agreements):
    store = MemoryStore()
    deriver = Deriver(store, agreements)
    recorded = []
    store.record_agreements = lambda f, i: recorded.append((f, i))  # type: ignore[method-assign]
    deriver.apply(call("c1", ("queued", "2026-04-14T08:10:00+02:00", K)))
    mail = ev("mail.received", "2026-04-14T09:00:00+02:00", source="imap/kundreskontra", mailbox="kundreskontra",
              thread_id="t1", message_id="m1")  # fmt: skip
    deriver.apply([*call("c2", ("queued", "2026-04-14T08:20:00+02:00", K)), mail])
    assert recorded == [(deriver.fingerprint, derivation_inputs(agreements))]
    assert deriver.fingerprint == fingerprint(derivation_inputs(agreements))
    assert store.derived_with == {
        "c1": deriver.fingerprint,
        "c2": deriver.fingerprint,
        "kundreskontra/t1": deriver.fingerprint,
    }
    deriver.forget()  # a refused batch: the record may have gone with it, so it is written again
    deriver.apply(call("c3", ("queued", "2026-04-14T08:30:00+02:00", K)))
    assert len(recorded) == 2


def test_nothing_is_recorded_for_an_empty_batch(agreements):
    store = MemoryStore()
    Deriver(store, agreements).apply([])
    assert store.agreements == {} and store.derived_with == {}


def test_the_fingerprint_is_a_stable_digest_of_canonical_json():
    """Fingerprints are stored: the text hashed must never change (keys sorted, no spaces, UTF-8
    as written), or every fact would read as derived with other agreements after an upgrade."""
    import hashlib

    text = '{"a":"å","b":[1,2]}'
    assert fingerprint({"b": [1, 2], "a": "å"}) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_order_of_the_processes_in_the_file_changes_nothing(agreements):
    reordered = copy.deepcopy(AGREEMENTS)
    reordered["queues"] = dict(reversed(list(reordered["queues"].items())))
    assert fingerprint(derivation_inputs(parse_agreements(reordered))) == fingerprint(derivation_inputs(agreements))
