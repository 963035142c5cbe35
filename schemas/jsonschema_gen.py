"""JSON Schemas (draft 2020-12) generated from the msgspec models, committed in schemas/jsonschema/.

The models in schemas/events.py and schemas/agreements.py are the source of truth; the JSON
Schemas are for everything that is not this Python code (other producers, editors, contract
tests). They are generated, never edited by hand:

    availability generate            # (re)write them, with the dashboards and alert rules
    availability generate --check    # exit 1, listing the drifted files, writing nothing

Files: `event.schema.json` (the whole tagged union on `type`), one `<type>.schema.json` per
event type (`call.offered.schema.json`, ...) and `agreements.schema.json` (the file's shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from schemas import events
from schemas.agreements import ID_PATTERN, AgreementsFile
from schemas.events import EVENT_TYPES, Event

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://availability.example/schemas/"
OUT_DIR = Path("schemas/jsonschema")  # repository-relative

# msgspec renders `Annotated[datetime, Meta(tz=True)]` as {"type": "string", "format": "date-time"}:
# nothing in it says that the offset is required, and `format` is only an annotation unless a
# validator opts in to format assertion. So the envelope's `time` gets a pattern requiring the
# RFC 3339 time-offset at the end (`Z`, or `+hh:mm` / `-hh:mm`; RFC 3339 allows a lower-case
# `z`, and so does msgspec), which makes a time without offset invalid under the schema as it is
# at the ingest boundary. msgspec's decoder alone also takes `+0200`, which is not RFC 3339; the
# boundary rejects it (ingest/boundary.py), so schema and boundary agree on the offset.
MSGSPEC_DATETIME: Schema = {"type": "string", "format": "date-time"}
TIME_OFFSET_PATTERN = r"([Zz]|[+-]\d{2}:\d{2})$"
TIME_DESCRIPTION = "RFC 3339 timestamp with offset (`Z` or `+02:00`) of the moment it happened (event time)."

# spec/events.md, one line per type.
EVENT_DESCRIPTIONS = {
    "call.offered": "The call reached the switch (before the DTMF menu).",
    "call.queued": "The caller chose a process (tonval) and entered that queue.",
    "call.answered": "An agent was connected.",
    "call.abandoned": "The caller hung up while waiting in the queue.",
    "call.transferred": "The call left `queue` for `to_queue` before being answered (overflow or menu transfer).",
    "call.callback_requested": "The caller left the queue asking to be called back.",
    "call.exited": "The switch routed the caller out of the queue unanswered (time-out, exit key, full, no agents).",
    "call.ended": "The call was disconnected (after talk, in the menu, or while queued).",
    "agent.state": "An agent's state changed.",
    "mail.received": "A message arrived in the function mailbox.",
    "mail.replied": "The mailbox sent a reply in the thread.",
    "mail.closed": "The case was finished without a reply.",
}

_BEFORE_BOUNDARY = "Personal data: only before the ingest boundary, which replaces it with "
_SET_BY_INGEST = "; a source must not send it (the event is rejected): it is set by ingest, not by a source."
_HASHED_ID = (
    "As the source sends it; it can hold an address, so ingest replaces it with its keyed hash "
    "(HMAC-SHA256, 32 hex digits), the same for the same value."
)
_CALL_ID = "The call's id. Kept if a short token (`[A-Za-z0-9._:-]{1,128}`), else replaced by its keyed hash by ingest."
_AGENT = "An employee's agent id (personal data): ingest replaces it with its keyed hash (HMAC-SHA256, 32 hex digits)."
FIELD_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("CallOfferedData", "caller"): _BEFORE_BOUNDARY + "`caller_ref`.",
    ("CallOfferedData", "caller_ref"): "Keyed hash (HMAC-SHA256, 32 hex digits) of the caller" + _SET_BY_INGEST,
    ("MailReceivedData", "sender"): _BEFORE_BOUNDARY + "`sender_ref`.",
    ("MailReceivedData", "subject"): _BEFORE_BOUNDARY + "`categories`.",
    ("MailReceivedData", "sender_ref"): "Keyed hash (HMAC-SHA256, 32 hex digits) of the sender" + _SET_BY_INGEST,
    ("MailReceivedData", "categories"): (
        "`priority` (the source's flag, any letter case) and the priority-keyword stems matched in the "
        "subject, set by ingest; any other value a source sends is dropped (it may hold personal data)."
    ),
    ("CallAnsweredData", "agent"): _AGENT,
    ("AgentStateData", "agent"): _AGENT,
    ("MailReceivedData", "message_id"): _HASHED_ID,
    ("MailReceivedData", "thread_id"): _HASHED_ID,
    ("MailRepliedData", "message_id"): _HASHED_ID,
    ("MailRepliedData", "thread_id"): _HASHED_ID,
    ("MailRepliedData", "in_reply_to"): _HASHED_ID,
    ("MailClosedData", "thread_id"): _HASHED_ID,
} | {
    (owner, "call_id"): _CALL_ID
    for owner in (
        "CallOfferedData",
        "CallQueuedData",
        "CallAnsweredData",
        "CallQueueData",
        "CallTransferredData",
        "CallExitedData",
        "CallEndedData",
    )
}
# The envelope's fields that ingest checks or changes. `source` becomes a metrics label and a
# key, so it is a short name; the decoder leaves that check to the boundary (a set lookup per
# event instead of a pattern), the schema states it for producers.
SOURCE_PATTERN = f"^{events.SOURCE_PATTERN}$"
ENVELOPE_DESCRIPTIONS = {
    "id": (
        "Unique per event at its source (with `source`, the de-duplication key). Kept if a short token "
        "(`[A-Za-z0-9._:-]{1,128}`), else replaced by its keyed hash by ingest."
    ),
    "source": "Where the event came from, a short name such as `callguide` or `imap/kundreskontra`.",
    "subject": "Informative (the call id or `mailbox/thread_id`); dropped by ingest.",
    "datacontenttype": "`application/json`; any other value is dropped by ingest.",
    "pseudonymised": (
        "Set only in files written by `availability import --out`: the fingerprint of the key the event was "
        "pseudonymised with. Ingest checks it equals its own key's, checks the shape instead of hashing again, "
        "and drops it."
    ),
}


def generate() -> dict[str, Schema]:
    """File name -> JSON Schema, for every file in schemas/jsonschema/."""
    schemas: dict[str, Schema] = {
        "event.schema.json": _document(
            "event.schema.json",
            _post_process(msgspec.json.schema(Event)),
            title="Event",
            description=(
                "A canonical event (spec/events.md): a CloudEvents 1.0 envelope in structured JSON, "
                "a tagged union on `type`."
            ),
        )
    }
    for cls in EVENT_TYPES:
        name = str(cls.__struct_config__.tag)
        schemas[f"{name}.schema.json"] = _document(
            f"{name}.schema.json",
            _hoist(_post_process(msgspec.json.schema(cls))),
            title=name,
            description=EVENT_DESCRIPTIONS[name],
        )
    schemas["agreements.schema.json"] = _document(
        "agreements.schema.json",
        _agreement_ids(_hoist(msgspec.json.schema(AgreementsFile))),
        title="Service agreements",
        description=(
            "The service-agreements file (spec/agreements.md), written in YAML. This schema checks "
            "its shape; the loader also checks calendar references, durations, targets between 0 "
            "and 1, weekdays, named days and the time zone."
        ),
    )
    return schemas


def files() -> dict[Path, str]:
    """Repository-relative path -> text of every generated schema file."""
    return {OUT_DIR / name: render(schema) for name, schema in generate().items()}


def render(schema: Schema) -> str:
    """The committed text of a schema: deterministic, so a diff means a change."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _document(filename: str, schema: Schema, *, title: str, description: str) -> Schema:
    head: Schema = {"$schema": DRAFT, "$id": BASE_ID + filename, "title": title, "description": description}
    return head | {k: v for k, v in schema.items() if k not in head}


