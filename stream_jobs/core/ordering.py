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
    in_order = sorted(events, key=lambda e: (e.time, tie_order[type(e)], e.source, e.id))
    # Built from the back, so for each (source, id) the position kept is the first in order.
    first = {(e.source, e.id): i for i, e in reversed(list(enumerate(in_order)))}
    if len(first) == len(in_order):
        return in_order
    return [in_order[i] for i in sorted(first.values())]
