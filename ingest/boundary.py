"""The ingest boundary: raw bytes -> a valid, pseudonymised canonical event, or a Rejection.

Every source (JSONL files, the CallGuide webhook, IMAP pollers, the simulator) passes through
`Boundary.accept`; every message read back from the project's own Kafka topics passes through
`Boundary.accept_published`. Errors are data: whatever the input, the answer is an event or a
`Rejection` (the reason, and where the input came from), never an exception (issue 7).

The checks, cheapest first:

- size: at most MAX_EVENT_BYTES (one limit for every path), before anything is parsed;
- JSON and the contract (schemas/events.py): invalid UTF-8, a lone surrogate, nesting deeper
  than the decoder's stack and every validation error become a reason naming the place;
- time: its offset written `Z`/`z` or `±hh:mm` (msgspec also takes `+0200`, which is not
  RFC 3339); inside [EARLIEST_TIME, LATEST_TIME) on every path, and on the live paths
  (`live=True`: webhook, mailbox pollers, stream worker) at most MAX_FUTURE ahead of `clock()`;
- `source` a short name (it becomes a label and a key); queues and mailboxes in the agreements;
- an event an import pseudonymised ahead (its `pseudonymised` extension names this key's
  fingerprint) is checked as a published one, so nothing is hashed twice; another key's is
  rejected, since its pseudonyms would not link with this key's;
- personal data: `caller`/`sender` -> keyed hashes, `subject` -> categories and dropped, agent
  ids and Message-ID-like ids hashed, free-text ids hashed, the envelope `subject` dropped,
  `categories` restricted to `priority` and matched keyword stems. A source may not send a
  `*_ref` itself. A published message must already have that shape (it went through `accept`
  once), so nothing is hashed twice: `accept_published(encode(accept(x))) == accept(x)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements
from schemas.events import (
    MAX_EVENT_BYTES,
    MAX_FUTURE,
    OUT_OF_RANGE,
    PSEUDONYM_PATTERN,
    SOURCE_PATTERN,
    TOKEN_PATTERN,
    TYPE_NAMES,
    AgentStateChanged,
    AgentStateData,
    CallAbandoned,
    CallAnswered,
    CallAnsweredData,
    CallbackRequested,
    CallEnded,
    CallExited,
    CallExitedData,
    CallOffered,
    CallQueued,
    CallQueueData,
    CallQueuedData,
    CallTransferred,
    CallTransferredData,
    Event,
    MailClosed,
    MailClosedData,
    MailReceived,
    MailReceivedData,
    MailReplied,
    MailRepliedData,
    in_time_range,
)

_MAILBOX_DATA = (MailReceivedData, MailRepliedData, MailClosedData)
_QUEUE_DATA = (CallQueuedData, CallAnsweredData, CallQueueData, CallExitedData, CallTransferredData)

_TOKEN = re.compile(TOKEN_PATTERN).fullmatch
_SOURCE = re.compile(SOURCE_PATTERN).fullmatch
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN).fullmatch
JSON = "application/json"
_decode = msgspec.json.Decoder(Event).decode  # schemas.events.decode without the extra call

_MAX_REASON = 240

TOMBSTONE = "no event (an empty message: a tombstone?)"
NESTED_TOO_DEEP = "JSON nested too deeply (an event nests at most 3 levels)"
SOURCE_REASON = "source: must be a short name (letters, digits, '.', '_', '/', '-'; at most 64 characters)"
CALLER_REF_REASON = "data.caller_ref: set by the ingest boundary, not by a source (send the number as `caller`)"
SENDER_REF_REASON = "data.sender_ref: set by the ingest boundary, not by a source (send the address as `sender`)"
_AROUND = "; was it published around the ingest boundary?"
OTHER_KEY_REASON = (
    "pseudonymised: made with another pseudonym key (its pseudonyms would not link with this key's); "
    "import the source again with this AVAILABILITY_PSEUDONYM_KEY"
)
_AHEAD = f"is more than {MAX_FUTURE.total_seconds() / 60:g} minutes ahead of the receiving clock"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input the boundary refused, as a value: why, and where it came from.

    `reason` is for a person reading a rejects file, a log or an HTTP answer: it names fields,
    types and unknown queues or mailboxes, never a value that could be personal data.
    `origin` says where the input was found, as the caller named it ("april.jsonl:12", an IMAP
    event id naming mailbox, folder and UID); empty when the caller did not say."""

    reason: str
    origin: str = ""


