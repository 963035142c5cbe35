"""The one batching sink of the stream path: Kafka messages -> the Deriver -> ClickHouse.

Kafka-agnostic, so it is tested without a broker. `write()` returns only when the warehouse
acknowledged the batch (and the dead-letter topic every rejected message), so the caller
commits the batch's offsets after it, never before. A crash in between leaves them
uncommitted and Kafka delivers them again; the Deriver makes the repeat harmless. That is
the whole crash-safety argument: nothing lost, nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ingest.boundary import Boundary
from schemas.events import Event
from stream_jobs.deriver import BatchResult, Deriver

log = logging.getLogger(__name__)

# (value, key, reason) -> returns once the dead-letter topic acknowledged it.
DeadLetter = Callable[[bytes, bytes | None, str], None]


class Message(NamedTuple):
    value: bytes
    key: bytes | None
    published: float  # the Kafka timestamp, epoch seconds


@dataclass
class SinkStats:
    processed: int = 0
    rejected: int = 0
    batches: int = 0
    # (events stored, rejected, seconds the batch took, per message: seconds since it was published)
    observers: list[Callable[[int, int, float, list[float]], None]] = field(default_factory=list)


class WarehouseSink:
    def __init__(self, boundary: Boundary, deriver: Deriver, dead_letter: DeadLetter) -> None:
        self.boundary = boundary
        self.deriver = deriver
        self.dead_letter = dead_letter
        self.stats = SinkStats()
        # Called with each stored batch and the Deriver's result (the live metrics).
        self.on_stored: list[Callable[[Sequence[Event], BatchResult], None]] = []

    def write(self, messages: Sequence[Message]) -> None:
        """Validate, store and derive a batch; returns when it is all acknowledged.

        Raises if the warehouse fails: then nothing of the batch may be committed.
        """
        started = time.monotonic()
        events: list[Event] = []
        for m in messages:
            accepted = self.boundary.accept(m.value)
            if isinstance(accepted, str):
                # Kept on the dead-letter topic, as received, with the reason in a header.
                self.dead_letter(m.value, m.key, accepted)
                log.warning("rejected a message: %s", accepted)
            else:
                events.append(accepted)
        result = self.deriver.apply(events)
        self.deriver.warehouse.flush()
        stored_at = time.time()  # the rows are queryable from here on
        for hook in self.on_stored:
            hook(events, result)
        rejected = len(messages) - len(events)
        self.stats.processed += len(events)
        self.stats.rejected += rejected
        self.stats.batches += 1
        elapsed = time.monotonic() - started
        latencies = [stored_at - m.published for m in messages]
        for observe in self.stats.observers:
            observe(len(events), rejected, elapsed, latencies)
