"""Property tests (issue 7): the ingest boundary never raises, whatever the bytes.

`Boundary.accept` (sources) and `Boundary.accept_published` (the project's own topics) must
return either a canonical event or a non-empty reason for any input: random bytes, random JSON,
events with random values in their fields (huge numbers, surrogates, deep nesting, odd times).
An accepted event must also be safe to pass on: encodable, free of raw personal fields, inside
the time range, and equal after a trip through a topic (no second hashing).

Bounded: a few hundred examples per property, so the file runs in seconds.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import load_agreements
from schemas.events import (
    EARLIEST_TIME,
    EVENT_TYPES,
    LATEST_TIME,
    MAX_EVENT_BYTES,
    CallOffered,
    Event,
    MailReceived,
    decode,
    encode,
)

AGREEMENTS = load_agreements()  # the shipped default: the simulator's queues and mailboxes
BOUNDARY = Boundary(AGREEMENTS, Pseudonymiser(b"fuzz-key-" + b"x" * 32, AGREEMENTS))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

QUEUE = "kundreskontra"
TEMPLATES: list[dict[str, Any]] = [
    {"type": "call.offered", "data": {"call_id": "c1", "entrance": "08-50833000", "caller": "+46701234567"}},
    {"type": "call.queued", "data": {"call_id": "c1", "queue": QUEUE}},
    {"type": "call.answered", "data": {"call_id": "c1", "queue": QUEUE, "agent": "a17"}},
    {"type": "call.abandoned", "data": {"call_id": "c1", "queue": QUEUE}},
    {"type": "call.transferred", "data": {"call_id": "c1", "queue": QUEUE, "to_queue": "avgifter"}},
    {"type": "call.callback_requested", "data": {"call_id": "c1", "queue": QUEUE}},
    {"type": "call.ended", "data": {"call_id": "c1"}},
    {"type": "agent.state", "data": {"agent": "a17", "state": "ready", "queues": [QUEUE]}},
    {
        "type": "mail.received",
        "data": {
            "mailbox": QUEUE,
            "message_id": "<m1@x>",
            "thread_id": "<m1@x>",
            "sender": "anna@example.se",
            "subject": "Anstånd",
            "categories": ["Priority"],
        },
    },
    {"type": "mail.replied", "data": {"mailbox": QUEUE, "message_id": "<r1@x>", "thread_id": "<m1@x>"}},
    {"type": "mail.closed", "data": {"mailbox": QUEUE, "thread_id": "<m1@x>", "reason": "handled"}},
]


def envelope(template: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "e1", "source": "fuzz", "time": "2026-04-01T08:30:00+02:00"} | template


def check(result: Event | Rejection) -> None:
    """An event as it may leave ingest, or a rejection with a reason."""
    if isinstance(result, Rejection):
        assert result.reason, "an empty reason"
        # The boundary's last resort turns any exception into "cannot be read (…)"; every input
        # these strategies make has a specific reason, so reaching it here is a bug (a crash).
        assert not result.reason.startswith("cannot be read"), result
        return
    assert isinstance(result, EVENT_TYPES), result
    raw = encode(result)  # encodable (no surrogates, nothing odd)
    assert len(raw) <= MAX_EVENT_BYTES + 1024  # hashing may lengthen a short id a little, never much
    assert EARLIEST_TIME <= result.time < LATEST_TIME
    assert result.subject is None
    if isinstance(result, CallOffered):
        assert result.data.caller is None
    if isinstance(result, MailReceived):
        assert result.data.sender is None and result.data.subject is None
    # a trip through a topic gives the same event: not rejected, not hashed twice
    assert BOUNDARY.accept_published(raw) == result
    assert decode(raw) == result


def both(raw: bytes | str) -> None:
    check(BOUNDARY.accept(raw))
    check(BOUNDARY.accept_published(raw))


# -- strategies -------------------------------------------------------------------------------------

# Any code point, surrogates included (hypothesis leaves out "Cs" unless asked), with surrogates
# and JSON's own characters drawn often enough to matter among 1.1 million code points.
ANY_CHAR = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    st.sampled_from(list('{}[]":,0123456789eE+-.tfnrul \\')),
)
# Bytes that look like JSON often enough to get past the first byte: tokens, escapes (a lone
# surrogate escape among them), bytes that are invalid in UTF-8, and the envelope's names.
TOKENS = st.sampled_from(
    [
        *(b"{", b"}", b"[", b"]", b'"', b":", b",", b" ", b"1e999", b"-0", b"null", b"true", b"\\u", b"\\ud800"),
        *(b"\xff", b"\xc3", b"\xe5", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00"),
        *(b'"specversion":"1.0"', b'"type":"call.ended"', b'"time":', b'"2026-04-01T08:30:00Z"', b'"data":'),
        *(b'"id":"e1"', b'"source":"s"', b'{"call_id":"c1"}'),
    ]
)


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """A valid event's bytes with a few tokens or random bytes written over or into it."""
    raw = bytearray(json.dumps(envelope(draw(st.sampled_from(TEMPLATES))), ensure_ascii=False).encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        piece = draw(st.one_of(TOKENS, st.binary(min_size=1, max_size=4)))
        raw[at : at + draw(st.integers(min_value=0, max_value=len(piece)))] = piece
    return bytes(raw)


BYTES = st.one_of(st.binary(max_size=2048), st.lists(TOKENS, max_size=60).map(b"".join), spliced())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),  # beyond int64, beyond float
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
    max_leaves=30,
)