def _hoist(schema: Schema) -> Schema:
    """`{"$ref": "#/$defs/X", "$defs": {...}}` -> X itself at the root, with the other $defs."""
    ref = schema["$ref"]
    defs: Schema = dict(schema["$defs"])
    name = ref.removeprefix("#/$defs/")
    if json.dumps(ref) in json.dumps(defs):  # a recursive model cannot be hoisted; none of ours is
        raise ValueError(f"{name} refers to itself")
    root: Schema = defs.pop(name)
    return root | ({"$defs": defs} if defs else {})


def _agreement_ids(schema: Schema) -> Schema:
    """Queue and mailbox ids are keys, labels and file names: the loader's id rule, stated."""
    for section in ("queues", "mailboxes"):
        schema["properties"][section]["propertyNames"] = {"pattern": f"^{ID_PATTERN}$"}
    return schema


def _post_process(schema: Schema) -> Schema:
    """The time offset and source patterns and the field descriptions, on the envelope and data $defs."""
    envelopes = {cls.__name__ for cls in EVENT_TYPES}
    for name, definition in schema["$defs"].items():
        properties: Schema = definition.get("properties", {})
        if name in envelopes:
            if properties.get("time") != MSGSPEC_DATETIME:
                # Fail loudly if msgspec ever changes this, so the pattern is reviewed, not stacked.
                raise RuntimeError(f"{name}.time: unexpected msgspec schema {properties.get('time')!r}")
            properties["time"] = MSGSPEC_DATETIME | {"pattern": TIME_OFFSET_PATTERN, "description": TIME_DESCRIPTION}
            properties["source"] = properties["source"] | {"pattern": SOURCE_PATTERN}
            for field, text in ENVELOPE_DESCRIPTIONS.items():
                properties[field] = properties[field] | {"description": text}
        for (owner, field), text in FIELD_DESCRIPTIONS.items():
            if owner == name:
                properties[field] = properties[field] | {"description": text}
    return schema
