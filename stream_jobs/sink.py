"""The one batching sink of the stream path: Kafka messages -> the Deriver -> ClickHouse.

Faust-agnostic, so it is tested without a broker: each message comes with an `ack` callable,
and acks are called only after the warehouse acknowledged the batch that holds the message
(or, for an invalid message, after the dead-letter topic acknowledged it). A crash before
that leaves the message uncommitted, and Kafka delivers it again; the Deriver makes the
repeat harmless. That is the whole crash-safety argument: nothing lost, nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.boundary import Boundary
from schemas.events import Event
from stream_jobs.deriver import Deriver

log = logging.getLogger(__name__)

Ack = Callable[[], object]
# (value, key, reason) -> returns once the dead-letter topic acknowledged it.
DeadLetter = Callable[[bytes, bytes | None, str], None]


@dataclass
class SinkStats:
    processed: int = 0
    rejected: int = 0
    batches: int = 0
    last_batch_seconds: float = 0.0
    observers: list[Callable[[int, int, float], None]] = field(default_factory=list)


class WarehouseSink:
    def __init__(
        self,
        boundary: Boundary,
        deriver: Deriver,
        dead_letter: DeadLetter,
        *,
        max_events: int = 5000,
        max_seconds: float = 0.5,
    ) -> None:
        self.boundary = boundary
        self.deriver = deriver
        self.dead_letter = dead_letter
        self.max_events = max_events
        self.max_seconds = max_seconds
        self.stats = SinkStats()
        self._events: list[Event] = []
        self._acks: list[Ack] = []
        self._oldest: float | None = None

    def add(self, value: bytes, key: bytes | None, ack: Ack) -> None:
        """Take one message; flush when the batch is full."""
        accepted = self.boundary.accept(value)
        if isinstance(accepted, str):
            # Rejected: kept on the dead-letter topic with its reason, then acknowledged.
            self.dead_letter(value, key, accepted)
            self.stats.rejected += 1
            log.warning("rejected a message: %s", accepted)
            self._acks.append(ack)
        else:
            self._events.append(accepted)
            self._acks.append(ack)
        if self._oldest is None:
            self._oldest = time.monotonic()
        if len(self._acks) >= self.max_events:
            self.flush()

    def due(self) -> bool:
        return self._oldest is not None and time.monotonic() - self._oldest >= self.max_seconds

    def flush(self) -> int:
        """Store the batch, wait for the warehouse's acknowledgement, then ack the messages.

        Raises if the warehouse fails; the messages stay unacknowledged (and are kept for the
        next attempt), so Kafka will not consider them processed.
        """
        if not self._acks:
            return 0
        started = time.monotonic()
        events, acks = self._events, self._acks
        self.deriver.apply(events)
        self.deriver.warehouse.flush()
        self._events, self._acks, self._oldest = [], [], None
        for ack in acks:
            ack()
        elapsed = time.monotonic() - started
        self.stats.processed += len(events)
        self.stats.batches += 1
        self.stats.last_batch_seconds = elapsed
        for observe in self.stats.observers:
            observe(len(events), len(acks) - len(events), elapsed)
        return len(acks)