def with_offset(naive: datetime, minutes: int) -> str:
    return naive.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()


OFFSETS = st.integers(min_value=-1439, max_value=1439)  # what RFC 3339 can write: under a day
TIMES = st.one_of(
    # RFC 3339-like text with every part varied, the offset optional or without its colon
    st.from_regex(
        r"\A[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
        r"(\.[0-9]{1,9})?([Zz]|[+-][0-2][0-9]:?[0-5][0-9])?\Z"
    ),
    st.builds(with_offset, st.datetimes(), OFFSETS),  # years 1 to 9999
    st.builds(with_offset, st.datetimes(datetime(1999, 12, 30), datetime(2000, 1, 2)), OFFSETS),  # the edges
    st.builds(with_offset, st.datetimes(datetime(2099, 12, 30), datetime(2100, 1, 2)), OFFSETS),
    ANY_TEXT,
)
FIELD_VALUES = st.one_of(JSON_VALUES, TIMES, st.sampled_from(["", "a" * 600, QUEUE, "priority", "0" * 32]))


def dumps(value: object, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def mutated_events(draw: st.DrawFn) -> str:
    """A valid event with a few fields (envelope or data) replaced, added or removed."""
    event = json.loads(json.dumps(envelope(draw(st.sampled_from(TEMPLATES)))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = event["data"] if draw(st.booleans()) and isinstance(event.get("data"), dict) else event
        keys = [*target.keys(), "caller_ref", "sender_ref", "subject", "extra", "categories", "in_reply_to"]
        key = draw(st.sampled_from(keys))
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(FIELD_VALUES)
    text = dumps(event, draw(st.booleans()))
    depth = draw(st.sampled_from([0, 0, 0, 10, 900, 1000, 5000]))
    if depth:  # an extra envelope field nested that deep
        text = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    return text


# -- properties --------------------------------------------------------------------------------------


@FUZZ
@given(BYTES)
def test_arbitrary_bytes(raw: bytes) -> None:
    both(raw)


@FUZZ
@given(st.text(ANY_CHAR, max_size=512))
def test_arbitrary_text(raw: str) -> None:
    both(raw)
    both(raw.encode("utf-8", "surrogatepass"))  # the bytes of a str with surrogates are invalid UTF-8


@FUZZ
@given(JSON_VALUES, st.booleans())
def test_arbitrary_json(value: object, ascii_only: bool) -> None:
    both(dumps(value, ascii_only))


@FUZZ
@given(mutated_events(), st.booleans())
def test_events_with_random_fields(text: str, as_bytes: bool) -> None:
    both(text.encode("utf-8", "surrogatepass") if as_bytes else text)


@FUZZ
@given(st.sampled_from(TEMPLATES), TIMES)
def test_random_times(template: dict[str, Any], time: str) -> None:
    both(json.dumps(envelope(template) | {"time": time}))


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=4), st.binary(min_size=1, max_size=8))
def test_oversized_input_names_its_size(extra: int, filler: bytes) -> None:
    raw = (filler * (MAX_EVENT_BYTES // len(filler) + 1))[: MAX_EVENT_BYTES + 1 + extra]
    reason = f"event larger than {MAX_EVENT_BYTES} bytes ({len(raw)} bytes)"
    assert BOUNDARY.accept(raw) == Rejection(reason)
    assert BOUNDARY.accept_published(raw) == Rejection(reason)


def test_the_templates_are_valid() -> None:
    # The mutations start from valid events: every template alone is accepted.
    for template in TEMPLATES:
        result = BOUNDARY.accept(json.dumps(envelope(template)))
        assert not isinstance(result, Rejection), (template["type"], result)
        check(result)
