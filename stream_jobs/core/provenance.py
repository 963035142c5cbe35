"""Which rules and agreements derived a fact: the derivation inputs, their fingerprint (stored on
every contact and case), and the calendars they held, rebuilt to compare them with others.

The inputs are what a derived fact depends on: the version of the derivation rules (this code),
the agreements' time zone, and per queue and mailbox its calendar and the thresholds decided when
a fact is derived. Names and the targets (service_level_target, answer_rate_target) are left out:
reports read those at report time. So are the mailboxes' priority keywords: a subject is
classified at the ingest boundary and never stored, so past mail cannot be classified again, and
new keywords apply to mail received after the change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

from schemas.agreements import Agreements
from schemas.calendar import Calendar, DayRule, Interval

# The derivation rules' version: change it when the derivation code (calls.py, mail.py) changes
# what it derives from the same events, so reports flag facts derived by the earlier rules.
RULES = "2026-11-28 contract v2"


def calendar_inputs(c: Calendar) -> dict[str, Any]:
    """A calendar as plain data (sorted: the order it was written in changes nothing)."""

    def spans(intervals: tuple[Interval, ...]) -> list[list[int]]:
        return [[i.start, i.end] for i in intervals]

    return {
        "holidays": c.holidays,
        "hours": {str(day): spans(iv) for day, iv in sorted(c.hours.items())},
        "closed": sorted(r.name for r in c.closed),
        "reduced": {r.name: spans(iv) for r, iv in sorted(c.reduced, key=lambda item: item[0].name)},
    }


def calendar_of(data: dict[str, Any], tz: ZoneInfo) -> Calendar:
    """The calendar `calendar_inputs` wrote (with today's public holidays of its country)."""

    def intervals(spans: list[list[int]]) -> tuple[Interval, ...]:
        return tuple(Interval(a, b) for a, b in spans)

    return Calendar(
        tz,
        hours={int(day): intervals(spans) for day, spans in data["hours"].items()},
        holidays=data["holidays"],
        closed=tuple(DayRule(name) for name in data["closed"]),
        reduced=tuple((DayRule(name), intervals(spans)) for name, spans in data["reduced"].items()),
    )


def derivation_inputs(agreements: Agreements) -> dict[str, Any]:
    """What the facts derived with these agreements depend on (module doc), as plain data."""
    return {
        "rules": RULES,
        "timezone": str(agreements.timezone),
        "queues": {
            q.id: {
                "calendar": calendar_inputs(q.calendar),
                "service_level_seconds": q.service_level_seconds,
                "short_abandon_seconds": q.short_abandon_seconds,
                "extra_service_levels": sorted(q.extra_service_levels),
            }
            for q in agreements.queues.values()
        },
        "mailboxes": {
            m.id: {
                "calendar": calendar_inputs(m.calendar),
                "response_target_seconds": m.response_target_seconds,
                "priority_response_target_seconds": m.priority_response_target_seconds,
            }
            for m in agreements.mailboxes.values()
        },
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    """A short, stable digest of `derivation_inputs`: equal inputs, equal fingerprints."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
