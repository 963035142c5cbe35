"""A source adapter's records -> canonical events through the ingest boundary, every record
accounted for: its events accepted (or each refused by the boundary, with the record's origin),
or the record ignored or rejected by the adapter, each counted by reason (docs/sources.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from ingest.boundary import Boundary, Rejection
from ingest.sources.records import Record
from schemas.events import Event

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the adapter could not read, or one of its events the boundary refused: for the
    rejects file (which is private: `text` may hold personal data)."""

    origin: str
    reason: str
    text: str


@dataclass
class ImportStats:
    records: int = 0
    events: int = 0  # accepted by the boundary
    ignored: Counter[str] = field(default_factory=Counter)  # records, by reason
    rejected: Counter[str] = field(default_factory=Counter)  # records the adapter could not read
    refused: Counter[str] = field(default_factory=Counter)  # events the boundary refused
    newest: datetime | None = None  # the newest accepted event's time

    @property
    def refusals(self) -> int:
        """Rejected records and refused events: what the rejects hold."""
        return sum(self.rejected.values()) + sum(self.refused.values())

    def summary(self) -> str:
        """One line: records = with events + ignored + rejected; events accepted and refused."""
        with_events = self.records - sum(self.ignored.values()) - sum(self.rejected.values())
        return (
            f"{self.records} records: {with_events} with events, {sum(self.ignored.values())} ignored, "
            f"{sum(self.rejected.values())} rejected; {self.events} events accepted, "
            f"{sum(self.refused.values())} refused by the boundary"
        )

    def by_reason(self) -> Iterator[str]:
        """The counts behind the summary, a line per reason, most frequent first."""
        for kind, counts in (("ignored", self.ignored), ("rejected", self.rejected), ("refused", self.refused)):
            for reason, n in counts.most_common():
                yield f"  {n:>7} {kind}: {reason}"


def accept_records(
    records: Iterable[Record],
    boundary: Boundary,
    stats: ImportStats,
    on_refused: Callable[[Refused], None],
) -> Iterator[Event]:
    """The accepted events of `records`, in order; everything else counted in `stats` and the
    refused records and events handed to `on_refused`."""
    accept = boundary.accept
    for record in records:
        stats.records += 1
        if record.rejected is not None:
            stats.rejected[record.rejected] += 1
            on_refused(Refused(record.origin, record.rejected, record.text))
            continue
        if record.ignored is not None or not record.events:
            stats.ignored[record.ignored or "no event"] += 1
            continue
        for raw in record.events:
            try:
                line = _encode(raw)
            except (TypeError, ValueError, OverflowError) as exc:  # an adapter's bug, still only this event
                outcome: Event | Rejection = Rejection(f"cannot be encoded ({type(exc).__name__})")
                line = b""
            else:
                outcome = accept(line, record.origin)
            if isinstance(outcome, Rejection):
                stats.refused[outcome.reason] += 1
                on_refused(Refused(record.origin, outcome.reason, line.decode("utf-8", "replace")))
                continue
            stats.events += 1
            if stats.newest is None or outcome.time > stats.newest:
                stats.newest = outcome.time
            yield outcome
