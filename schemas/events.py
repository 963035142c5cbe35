"""Canonical events (spec/events.md): CloudEvents 1.0 envelopes, one Struct per type.

msgspec decodes and validates in one pass, which is what keeps the replay near the speed of
plain JSON parsing. The `type` field is the union's tag, so an unknown type, a missing field
or a time without offset is a `msgspec.ValidationError` naming the JSON path.

The same models describe events before and after the ingest boundary: `caller`, `sender` and
`subject` are accepted on the way in, and the boundary (ingest/) replaces them with
`caller_ref`, `sender_ref` and `categories`. Fields left as None are not encoded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeAlias

import msgspec
from msgspec import Meta, Struct

Text = Annotated[str, Meta(min_length=1)]
# Event time: RFC 3339 with an offset; a naive time is rejected by the decoder.
Time = Annotated[datetime, Meta(tz=True)]
AgentState = Literal["ready", "busy", "wrap_up", "not_ready", "logged_out"]
CloseReason = Literal["handled", "forwarded", "spam"]


# gc=False: events hold no reference cycles, and keeping millions of them out of the
# garbage collector's generations is what keeps the replay fast and its pauses short.
class _Data(Struct, omit_defaults=True, kw_only=True, gc=False):
    pass


class CallOfferedData(_Data):
    call_id: Text
    entrance: Text
    caller: str | None = None  # personal data: only before the ingest boundary
    caller_ref: str | None = None


class CallQueuedData(_Data):
    call_id: Text
    queue: Text


class CallAnsweredData(_Data):
    call_id: Text
    queue: Text
    agent: Text


class CallQueueData(_Data):
    """Payload of call.abandoned and call.callback_requested."""

    call_id: Text
    queue: Text


class CallTransferredData(_Data):
    call_id: Text
    queue: Text
    to_queue: Text


class CallEndedData(_Data):
    call_id: Text


class AgentStateData(_Data):
    agent: Text
    state: AgentState
    queues: list[Text] = []


class MailReceivedData(_Data):
    mailbox: Text
    message_id: Text
    thread_id: Text
    sender: str | None = None  # personal data: only before the ingest boundary
    subject: str | None = None  # personal data: only before the ingest boundary
    sender_ref: str | None = None
    categories: list[str] = []


class MailRepliedData(_Data):
    mailbox: Text
    message_id: Text
    thread_id: Text
    in_reply_to: str | None = None


class MailClosedData(_Data):
    mailbox: Text
    thread_id: Text
    reason: CloseReason


class _Envelope(Struct, tag_field="type", omit_defaults=True, kw_only=True, gc=False):
    specversion: Literal["1.0"]
    id: Text
    source: Text
    time: Time
    subject: str | None = None
    datacontenttype: str | None = None


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
    CallOffered | CallQueued | CallAnswered | CallAbandoned | CallTransferred | CallbackRequested | CallEnded
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
    if isinstance(data, AgentStateData):
        return data.agent
    if isinstance(data, (MailReceivedData, MailRepliedData, MailClosedData)):
        return f"{data.mailbox}/{data.thread_id}"
    return data.call_id


def dedup_key(event: Event) -> tuple[str, str]:
    """Same source and id is the same event (CloudEvents)."""
    return (event.source, event.id)
