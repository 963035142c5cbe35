"""The in-process replay: JSONL files -> the ingest boundary -> the Deriver -> its store (the warehouse).

The same derivations and warehouse code as the stream path, without Kafka. A line is rejected
(with its file, number and reason) when the boundary refuses it or when the Deriver cannot
derive its call or thread, and noted in the store for source health; every other line is stored.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.boundary import Boundary, claimed_source
from ingest.jsonl import RejectedLine, read_batches
from stream_jobs.core.deriver import Deriver


@dataclass
class ReplayResult:
    accepted: int = 0
    rejected: int = 0
    calls: int = 0
    cases: int = 0
    conflicts: int = 0  # conflicting duplicates met (same source and id, other content)


def replay(
    paths: Sequence[Path],
    boundary: Boundary,
    deriver: Deriver,
    on_reject: Callable[[RejectedLine], None],
    on_progress: Callable[[int], None] = lambda _: None,
    batch_size: int = 20_000,
) -> ReplayResult:
    """Process files in order; `on_progress` gets the bytes read so far across all files."""
    result = ReplayResult()
    before = 0
    with fewer_collections():
        for path in paths:
            read = 0
            where = str(path.resolve())  # the rejects' origin: the same from any directory
            for batch in read_batches(path, boundary, batch_size):
                applied = deriver.apply(batch.events)
                rejected = batch.rejected
                if applied.failed:  # could not be derived: rejected like a bad line, in line order
                    failed = [batch.reject(event, reason) for event, reason in applied.failed]
                    rejected = sorted(rejected + failed, key=lambda r: r.line)
                for r in rejected:
                    on_reject(r)
                if rejected:  # source health (`availability sources`): each line once, however often processed
                    deriver.store.record_rejects(
                        (claimed_source(r.raw), f"{where}:{r.line}", r.reason) for r in rejected
                    )
                result.accepted += applied.events
                result.rejected += len(rejected)
                result.calls += applied.calls
                result.cases += applied.cases
                result.conflicts += len(applied.conflicts)
                read = batch.bytes_read
                on_progress(before + read)
            before += read
        deriver.store.flush()
    return result


@contextmanager
def fewer_collections(threshold: int = 100_000) -> Iterator[None]:
    """A replay allocates millions of short-lived objects; at the default threshold (700)
    the cyclic collector runs thousands of times and rescans the derivation state each time,
    about a tenth of the replay's time. Nothing here forms cycles that need it sooner."""
    before = gc.get_threshold()
    gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
