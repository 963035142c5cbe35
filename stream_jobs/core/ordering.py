"""The canonical order of one entity's events, and which of two same-id events is kept.

Shared by the derivations and the Deriver, so both keep the same event of a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TypeVar

from schemas.events import Event, encode

E = TypeVar("E", bound=Event)


def preferred(a: E, b: E) -> E:
    """Of two events with the same source and id, the one kept: the one whose canonical JSON sorts
    first. Equal events are one event; for a conflict (spec/events.md: same source and id,
    different content) any fixed rule would do, and this one does not depend on arrival order."""
    return a if a == b or encode(a) <= encode(b) else b


def digest(event: Event) -> str:
    """A short fingerprint of an event's content: tells the versions of a conflict apart."""
    return hashlib.blake2b(encode(event), digest_size=8).hexdigest()


def conflict_key(other: Event) -> tuple[str, str, str]:
    """What identifies a conflict's other version: (source, id, its digest). Each is counted once
    (the event_conflicts table's sort key, the memory store's and the live state's sets)."""
    return other.source, other.id, digest(other)


def ordered(events: Iterable[E], tie_order: Mapping[type, int]) -> list[E]:
    """Sort by time (ties by `tie_order` of the event class), keep one event of each (source, id)
    (`preferred`).

    Sorting before folding is what makes a derivation independent of arrival order and
    duplicates.
    """
    in_order = sorted(events, key=lambda e: (e.time, tie_order[type(e)], e.source, e.id))
    kept: dict[tuple[str, str], int] = {}
    for i, e in enumerate(in_order):
        key = (e.source, e.id)
        j = kept.get(key)
        if j is None or preferred(in_order[j], e) is not in_order[j]:
            kept[key] = i
    if len(kept) == len(in_order):
        return in_order
    return [in_order[i] for i in sorted(kept.values())]
