"""Deterministic traffic simulator for the service agreements (`availability simulate`).

A small discrete-event simulation, run one local day at a time so memory stays flat:

- phone: callers arrive at the one entrance (non-homogeneous Poisson by hour of day, weekday,
  month start and season), choose a queue in the DTMF menu and wait FIFO; agents on a roster
  (some serving two queues) take the longest-waiting call of their queues while the queue's
  calendar is open; callers abandon when their patience runs out, take a callback, are
  transferred (some at once, through two queues in one second), are flowed out by the switch
  (`call.exited`: queue time-out, exit key, no agent logged in, queue full), call an agent's
  direct number (answered without a queue), or call again later the same or the next day;
- mail: messages arrive in the function mailboxes and get a reply (or are closed) after a lead
  time drawn in the mailbox's business time, with chasers and follow-ups in the same thread;
  a few carry the source's own priority flag (`categories`).

The events are raw (they carry `caller`, `sender`, `subject`, all fake) and come out in
non-decreasing time order. Volumes and every assumption: docs/simulator.md; the numbers
live in ingest/simulator/profiles.py. The phone day is in ingest/simulator/phone.py, the
mail day in ingest/simulator/mail.py and the state they share in ingest/simulator/state.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from operator import itemgetter
from typing import BinaryIO

from ingest.simulator.mail import MailDay
from ingest.simulator.phone import PhoneDay
from ingest.simulator.state import Out, Simulator, instant
from schemas.agreements import Agreements
from schemas.events import Event, encode

_ORDER = itemgetter(0, 1, 2)  # (exact time, generating day, sequence): a total order


def simulate(agreements: Agreements, start: date, days: int, seed: int, scale: float = 1.0) -> Iterator[Event]:
    """Yield the canonical events of `days` local days from `start`, in non-decreasing time.

    Same arguments, same events. Events later than the range (a reply due next week, a call
    still talking at midnight of the last day) are not emitted.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    sim = Simulator(agreements, seed, scale)
    end = sim.midnight(start + timedelta(days=days))
    pending: list[tuple[float, int, int, Event]] = []  # generated earlier, due on a later day
    for i in range(days):
        day = start + timedelta(days=i)
        next_midnight = sim.midnight(day + timedelta(days=1))
        today = []
        for t, seq, event in _day(sim, day):
            item = (t, day.toordinal(), seq, event)
            if t < next_midnight:
                today.append(item)
            elif t < end:
                heapq.heappush(pending, item)
        while pending and pending[0][0] < next_midnight:
            today.append(heapq.heappop(pending))
        today.sort(key=_ORDER)
        for item in today:
            yield item[3]


def write_jsonl(events: Iterable[Event], out: BinaryIO) -> int:
    """Write one encoded event per line; returns the number written."""
    n = 0
    for event in events:
        out.write(encode(event) + b"\n")
        n += 1
    return n


def _day(sim: Simulator, day: date) -> list[tuple[float, int, Event]]:
    """The events generated on one local day (some due later), with their time and sequence."""
    out = Out(sim, day)
    bounds = [instant(day, h * 60, sim.tz) for h in range(25)]
    PhoneDay(sim, day, out, bounds).run()
    MailDay(sim, day, out, bounds).run()
    return out.items
