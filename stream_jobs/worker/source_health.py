"""Source health on the worker's /metrics: per source, events stored, inputs rejected by reason,
and the time of its newest event, so that an adapter that silently stops or starts rejecting is
seen (docs/sources.md). The same counts, kept in the warehouse, make `availability sources`.

Label values stay bounded: a reason becomes its kind (quoted values and numbers masked: an unknown
queue's name is no label), at most MAX_REASONS kinds a source and MAX_SOURCES sources; beyond,
`(other)`. A rejected input that names no valid source counts under the source ''.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.events import Event

MAX_SOURCES = 100
MAX_REASONS = 20
OTHER = "(other)"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_kind(reason: str) -> str:
    """A rejection reason without its values: `data.queues[2]: unknown queue 'x'` and the same with
    another queue or index are one kind."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))[:120]


class SourceHealth(Collector):
    def __init__(self) -> None:
        self.stored: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()  # (source, reason kind)
        self.newest: dict[str, float] = {}  # source -> its newest stored event's time (epoch s)
        self.received: dict[str, float] = {}  # source -> when its last input arrived (wall clock)
        self._now = time.time  # tests set it

    def observe(self, events: Sequence[Event], rejected: Iterable[tuple[str, str]]) -> None:
        """One batch: the events stored, and (source, reason) of each rejected input."""
        now = self._now()
        for event in events:
            source = self._source(event.source)
            self.stored[source] += 1
            self.received[source] = now
            t = event.time.timestamp()
            if t > self.newest.get(source, float("-inf")):
                self.newest[source] = t
        for claimed, reason in rejected:
            source = self._source(claimed)
            kind = reason_kind(reason)
            if (source, kind) not in self.rejected and sum(1 for s, _ in self.rejected if s == source) >= MAX_REASONS:
                kind = OTHER
            self.rejected[source, kind] += 1
            self.received[source] = now

    def _source(self, source: str) -> str:
        known = source in self.stored or source in self.received
        return source if known or len(self.received) < MAX_SOURCES else OTHER

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily(
            "availability_source_events", "Inputs per source: events stored, or rejected", labels=["source", "outcome"]
        )
        rejects = CounterMetricFamily(
            "availability_source_rejects", "Rejected inputs per source and kind of reason", labels=["source", "reason"]
        )
        newest = GaugeMetricFamily(
            "availability_source_newest_event_timestamp_seconds",
            "The event time of the newest event stored from the source",
            labels=["source"],
        )
        received = GaugeMetricFamily(
            "availability_source_last_received_timestamp_seconds",
            "When this worker last received an input from the source (stored or rejected)",
            labels=["source"],
        )
        rejected_by_source: Counter[str] = Counter()
        for (source, kind), n in sorted(self.rejected.items()):
            rejects.add_metric([source, kind], n)
            rejected_by_source[source] += n
        for source in sorted(self.received):
            events.add_metric([source, "stored"], self.stored[source])
            events.add_metric([source, "rejected"], rejected_by_source[source])
            received.add_metric([source], self.received[source])
            if source in self.newest:
                newest.add_metric([source], self.newest[source])
        yield from (events, rejects, newest, received)
