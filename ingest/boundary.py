"""The ingest boundary: raw bytes -> a valid, pseudonymised canonical event, or a reason.

Every source (JSONL files, the CallGuide webhook, IMAP pollers) passes through `Boundary`.
Errors are data: an invalid event becomes a reason string, never an exception.
"""

from __future__ import annotations

import msgspec

from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements
from schemas.events import (
    AgentStateData,
    CallAnsweredData,
    CallQueueData,
    CallQueuedData,
    CallTransferredData,
    Event,
    MailClosedData,
    MailReceivedData,
    MailRepliedData,
    decode,
)

_MAILBOX_DATA = (MailReceivedData, MailRepliedData, MailClosedData)
_QUEUE_DATA = (CallQueuedData, CallAnsweredData, CallQueueData, CallTransferredData)


def reason_of(exc: msgspec.MsgspecError) -> str:
    """msgspec's message, reworded for a person reading a rejects file."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return f"not valid JSON ({text.removeprefix('JSON is malformed: ')})"
    message, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    if path == "type" and message.startswith("Invalid value"):
        return f"unknown type {message.removeprefix('Invalid value ')}"
    if "with a timezone component" in message:
        return f"{path}: no UTC offset (write Z or +02:00)"
    message = message.replace("Object missing required field", "missing required field")
    message = message[:1].lower() + message[1:]
    return f"{path}: {message}" if path else message


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
        if data.mailbox not in agreements.mailboxes:
            return f"data.mailbox: unknown mailbox '{data.mailbox}' (not in the agreements)"
        return None
    else:
        return None
    for field, queue in names:
        if queue not in agreements.queues:
            return f"data.{field}: unknown queue '{queue}' (not in the agreements)"
    return None


class Boundary:
    def __init__(self, agreements: Agreements, pseudonymiser: Pseudonymiser) -> None:
        self.agreements = agreements
        self.pseudonymiser = pseudonymiser

    def accept(self, raw: bytes | str) -> Event | str:
        """The canonical event as it may travel on, or why it was rejected."""
        try:
            event = decode(raw)
        except msgspec.MsgspecError as exc:
            return reason_of(exc)
        problem = unknown_reference(event, self.agreements)
        if problem is not None:
            return problem
        return self.pseudonymiser.apply(event)
