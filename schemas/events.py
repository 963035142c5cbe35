"""Canonical events (spec/events.md): CloudEvents 1.0 envelopes, one Struct per type.

msgspec decodes and validates in one pass, which is what keeps the replay near the speed of
plain JSON parsing. The `type` field is the union's tag, so an unknown type, a missing field
or a time without offset is a `msgspec.ValidationError` naming the JSON path.

The same models describe events before and after the ingest boundary (ingest/boundary.py):
`caller`, `sender` and `subject` are accepted on the way in, and the boundary replaces them with
`caller_ref`, `sender_ref` and `categories`; it also hashes agent ids and Message-ID-like ids
(`message_id`, `thread_id`, `in_reply_to`, and an envelope `id` or `call_id` that is not a short
token) and drops the envelope `subject`. Fields left as None are not encoded.

Id-like fields are bounded (512 characters before hashing, 64 for queue and mailbox ids, as
in the agreements), so no key can grow a query downstream beyond reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, TypeAlias

import msgspec
from msgspec import Meta, Struct

Text = Annotated[str, Meta(min_length=1)]
# An id as a source sends it (a call id, a Message-ID, an agent id), before the boundary hashes it.
MAX_ID_LENGTH = 512
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
# A queue or mailbox id: it must be one of the agreements' ids, which are at most 64 characters.
Name = Annotated[str, Meta(min_length=1, max_length=64)]
Entrance = Annotated[str, Meta(min_length=1, max_length=256)]
Personal = Annotated[str, Meta(max_length=256)]  # a phone number or an address (RFC 5321: 254)

# What the boundary lets through unchanged, and the shape of what it makes (ingest/boundary.py):
# an envelope `id` or `call_id` matching TOKEN is kept, anything else is replaced by its keyed
# hash; `source` must match SOURCE (it becomes a label and a key); a pseudonym is 32 hex digits.
# A token has at least one letter: digits alone (with dashes) may be a phone or personal number.
TOKEN_PATTERN = r"(?=[^A-Za-z]{0,127}[A-Za-z])[A-Za-z0-9._:-]{1,128}"
SOURCE_PATTERN = r"[A-Za-z0-9._/-]{1,64}"
PSEUDONYM_PATTERN = r"[0-9a-f]{32}"
FINGERPRINT_PATTERN = r"[0-9a-f]{16}"  # of a pseudonym key (ingest/pseudonymise.py)

# One limit for one event everywhere (files, webhook, Kafka, the worker), checked at the ingest
# boundary: a CallGuide or mailbox event is a few hundred bytes, and anything near Kafka's
# 1 MiB message limit would fail on every retry instead of being rejected once with a reason.
MAX_EVENT_BYTES = 64 * 1024
# Times every path accepts. The business clock runs from 1990 (schemas/calendar.py; the oldest
# real data tested, the Technion bank's calls, is from 1999) and the warehouse's DateTime64 ends
# in 2299; a time outside this range is a broken source clock.
EARLIEST_TIME = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# On the live paths (webhook, mailbox pollers, stream worker) an event may be at most this far
# ahead of the receiving clock (spec/events.md).
MAX_FUTURE = timedelta(minutes=5)
OUT_OF_RANGE = f"is outside the accepted range ({EARLIEST_TIME:%Y-%m-%d} up to {LATEST_TIME:%Y-%m-%d}, UTC)"
# A year strictly between these is inside the range whatever the offset (offsets are under a day).
_SAFE_AFTER, _SAFE_BEFORE = EARLIEST_TIME.year, LATEST_TIME.year - 1


def in_time_range(t: datetime) -> bool:
    """`t` lies in [EARLIEST_TIME, LATEST_TIME). The exact comparison converts to UTC, which is
    slow on the replay's hot path, so it runs only for a year near the edges."""
    return _SAFE_AFTER < t.year < _SAFE_BEFORE or EARLIEST_TIME <= t < LATEST_TIME


def utc_z(t: datetime) -> str:
    """An instant as RFC 3339 in UTC with a Z, to the second (milliseconds when it has them)."""
    t = t.astimezone(UTC)
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds").replace("+00:00", "Z")


# Event time: RFC 3339 with an offset; a naive time is rejected by the decoder.
Time = Annotated[datetime, Meta(tz=True)]
AgentState = Literal["ready", "busy", "wrap_up", "not_ready", "logged_out"]
CloseReason = Literal["handled", "forwarded", "spam"]
ExitReason = Literal["timeout", "exit_key", "queue_full", "no_agents"]


# gc=False: events hold no reference cycles, and keeping millions of them out of the
# garbage collector's generations is what keeps the replay fast and its pauses short.
class _Data(Struct, omit_defaults=True, kw_only=True, gc=False):
    pass


class CallOfferedData(_Data):
    call_id: Id
    entrance: Entrance
    caller: Personal | None = None  # personal data: only before the ingest boundary
    caller_ref: str | None = None  # set by the boundary only


class CallQueuedData(_Data):
    call_id: Id
    queue: Name


class CallAnsweredData(_Data):
    call_id: Id
    queue: Name
    agent: Id  # an employee: hashed by the boundary


class CallQueueData(_Data):
    """Payload of call.abandoned and call.callback_requested."""

    call_id: Id
    queue: Name


class CallTransferredData(_Data):
    call_id: Id
    queue: Name
    to_queue: Name


class CallExitedData(_Data):
    call_id: Id
    queue: Name
    reason: ExitReason


class CallEndedData(_Data):
    call_id: Id


