"""What a source adapter gives for each record of its input (a line, a row, a message).

A record stands for canonical events as a source would send them (spec/events.md; personal
data such as `caller`, `sender`, `subject` and agent names still raw, since the ingest boundary
pseudonymises them), or it says why it stands for none. Every record of an input is accounted
for: its events, an ignore (not a contact by design: a QUEUESTART line, a ring that was not
answered) or a rejection (it should be an event and cannot be read), each with a reason that is
counted. An adapter may give a record late (after later records resolved it, as a transfer's
second queue entry), but it gives each record exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.events import utc_z


@dataclass(frozen=True, slots=True)
class Record:
    origin: str  # where it was read, for a person: "queue_log:12", "calls.csv:7", "cur/41.eml"
    events: tuple[dict[str, Any], ...] = ()
    ignored: str | None = None  # why it is no event by design (counted by reason, not kept)
    rejected: str | None = None  # why it could not be read (kept in the rejects with `text`)
    text: str = ""  # the record as read; only for a rejected one (the rejects file is private)


def raw_event(type_name: str, event_id: str, source: str, time: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as a source sends it (a CloudEvents dict; `time` must be aware)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_name,
        "time": utc_z(time),
        "data": data,
    }


def stable_id(*parts: object) -> str:
    """An event id made of the record's identity, the same however often the input is read (a
    re-import, a rotated log read twice): the boundary de-duplicates on it. A short token when
    the parts make one; otherwise the boundary hashes it."""
    text = ":".join(str(p) for p in parts)
    if len(text) <= 128:
        return text
    return f"{parts[0]}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"
