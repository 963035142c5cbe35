"""Shared test fixtures: agreements like the spec's example, and an event builder."""

from __future__ import annotations

import os
from itertools import count
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.agreements import Agreements, parse_agreements
from schemas.events import Event, decode

# The spec's example calendar (agreements.md), two queues and one mailbox.
AGREEMENTS: dict[str, Any] = {
    "timezone": "Europe/Stockholm",
    "calendars": {
        "kontor": {
            "holidays": "SE",
            "closed": ["midsommarafton", "julafton", "nyarsafton"],
            "hours": {
                "mon": ["08:00-12:00", "13:00-16:30"],
                "tue": ["08:00-16:30"],
                "wed": ["08:00-16:30"],
                "thu": ["08:00-16:30"],
                "fri": ["08:00-16:00"],
            },
            "reduced": {"valborgsmassoafton": ["08:00-13:00"]},
        }
    },
    "queues": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "service_level_seconds": 60,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        },
        "avgifter": {
            "name": "Avgifter",
            "calendar": "kontor",
            "service_level_seconds": 120,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        },
    },
    "mailboxes": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "response_target": "8h",
            "priority_response_target": "4h",
        }
    },
}

SHARED = Path(os.environ.get("AVAILABILITY_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
EXAMPLES = SHARED / "examples"


@pytest.fixture(scope="session")
def agreements() -> Agreements:
    return parse_agreements(AGREEMENTS)


_ids = count(1)


def ev(type_: str, time: str, source: str = "callguide", id: str | None = None, **data: Any) -> Event:
    """One canonical event, built through the real decoder (so it is valid by the contract)."""
    raw = {
        "specversion": "1.0",
        "id": id or f"t{next(_ids)}",
        "source": source,
        "type": type_,
        "time": time,
        "data": data,
    }
    return decode(msgspec.json.encode(raw))


def call(call_id: str, *steps: tuple[str, str, dict[str, Any]]) -> list[Event]:
    """Events of one call from (type suffix, time, data) steps: ("queued", "…", {"queue": "x"})."""
    return [ev(f"call.{kind}", t, call_id=call_id, **data) for kind, t, data in steps]
