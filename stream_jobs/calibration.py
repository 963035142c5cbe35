"""The outlook against what happened: the simulator's traffic through the Deriver and the live
state, the expected service level of every open queue taken at each half hour, and the service
level its callers then got (docs/forecasting.md#calibration; `bench/calibration.py`).

The simulator's callers have known arrival rates and patience, but the outlook is not told them:
it sees what a worker sees (events, agents' states, earlier weeks in the store).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from ingest.simulator.traffic import simulate
from schemas.agreements import Agreements
from schemas.events import Event
from stream_jobs.core import outlook
from stream_jobs.core.calls import ABANDONED, ANSWERED, FLOWED_OUT
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.outlook import HORIZON, QueueNow
from stream_jobs.core.store import MemoryStore

BATCH = timedelta(minutes=1)  # the events up to each instant are applied in batches this long (a scrape a minute)


@dataclass(frozen=True)
class Interval:
    """One open queue's half hour: what was expected at its start and what its callers got."""

    queue: str
    start: datetime
    expected: float  # the outlook's service level
    expected_contacts: float
    realised: float | None  # None: no contact in the base
    base: int  # contacts in the base (answered, abandoned after the short limit, flowed out)
    arrivals: int  # ordinary contacts first queued in it (what the forecast forecasts)
    inputs: QueueNow  # what the outlook was computed from
    served: tuple[float, ...] = ()  # the agents who then served it, in each of the outlook's segments

    @property
    def error(self) -> float | None:
        """Expected minus realised, in points (None without a realised value)."""
        return None if self.realised is None else 100 * (self.expected - self.realised)

    def told(self, *, staffing: bool = False, arrivals: bool = False) -> float:
        """The expected service level had the outlook been told what then happened: the agents
        who served in each segment, the half hour's arrivals (with the chance they carry). What
        is left of the error is the model's and the chance of the callers' patience and talk."""
        now = self.inputs
        if staffing and self.served:
            now = replace(now, agents=0.0, agents_change=self.served)
        if arrivals:
            now = replace(now, arrivals_per_second=self.arrivals / now.horizon_seconds)
        return outlook.outlook(now)[0]


def calibrate(agreements: Agreements, start: date, days: int, *, warmup_days: int = 28, seed: int = 1,
              scale: float = 1.0, restart: bool = False) -> list[Interval]:  # fmt: skip
    """Simulate `warmup_days` (history only) and then `days` from `start`; return every open
    half hour (:00 and :30 local, open for the whole of it) of the `days` for every queue.
    `restart`: the worker restarts at `start` (a new live state, restored from the store)."""
    tz = agreements.timezone
    first = start - timedelta(days=warmup_days)
    store, now = MemoryStore(), [datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)]
    deriver = Deriver(store, agreements, track_changes=True)
    live = LiveState(agreements, clock=lambda: now[0])
    live.load_history(store)
    measured_from = datetime.combine(start, datetime.min.time(), tz)
    expected: dict[tuple[str, datetime], tuple[float, float, QueueNow]] = {}
    for tick, batch in _batches(simulate(agreements, first, warmup_days + days, seed, scale), now[0]):
        if batch:
            live.observe(batch, deriver.apply(batch))
        now[0] = tick
        if restart and tick >= measured_from:
            restart, live = False, LiveState(agreements, clock=lambda: now[0])
            live.restore(store, lambda kind, key: True)
        live.sample_staffing(tick)  # as a scrape would (the worker: every scrape)
        local = tick.astimezone(tz)
        if tick < measured_from or local.minute % 30 or local.second:
            continue
        for queue in agreements.queues:  # a fresh outlook at each half hour (not the scrape's cache)
            inputs = live.queue_now(queue, tick)
            if inputs is not None and open_throughout(agreements, queue, tick):
                p = outlook.predict(inputs)
                expected[(queue, tick)] = (p.service_level, p.contacts, inputs)
    return _realised(agreements, store, expected, live)


def _batches(events: Iterator[Event], first: datetime) -> Iterator[tuple[datetime, list[Event]]]:
    """The events cut at every BATCH boundary: (the boundary, the events before it)."""
    tick, batch = first + BATCH, list[Event]()
    for ev in events:
        while ev.time >= tick:
            yield tick, batch
            tick, batch = tick + BATCH, []
        batch.append(ev)
    yield tick, batch


def open_throughout(agreements: Agreements, queue: str, start: datetime) -> bool:
    """The queue is open for the whole half hour from `start` (the half hours calibrated)."""
    calendar = agreements.queues[queue].calendar
    return calendar.business_seconds(start, start + HORIZON) == HORIZON.total_seconds()


@dataclass
class Counts:
    """One queue's half hour: the contacts in the base that were met, the base, the arrivals."""

    met: int = 0
    base: int = 0
    arrivals: int = 0

    @property
    def level(self) -> float | None:
        return self.met / self.base if self.base else None


def half_hours(store: MemoryStore, tz: tzinfo) -> dict[tuple[str, datetime], Counts]:
    """Each queue's half hours (local :00 and :30, as UTC) by the contacts first queued in them
    (internal calls left out): the service level's base and those met (spec/metrics.md:
    answered within T over answered + abandoned after the short limit + flowed out, while
    open), and the arrivals the forecast forecasts."""
    out: dict[tuple[str, datetime], Counts] = defaultdict(Counts)
    for c in store.contacts.values():
        if c.internal:
            continue
        local = c.queued_at.astimezone(tz)
        half = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
        counts = out[(c.queue, half.astimezone(UTC))]
        counts.arrivals += 1
        if c.queue_open and not c.short_abandon and c.outcome in (ANSWERED, ABANDONED, FLOWED_OUT):
            counts.base += 1
            counts.met += c.in_service_level
    return out


def _realised(
    agreements: Agreements,
    store: MemoryStore,
    expected: dict[tuple[str, datetime], tuple[float, float, QueueNow]],
    live: LiveState,
) -> list[Interval]:
    """What each expected half hour's callers got, and the agents who served them (the live
    state's per-minute samples)."""
    got = half_hours(store, agreements.timezone)
    out = []
    for (queue, start), (level, contacts, inputs) in sorted(expected.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        c = got.get((queue, start), Counts())
        served = live.staffed(queue, start, HORIZON)
        whole = () if any(math.isnan(x) for x in served) else tuple(served)
        out.append(Interval(queue, start, level, contacts, c.level, c.base, c.arrivals, inputs, whole))
    return out