class AgentStateData(_Data):
    agent: Id  # an employee: hashed by the boundary
    state: AgentState
    queues: list[Name] = []


class MailReceivedData(_Data):
    mailbox: Name
    message_id: Id  # Message-IDs can hold addresses: hashed by the boundary
    thread_id: Id
    sender: Personal | None = None  # personal data: only before the ingest boundary
    subject: str | None = None  # personal data: only before the ingest boundary
    sender_ref: str | None = None  # set by the boundary only
    categories: list[str] = []


class MailRepliedData(_Data):
    mailbox: Name
    message_id: Id
    thread_id: Id
    in_reply_to: Id | None = None


class MailClosedData(_Data):
    mailbox: Name
    thread_id: Id
    reason: CloseReason


class _Envelope(Struct, tag_field="type", omit_defaults=True, kw_only=True, gc=False):
    specversion: Literal["1.0"]
    id: Id
    source: Text  # SOURCE_PATTERN, checked by the boundary (cheaper there than per decode)
    time: Time
    subject: str | None = None
    datacontenttype: str | None = None
    # A CloudEvents extension of this project: the fingerprint of the key a source adapter's
    # import (`availability import --out`) pseudonymised the event with. The ingest boundary then
    # checks the event's shape instead of hashing again, and drops the attribute.
    pseudonymised: Annotated[str, Meta(pattern=f"^{FINGERPRINT_PATTERN}$")] | None = None


class CallOffered(_Envelope, tag="call.offered"):
    data: CallOfferedData


class CallQueued(_Envelope, tag="call.queued"):
    data: CallQueuedData


class CallAnswered(_Envelope, tag="call.answered"):
    data: CallAnsweredData


class CallAbandoned(_Envelope, tag="call.abandoned"):
    data: CallQueueData


class CallTransferred(_Envelope, tag="call.transferred"):
    data: CallTransferredData


class CallbackRequested(_Envelope, tag="call.callback_requested"):
    data: CallQueueData


class CallExited(_Envelope, tag="call.exited"):
    data: CallExitedData


class CallEnded(_Envelope, tag="call.ended"):
    data: CallEndedData


class AgentStateChanged(_Envelope, tag="agent.state"):
    data: AgentStateData


class MailReceived(_Envelope, tag="mail.received"):
    data: MailReceivedData


class MailReplied(_Envelope, tag="mail.replied"):
    data: MailRepliedData


class MailClosed(_Envelope, tag="mail.closed"):
    data: MailClosedData


CallEvent: TypeAlias = (
    CallOffered
    | CallQueued
    | CallAnswered
    | CallAbandoned
    | CallTransferred
    | CallbackRequested
    | CallExited
    | CallEnded
)
MailEvent: TypeAlias = MailReceived | MailReplied | MailClosed
Event: TypeAlias = CallEvent | AgentStateChanged | MailEvent

EVENT_TYPES: tuple[type[_Envelope], ...] = (
    CallOffered,
    CallQueued,
    CallAnswered,
    CallAbandoned,
    CallTransferred,
    CallbackRequested,
    CallExited,
    CallEnded,
    AgentStateChanged,
    MailReceived,
    MailReplied,
    MailClosed,
)
_NAME: dict[type, str] = {t: str(t.__struct_config__.tag) for t in EVENT_TYPES}
TYPE_NAMES: tuple[str, ...] = tuple(_NAME.values())
CALL_TYPES = frozenset(n for n in TYPE_NAMES if n.startswith("call."))
MAIL_TYPES = frozenset(n for n in TYPE_NAMES if n.startswith("mail."))
CALL_CLASSES: frozenset[type] = frozenset(t for t, n in _NAME.items() if n in CALL_TYPES)
MAIL_CLASSES: frozenset[type] = frozenset(t for t, n in _NAME.items() if n in MAIL_TYPES)

_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


def type_name(event: Event) -> str:
    return _NAME[type(event)]


def type_name_of(cls: type) -> str:
    return _NAME[cls]


def decode(raw: bytes | str) -> Event:
    """Parse and validate one event; raises msgspec.DecodeError / ValidationError."""
    event: Event = _decoder.decode(raw)
    return event


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def event_key(event: Event) -> str:
    """The entity an event belongs to: call id, agent, or `mailbox/thread_id`.

    Derivations fold all events of one key; Kafka partitions by it.
    """
    data = event.data
    cls = data.__class__  # an identity and a set lookup: isinstance() against a tuple is slower
    if cls is AgentStateData:  # on the replay's path (every event stored, every mail derived)
        return data.agent  # type: ignore[union-attr]
    if cls in _MAIL_DATA:
        return f"{data.mailbox}/{data.thread_id}"  # type: ignore[union-attr]
    if cls in _CALL_DATA:
        return data.call_id  # type: ignore[union-attr]
    return _event_key_of(data)  # a subclass


def _event_key_of(data: object) -> str:
    if isinstance(data, AgentStateData):
        return data.agent
    if isinstance(data, (MailReceivedData, MailRepliedData, MailClosedData)):
        return f"{data.mailbox}/{data.thread_id}"
    return data.call_id  # type: ignore[attr-defined,no-any-return]


_MAIL_DATA = frozenset({MailReceivedData, MailRepliedData, MailClosedData})
_CALL_DATA = frozenset(
    {
        CallOfferedData,
        CallQueuedData,
        CallAnsweredData,
        CallQueueData,
        CallTransferredData,
        CallExitedData,
        CallEndedData,
    }
)


def dedup_key(event: Event) -> tuple[str, str]:
    """Same source and id is the same event (CloudEvents)."""
    return (event.source, event.id)
