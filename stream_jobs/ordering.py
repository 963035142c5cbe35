"""The canonical order of one entity's events, shared by the derivations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from schemas.events import Event

E = TypeVar("E", bound=Event)


def ordered(events: Iterable[E], tie_order: Mapping[type, int]) -> list[E]:
    """Sort by time (ties by `tie_order` of the event class), keep the first of each (source, id).

    Sorting before folding is what makes a derivation independent of arrival order and
    duplicates.
    """
    seen: set[tuple[str, str]] = set()
    out = []
    for ev in sorted(events, key=lambda e: (e.time, tie_order[type(e)], e.source, e.id)):
        if (ev.source, ev.id) not in seen:
            seen.add((ev.source, ev.id))
            out.append(ev)
    return out
