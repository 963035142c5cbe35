"""Source health on the worker's /metrics: per source, inputs stored and rejected, and the
rejects by kind of reason, so that an adapter that starts rejecting is seen (docs/sources.md).
The time of each source's newest event and of its last input are the live metrics'
(`availability_source_last_event_timestamp_seconds`, `…_last_seen_…`, stream_jobs/core/live.py);
the same counts, kept in the warehouse, make `availability sources`.

Label values stay bounded and free of personal data: the source label is the live metrics' (a
known source by name, any other `other`), a reason becomes its kind (quoted values and numbers
masked: an unknown queue's name is no label), at most MAX_REASONS kinds a source, then `(other)`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from schemas.events import Event

MAX_REASONS = 20
OTHER_REASON = "(other)"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_kind(reason: str) -> str:
    """A rejection reason without its values: `data.queues[2]: unknown queue 'x'` and the same with
    another queue or index are one kind."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))[:120]


class SourceHealth(Collector):
    def __init__(self, label: Callable[[str], str]) -> None:
        self.label = label  # source -> its label (LiveState.source_label)
        self.stored: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()  # (source label, reason kind)

    def observe(self, events: Sequence[Event], rejected: Iterable[tuple[str, str]]) -> None:
        """One batch: the events stored, and (claimed source, reason) of each rejected input."""
        label = self.label
        for event in events:
            self.stored[label(event.source)] += 1
        for claimed, reason in rejected:
            source, kind = label(claimed), reason_kind(reason)
            if (source, kind) not in self.rejected and sum(s == source for s, _ in self.rejected) >= MAX_REASONS:
                kind = OTHER_REASON
            self.rejected[source, kind] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        events = CounterMetricFamily(
            "availability_source_events", "Inputs per source: events stored, or rejected", labels=["source", "outcome"]
        )
        rejects = CounterMetricFamily(
            "availability_source_rejects", "Rejected inputs per source and kind of reason", labels=["source", "reason"]
        )
        rejected_by_source: Counter[str] = Counter()
        for (source, kind), n in sorted(self.rejected.items()):
            rejects.add_metric([source, kind], n)
            rejected_by_source[source] += n
        for source in sorted(set(self.stored) | set(rejected_by_source)):
            events.add_metric([source, "stored"], self.stored[source])
            events.add_metric([source, "rejected"], rejected_by_source[source])
        yield from (events, rejects)