def now_utc() -> datetime:
    return datetime.now(UTC)


def reason_of(exc: msgspec.MsgspecError) -> str:
    """msgspec's message, reworded for a person reading a rejects file (at most 240 characters)."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return _short(f"not valid JSON ({text.removeprefix('JSON is malformed: ')})")
    message, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    if path == "type" and message.startswith("Invalid value"):
        value = message.removeprefix("Invalid value ")
        if value.strip("'") in TYPE_NAMES:  # a known type that differs from the first `type` key
            return "type: given more than once, with different values"
        return _short(f"unknown type {shown(value.strip(chr(39)))}")
    if "with a timezone component" in message:
        return f"{path}: no UTC offset (write Z or +02:00)"
    message = _QUOTED.sub(lambda m: shown(m.group(1)), message)
    message = message.replace("Object missing required field", "missing required field")
    message = message[:1].lower() + message[1:]
    return _short(f"{path}: {message}" if path else message)


# A value a reason may quote: a name (a queue, a type, a state) or a short version number. Any
# other value (an address, a phone or personal number) could be personal data, and reasons go
# to logs and metrics as well as to the rejects file.
_SHOWABLE = re.compile(r"[^\W\d_][\w.-]{0,63}|[0-9.]{1,4}").fullmatch
_QUOTED = re.compile(r"'([^']*)'")
HIDDEN = "(a value not shown: it could be personal data)"


def shown(value: str) -> str:
    """A value as a reason may quote it."""
    return f"'{value}'" if _SHOWABLE(value) else HIDDEN


def _short(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


def _unknown_queue(field: str, queue: str) -> str:
    return _short(f"data.{field}: unknown queue {shown(queue)} (not in the agreements)")


def _unknown_mailbox(mailbox: str) -> str:
    return _short(f"data.mailbox: unknown mailbox {shown(mailbox)} (not in the agreements)")


def unknown_reference(event: Event, agreements: Agreements) -> str | None:
    """A queue or mailbox the agreements do not define, as a reason; None if all are known."""
    data = event.data
    if isinstance(data, _QUEUE_DATA):
        names = [("queue", data.queue)]
        if isinstance(data, CallTransferredData):
            names.append(("to_queue", data.to_queue))
    elif isinstance(data, AgentStateData):
        names = [(f"queues[{i}]", q) for i, q in enumerate(data.queues)]
    elif isinstance(data, _MAILBOX_DATA):
        return None if data.mailbox in agreements.mailboxes else _unknown_mailbox(data.mailbox)
    else:
        return None
    for field, queue in names:
        if queue not in agreements.queues:
            return _unknown_queue(field, queue)
    return None


def _decode_reason(exc: Exception, raw: Any) -> str:
    """Why decoding failed: every way msgspec can fail on input, as a reason."""
    if isinstance(exc, msgspec.DecodeError) and "UTF-8" in str(exc):  # msgspec >= 0.23 says it itself
        return _utf8_reason(raw)
    if isinstance(exc, msgspec.MsgspecError):
        return reason_of(exc)
    if isinstance(exc, RecursionError):  # msgspec recurses per level, also to skip an unknown field
        return NESTED_TOO_DEEP
    if isinstance(exc, UnicodeDecodeError):
        return _utf8_reason(raw)
    if isinstance(exc, UnicodeEncodeError):  # a str holding a lone surrogate: it has no UTF-8 form
        return f"not valid Unicode: a lone surrogate U+{ord(exc.object[exc.start]):04X} at character {exc.start}"
    raise exc


def _utf8_reason(raw: Any) -> str:
    """msgspec names the position inside the string; the offset in the line is more useful."""
    try:
        bytes(raw).decode()
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        return f"not valid UTF-8: byte 0x{byte:02x} at offset {exc.start} (was it saved as Latin-1 or Windows-1252?)"
    return "not valid UTF-8"


class _TimeText(msgspec.Struct, gc=False):
    time: str


# The `time` of an event as written (JSON escapes undone), by a second decode: msgspec's parser
# takes `+0200` as an offset, which RFC 3339 does not (spec/events.md). Decoding again costs
# less than searching the raw bytes for the key (measured: ~0.5 against ~1 µs an event), and it
# is right by construction whatever the escapes, whitespace or repeated keys: msgspec resolves
# them here exactly as it did for the event.
_time_text = msgspec.json.Decoder(_TimeText).decode


def _size(raw: Any) -> int:
    if isinstance(raw, str):
        return len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    return memoryview(raw).nbytes  # bytes, bytearray, memoryview; a TypeError for anything else


Check = Callable[[Any], "str | None"]


class Boundary:
    def __init__(
        self,
        agreements: Agreements,
        pseudonymiser: Pseudonymiser,
        *,
        live: bool = False,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.agreements = agreements
        self.pseudonymiser = pseudonymiser
        self.live = live
        self.clock = clock
        if live and clock().utcoffset() is None:
            raise ValueError("the boundary's clock must return an aware datetime (e.g. now_utc)")
        self._queues = agreements.queues
        self._mailboxes = agreements.mailboxes
        self._sources: set[str] = set()  # sources seen valid: a set lookup instead of a regex
        p = pseudonymiser
        self._caller_ref, self._sender_ref = p.caller_ref, p.sender_ref
        self._agent_ref, self._id_ref, self._token = p.agent_ref, p.id_ref, p.token
        self._fingerprint = p.fingerprint
        self._from_source: dict[type, Check] = {
            CallOffered: self._offered,
            CallQueued: self._queued,
            CallAbandoned: self._queued,
            CallbackRequested: self._queued,
            CallExited: self._queued,
            CallAnswered: self._answered,
            CallTransferred: self._transferred,
            CallEnded: self._ended,
            AgentStateChanged: self._agent_state,
            MailReceived: self._received,
            MailReplied: self._replied,
            MailClosed: self._closed,
        }
        self._from_topic: dict[type, Check] = {
            CallOffered: self._published_offered,
            CallQueued: self._published_queued,
            CallAbandoned: self._published_queued,
            CallbackRequested: self._published_queued,
            CallExited: self._published_queued,
            CallAnswered: self._published_answered,
            CallTransferred: self._published_transferred,
            CallEnded: self._published_ended,
            AgentStateChanged: self._published_agent_state,
            MailReceived: self._published_received,
            MailReplied: self._published_replied,
            MailClosed: self._published_closed,
        }

    # -- the two entry points -------------------------------------------------------------------

    def accept(self, raw: bytes | str | None, origin: str = "") -> Event | Rejection:
        """Input from a source: the canonical event as it may leave ingest, or why it was rejected.

        `origin` (where the input came from) is only used for a rejection: pass a string at hand
        (an event id), not one formatted for every input on a hot path."""
        try:
            result = self._accept(raw, self._from_source)
        except Exception as exc:  # a case nobody foresaw: still a reason, never a crash
            result = f"cannot be read ({type(exc).__name__})"
        return Rejection(result, origin) if isinstance(result, str) else result

    def accept_published(self, raw: bytes | str | None, origin: str = "") -> Event | Rejection:
        """A message from the project's own topics (already through `accept`): the same checks,
        nothing hashed again; ids not in pseudonym or token shape are rejected."""
        try:
            result = self._accept(raw, self._from_topic)
        except Exception as exc:
            result = f"cannot be read ({type(exc).__name__})"
        return Rejection(result, origin) if isinstance(result, str) else result

    def _accept(self, raw: Any, checks: dict[type, Check]) -> Event | str:
        if raw is None:
            return TOMBSTONE
        size = len(raw) if raw.__class__ is bytes else _size(raw)
        if size > MAX_EVENT_BYTES:
            return f"event larger than {MAX_EVENT_BYTES} bytes ({size} bytes)"
        try:
            event: Event = _decode(raw)
        except Exception as exc:  # the ways bad input fails; anything else re-raised
            return _decode_reason(exc, raw)
        text = _time_text(raw).time  # valid RFC 3339 but for the offset's form: at least 20 characters
        if not (text[-1] in "Zz" or (text[-3] == ":" and text[-6] in "+-")):
            return _short(f"time '{text}': the offset must be Z or ±hh:mm (RFC 3339)")
        t = event.time
        if not in_time_range(t):
            return f"time: {t.isoformat()} {OUT_OF_RANGE}"
        if self.live:
            now = self.clock()
            if t - now > MAX_FUTURE:
                return f"time: {t.isoformat()} {_AHEAD} ({now.isoformat()})"
        if event.source not in self._sources:
            if not _SOURCE(event.source):
                return SOURCE_REASON
            if len(self._sources) < 4096:
                self._sources.add(event.source)
        if event.pseudonymised is not None:
            if event.pseudonymised != self._fingerprint:
                return OTHER_KEY_REASON
            event.pseudonymised = None
            checks = self._from_topic  # the shape an import made, checked, not hashed again
        problem = checks[event.__class__](event)
        if problem is not None:
            return problem
        if event.subject is not None:  # informative, free text (a call id, mailbox/thread): dropped
            event.subject = None
        if event.datacontenttype is not None and event.datacontenttype != JSON:
            event.datacontenttype = None
        return event

    # -- from a source: validate and pseudonymise in place (the event was just decoded) ----------

    def _offered(self, event: CallOffered) -> str | None:
        d = event.data
        if d.caller_ref is not None:
            return CALLER_REF_REASON
        if d.caller is not None:
            if d.caller:
                d.caller_ref = self._caller_ref(d.caller)
            d.caller = None
        d.call_id = self._token(d.call_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _queued(self, event: CallQueued | CallAbandoned | CallbackRequested | CallExited) -> str | None:
        d = event.data
        if d.queue not in self._queues:
            return _unknown_queue("queue", d.queue)
        d.call_id = self._token(d.call_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _answered(self, event: CallAnswered) -> str | None:
        d = event.data
        if d.queue not in self._queues:
            return _unknown_queue("queue", d.queue)
        d.call_id = self._token(d.call_id)
        d.agent = self._agent_ref(d.agent)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _transferred(self, event: CallTransferred) -> str | None:
        d = event.data
        if d.queue not in self._queues:
            return _unknown_queue("queue", d.queue)
        if d.to_queue not in self._queues:
            return _unknown_queue("to_queue", d.to_queue)
        d.call_id = self._token(d.call_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _ended(self, event: CallEnded) -> str | None:
        event.data.call_id = self._token(event.data.call_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _agent_state(self, event: AgentStateChanged) -> str | None:
        d = event.data
        for i, queue in enumerate(d.queues):
            if queue not in self._queues:
                return _unknown_queue(f"queues[{i}]", queue)
        d.agent = self._agent_ref(d.agent)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _received(self, event: MailReceived) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        if d.sender_ref is not None:
            return SENDER_REF_REASON
        if d.sender is not None:
            if d.sender:
                d.sender_ref = self._sender_ref(d.sender)
            d.sender = None
        if d.subject is not None or d.categories:
            d.categories = self.pseudonymiser.categories(d.mailbox, d.subject, d.categories)
            d.subject = None
        d.message_id = self._id_ref(d.message_id)
        d.thread_id = self._id_ref(d.thread_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _replied(self, event: MailReplied) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        d.message_id = self._id_ref(d.message_id)
        d.thread_id = self._id_ref(d.thread_id)
        if d.in_reply_to is not None:
            d.in_reply_to = self._id_ref(d.in_reply_to)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    def _closed(self, event: MailClosed) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        d.thread_id = self._id_ref(d.thread_id)
        if not _TOKEN(event.id):
            event.id = self._id_ref(event.id)
        return None

    # -- from a topic: the shapes `accept` made, checked; raw personal fields still handled -------

    @staticmethod
    def _published_envelope(event: Any) -> str | None:
        if not _TOKEN(event.id):
            return _not_token("id")
        return None

    def _published_call(self, event: Any) -> str | None:
        if not _TOKEN(event.data.call_id):
            return _not_token("data.call_id")
        return self._published_envelope(event)

    def _published_offered(self, event: CallOffered) -> str | None:
        d = event.data
        if d.caller is not None:  # a raw number on a topic: pseudonymised as `accept` would
            if d.caller:
                d.caller_ref = self._caller_ref(d.caller)
            d.caller = None
        if d.caller_ref is not None and not _PSEUDONYM(d.caller_ref):
            return _not_pseudonym("data.caller_ref")
        return self._published_call(event)

    def _published_queued(self, event: CallQueued | CallAbandoned | CallbackRequested | CallExited) -> str | None:
        if event.data.queue not in self._queues:
            return _unknown_queue("queue", event.data.queue)
        return self._published_call(event)

    def _published_answered(self, event: CallAnswered) -> str | None:
        d = event.data
        if d.queue not in self._queues:
            return _unknown_queue("queue", d.queue)
        if not _PSEUDONYM(d.agent):
            return _not_pseudonym("data.agent")
        return self._published_call(event)

    def _published_transferred(self, event: CallTransferred) -> str | None:
        d = event.data
        if d.queue not in self._queues:
            return _unknown_queue("queue", d.queue)
        if d.to_queue not in self._queues:
            return _unknown_queue("to_queue", d.to_queue)
        return self._published_call(event)

    def _published_ended(self, event: CallEnded) -> str | None:
        return self._published_call(event)

    def _published_agent_state(self, event: AgentStateChanged) -> str | None:
        d = event.data
        for i, queue in enumerate(d.queues):
            if queue not in self._queues:
                return _unknown_queue(f"queues[{i}]", queue)
        if not _PSEUDONYM(d.agent):
            return _not_pseudonym("data.agent")
        return self._published_envelope(event)

    def _published_received(self, event: MailReceived) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        if d.sender is not None:
            if d.sender:
                d.sender_ref = self._sender_ref(d.sender)
            d.sender = None
        if d.sender_ref is not None and not _PSEUDONYM(d.sender_ref):
            return _not_pseudonym("data.sender_ref")
        if d.categories:
            kept = self.pseudonymiser.published_categories(d.mailbox, d.categories)
            if kept != d.categories:
                d.categories = kept
        if d.subject is not None:  # a raw subject on a topic: classified as `accept` would, dropped
            derived = self.pseudonymiser.categories(d.mailbox, d.subject)
            d.categories = d.categories + [c for c in derived if c not in d.categories]
            d.subject = None
        return self._published_thread(event, d.message_id) or self._published_envelope(event)

    def _published_replied(self, event: MailReplied) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        if d.in_reply_to is not None and not _PSEUDONYM(d.in_reply_to):
            return _not_pseudonym("data.in_reply_to")
        return self._published_thread(event, d.message_id) or self._published_envelope(event)

    def _published_closed(self, event: MailClosed) -> str | None:
        d = event.data
        if d.mailbox not in self._mailboxes:
            return _unknown_mailbox(d.mailbox)
        return self._published_thread(event, None) or self._published_envelope(event)

    @staticmethod
    def _published_thread(event: MailReceived | MailReplied | MailClosed, message_id: str | None) -> str | None:
        if message_id is not None and not _PSEUDONYM(message_id):
            return _not_pseudonym("data.message_id")
        if not _PSEUDONYM(event.data.thread_id):
            return _not_pseudonym("data.thread_id")
        return None


class _SourceOnly(msgspec.Struct, gc=False):
    source: str = ""


_source_only = msgspec.json.Decoder(_SourceOnly).decode


def claimed_source(raw: bytes | str | None) -> str:
    """The `source` a rejected input names, for source health; '' when it names none that is
    a valid source name (not JSON, no such field, a value that is no short name)."""
    try:
        source = _source_only(raw).source if raw is not None else ""
    except Exception:  # any input that does not decode to an object with a string `source`
        return ""
    return source if _SOURCE(source) else ""


def _not_pseudonym(field: str) -> str:
    return f"{field}: not a pseudonym (32 hex digits){_AROUND}"


def _not_token(field: str) -> str:
    return f"{field}: not a token ([A-Za-z0-9._:-], at most 128 characters){_AROUND}"
