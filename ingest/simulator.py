"""Deterministic traffic simulator for the service agreements (`availability simulate`).

A small discrete-event simulation, run one local day at a time so memory stays flat:

- phone: callers arrive at the one entrance (non-homogeneous Poisson by hour of day, weekday,
  month start and season), choose a queue in the DTMF menu and wait FIFO; agents on a roster
  (some serving two queues) take the longest-waiting call of their queues while the queue's
  calendar is open; callers abandon when their patience runs out, take a callback, are
  transferred, or call again later;
- mail: messages arrive in the function mailboxes and get a reply (or are closed) after a lead
  time drawn in the mailbox's business time, with chasers and follow-ups in the same thread.

The events are raw (they carry `caller`, `sender`, `subject`, all fake) and come out in
non-decreasing time order. Volumes and every assumption: docs/simulator.md; the numbers
live in ingest/simulator_profiles.py.
"""

from __future__ import annotations

import bisect
import heapq
import math
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from itertools import accumulate
from operator import itemgetter
from random import Random
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from ingest import simulator_profiles as P
from schemas import events as E
from schemas.agreements import Agreements, Mailbox
from schemas.calendar import Calendar
from schemas.events import AgentState, Event, encode

SOURCE = "simulator"  # calls and agents; mail uses "imap/<mailbox>"
_ORDER = itemgetter(0, 1, 2)  # (exact time, generating day, sequence): a total order
_PATIENCE_MU = math.log(P.PATIENCE_MEAN_S) - P.PATIENCE_SIGMA**2 / 2
WAITING, TALKING, DONE = 0, 1, 2


def simulate(agreements: Agreements, start: date, days: int, seed: int, scale: float = 1.0) -> Iterator[Event]:
    """Yield the canonical events of `days` local days from `start`, in non-decreasing time.

    Same arguments, same events. Events later than the range (a reply due next week, a call
    still talking at midnight of the last day) are not emitted.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    sim = _Simulator(agreements, seed, scale)
    end = sim.midnight(start + timedelta(days=days))
    pending: list[tuple[float, int, int, Event]] = []  # generated earlier, due on a later day
    for i in range(days):
        day = start + timedelta(days=i)
        next_midnight = sim.midnight(day + timedelta(days=1))
        today = []
        for t, seq, event in sim.day(day):
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


# -- shared state of one simulation ---------------------------------------------------------------


class _Simulator:
    def __init__(self, agreements: Agreements, seed: int, scale: float) -> None:
        self.agreements, self.seed, self.scale, self.tz = agreements, seed, scale, agreements.timezone
        self.hours = {cid: _Hours(cal) for cid, cal in agreements.calendars.items()}
        pool = Random(f"{seed}/callers")
        self.callers = [_phone_number(pool) for _ in range(max(1, round(P.CALLER_POOL * scale)))]
        self.zipf: dict[int, list[float]] = {}
        queues = agreements.queues
        self.targets = {q: tuple(x for x in _qprof(q).transfer_to if x in queues and x != q) for q in queues}
        self.priority = {m.id: _priority_matcher(m.priority_keywords) for m in agreements.mailboxes.values()}
        self.roster = self._roster()

    def midnight(self, day: date) -> float:
        return _instant(day, 0, self.tz)

    def day(self, day: date) -> list[tuple[float, int, Event]]:
        out = _Out(self, day)
        bounds = [_instant(day, h * 60, self.tz) for h in range(25)]
        _PhoneDay(self, day, out, bounds).run()
        _MailDay(self, day, out, bounds).run()
        return out.items

    def volume(
        self, per_year: float, weekly: Sequence[float], holiday: float, day: date, cal: str, peak: float
    ) -> float:
        """Expected arrivals on `day` at this scale (peak: the month-start multiplier)."""
        wd = day.weekday()
        level = weekly[wd] if wd >= 5 or self.hours[cal].on(day) else holiday
        if self.month_start(day, cal):
            level *= peak
        return _per_day(per_year, peak) * level * P.MONTH_FACTOR[day.month - 1] * self.scale

    def month_start(self, day: date, cal: str) -> bool:
        hours = self.hours[cal]
        return bool(hours.on(day)) and hours.working_day_of_month(day) <= P.MONTH_START_WORKING_DAYS

    def pick(self, rng: Random, size: int) -> int:
        """A Zipf-distributed index below `size`: a few frequent callers or senders, many rare."""
        cum = self.zipf.get(size)
        if cum is None:
            cum = self.zipf[size] = list(accumulate(1 / (i + 1) ** 1.1 for i in range(size)))
        return bisect.bisect_left(cum, rng.random() * cum[-1])

    def caller(self, rng: Random) -> str:
        if rng.random() < P.REPEAT_CALLER_SHARE:
            return self.callers[self.pick(rng, len(self.callers))]
        return _phone_number(rng)

    def _roster(self) -> list[tuple[str, list[str], bool]]:
        """Agents, their queues and whether they work only at month start (Erlang C staffing)."""
        roster: list[tuple[str, list[str], bool]] = []
        for q in self.agreements.queues.values():
            prof = _qprof(q.id)
            aht = prof.talk_mean_s + sum(P.WRAP_S) / 2
            peak_hour = _per_day(prof.calls_per_year, prof.month_start) * self.scale * max(P.CALL_HOURS)
            load = peak_hour / sum(P.CALL_HOURS) / 3600 * aht  # a normal day's busiest hour, in Erlang
            staff = _erlang_agents(load, aht, q.service_level_seconds, q.service_level_target)
            extra = 1 + (prof.month_start - 1) * P.PEAK_COVER
            peak_staff = _erlang_agents(load * extra, aht, q.service_level_seconds, q.service_level_target)
            partners = [p for p in prof.partners if p in self.agreements.queues and p != q.id]
            shared = min(staff, max(len(partners), math.ceil(staff * P.SHARED_SHARE))) if partners else 0
            for i in range(max(staff, peak_staff)):
                queues = [q.id, partners[i % len(partners)]] if i < shared else [q.id]
                roster.append((f"agent{len(roster) + 1:03d}", queues, i >= staff))
        return roster


class _Hours:
    """One calendar's opening intervals as epoch seconds, per local day (cached)."""

    def __init__(self, cal: Calendar) -> None:
        self.cal = cal
        self._days: dict[date, list[tuple[float, float]]] = {}

    def on(self, day: date) -> list[tuple[float, float]]:
        found = self._days.get(day)
        if found is None:
            tz = self.cal.tz
            found = [(_instant(day, i.start, tz), _instant(day, i.end, tz)) for i in self.cal.intervals_on(day)]
            self._days[day] = found
        return found

    def working_day_of_month(self, day: date) -> int:
        return sum(1 for d in range(1, day.day + 1) if self.on(day.replace(day=d)))

    def add(self, t: float, seconds: float) -> float | None:
        """The instant `seconds` of open time after t (None if not within 120 days)."""
        day = datetime.fromtimestamp(t, self.cal.tz).date()
        for _ in range(120):
            for a, b in self.on(day):
                if b > t:
                    a = max(a, t)
                    if seconds <= b - a:
                        return a + seconds
                    seconds -= b - a
            day += timedelta(days=1)
        return None


class _Out:
    """Collects one generating day's events with ids `sim{seed}-{yyyymmdd}-{n}`."""

    def __init__(self, sim: _Simulator, day: date) -> None:
        self.tz, self.prefix = sim.tz, f"sim{sim.seed}-{day:%Y%m%d}-"
        self.items: list[tuple[float, int, Event]] = []

    def emit(self, t: float, kind: Callable[..., Event], data: Any, source: str, subject: str | None) -> None:
        n = len(self.items)
        local = datetime.fromtimestamp(math.floor(t), self.tz)  # whole seconds
        when = local.replace(tzinfo=_fixed(local.utcoffset()))  # +01:00/+02:00: compares by instant
        self.items.append((t, n, kind(specversion="1.0", id=f"{self.prefix}{n}", source=source, time=when,
                                      subject=subject, data=data)))  # fmt: skip


# -- phone -------------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("caller", "choice", "enq", "epoch", "give_up", "id", "internal", "queue", "redial", "state")

    def __init__(self, call_id: str, caller: str, choice: str) -> None:
        self.id, self.caller, self.choice, self.queue = call_id, caller, choice, choice
        self.state, self.epoch, self.enq, self.give_up = WAITING, 0, 0.0, 0.0
        self.internal = self.redial = False


@dataclass(eq=False)
class _Agent:
    id: str
    index: int
    queues: list[str]
    state: AgentState = "logged_out"
    idle_since: float = 0.0
    on_duty: bool = False
    logout_due: bool = False


class _PhoneDay:
    """The calls arriving on one local day and the agents working it: a heap of actions."""

    def __init__(self, sim: _Simulator, day: date, out: _Out, bounds: list[float]) -> None:
        self.sim, self.day, self.out, self.bounds = sim, day, out, bounds
        self.rng = Random(f"{sim.seed}/{day.isoformat()}/phone")
        self.call_prefix = f"sim{sim.seed}-{day:%Y%m%d}-c"
        self.heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = self.calls = 0
        queues = sim.agreements.queues
        self.open = {q: sim.hours[queues[q].calendar_id].on(day) for q in queues}
        self.waiting: dict[str, deque[tuple[_Call, int]]] = {q: deque() for q in queues}
        self.ready: dict[str, list[_Agent]] = {q: [] for q in queues}

    def at(self, t: float, action: Callable[..., None], *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, action, args))

    def run(self) -> None:
        sim = self.sim
        for q in sim.agreements.queues.values():
            prof = _qprof(q.id)
            n = sim.volume(prof.calls_per_year, P.WEEKDAY_CALLS, P.HOLIDAY_CALLS, self.day, q.calendar_id,
                           prof.month_start)  # fmt: skip
            for t in _poisson(self.rng, self.bounds, P.CALL_HOURS, n):
                self.at(t, self._offer, q.id, sim.caller(self.rng))
        self._shifts()
        while self.heap:
            t, _, action, args = heapq.heappop(self.heap)
            action(t, *args)

    def emit(self, t: float, kind: Callable[..., Event], data: Any, call: _Call) -> None:
        self.out.emit(t, kind, data, SOURCE, call.id)

    def is_open(self, q: str, t: float) -> bool:
        return any(a <= t < b for a, b in self.open[q])

    # callers

    def _offer(self, t: float, choice: str, caller: str) -> None:
        self.calls += 1
        call, rng = _Call(f"{self.call_prefix}{self.calls}", caller, choice), self.rng
        self.emit(t, E.CallOffered, E.CallOfferedData(call_id=call.id, entrance=P.ENTRANCE, caller=caller), call)
        menu = t + rng.uniform(*P.MENU_SECONDS)
        if rng.random() < P.MENU_HANGUP:
            self.emit(menu, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        else:
            self.at(menu, self._enqueue, call, choice)

    def _enqueue(self, t: float, call: _Call, q: str) -> None:
        rng, prof, is_open = self.rng, _qprof(q), self.is_open(q, t)
        self.emit(t, E.CallQueued, E.CallQueuedData(call_id=call.id, queue=q), call)
        if rng.random() < P.QUICK_ABANDON_SHARE:
            patience = rng.uniform(0.5, 5.0)
        else:
            patience = min(P.PATIENCE_CAP_S, rng.lognormvariate(_PATIENCE_MU, P.PATIENCE_SIGMA))
        if call.internal:
            patience *= P.INTERNAL_PATIENCE
        elif not is_open and rng.random() < P.CLOSED_HANGUP:
            patience = rng.uniform(4.0, 30.0)  # heard the "we are closed" message
        call.redial = is_open and not call.internal
        call.give_up = t + patience
        self.at(call.give_up, self._give_up, call)
        targets = self.sim.targets[q] if is_open and not call.internal else ()
        if targets and rng.random() < P.MENU_TRANSFER_SHARE:  # wrong choice: changes queue at once
            call.queue, call.state, call.enq = q, WAITING, t
            self.at(t + rng.uniform(*P.MENU_TRANSFER_S), self._transfer, call, rng.choice(targets))
            return
        if targets and rng.random() < P.OVERFLOW_SHARE:  # moved on if still waiting by then
            self.at(t + rng.uniform(*P.OVERFLOW_AFTER_S), self._transfer, call, rng.choice(targets))
        if is_open and prof.callback and patience > P.CALLBACK_AFTER_S + 15 and rng.random() < P.CALLBACK_ACCEPT:
            self.at(t + P.CALLBACK_AFTER_S + rng.uniform(0, 15), self._callback, call, q)
        self._wait(t, call, q)

    def _wait(self, t: float, call: _Call, q: str) -> None:
        call.queue, call.state, call.enq, call.epoch = q, WAITING, t, call.epoch + 1
        self.waiting[q].append((call, call.epoch))
        self._dispatch(q, t)

    def _give_up(self, t: float, call: _Call) -> None:
        if call.state != WAITING or t != call.give_up:  # answered, gone, or an earlier leg's timer
            return
        call.state, rng = DONE, self.rng
        if rng.random() < P.ABANDON_EVENT_SHARE:
            self.emit(t, E.CallAbandoned, E.CallQueueData(call_id=call.id, queue=call.queue), call)
        self.emit(t, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        if call.redial and t - call.enq > 5 and rng.random() < P.REDIAL_SHARE:
            self.at(t + rng.lognormvariate(math.log(P.REDIAL_MEDIAN_S), 0.7), self._offer, call.choice, call.caller)

    def _callback(self, t: float, call: _Call, q: str) -> None:
        if call.state == WAITING and call.queue == q and self.is_open(q, t):
            call.state = DONE
            self.emit(t, E.CallbackRequested, E.CallQueueData(call_id=call.id, queue=call.queue), call)
            self.emit(t + self.rng.uniform(1, 4), E.CallEnded, E.CallEndedData(call_id=call.id), call)

    def _transfer(self, t: float, call: _Call, to: str) -> None:
        if call.state == WAITING:
            self.emit(t, E.CallTransferred, E.CallTransferredData(call_id=call.id, queue=call.queue, to_queue=to), call)
            self._wait(t, call, to)

    # queues and agents

    def _head(self, q: str) -> _Call | None:
        line = self.waiting[q]
        while line and (line[0][0].state != WAITING or line[0][0].epoch != line[0][1]):
            line.popleft()  # answered, abandoned or moved on since it joined this line
        return line[0][0] if line else None

    def _dispatch(self, q: str, t: float) -> None:
        """Connect waiting calls of q to its ready agents (the longest idle first)."""
        ready = self.ready[q]
        while ready and (call := self._head(q)) is not None:
            answer = t + self.rng.uniform(*P.RING_S)
            if not self.is_open(q, answer):
                return
            self.waiting[q].popleft()
            if call.give_up > answer:  # else the caller hangs up while it rings
                self._answer(answer, call, min(ready, key=lambda a: (a.idle_since, a.index)))

    def _answer(self, t: float, call: _Call, agent: _Agent) -> None:
        call.state, prof = TALKING, _qprof(call.queue)
        self.emit(t, E.CallAnswered, E.CallAnsweredData(call_id=call.id, queue=call.queue, agent=agent.id), call)
        self._state(t, agent, "busy")
        mu = math.log(prof.talk_mean_s) - P.TALK_SIGMA**2 / 2
        self.at(t + max(P.TALK_MIN_S, self.rng.lognormvariate(mu, P.TALK_SIGMA)), self._talk_end, call, agent)

    def _talk_end(self, t: float, call: _Call, agent: _Agent) -> None:
        rng, targets = self.rng, self.sim.targets[call.queue]
        if not call.internal and targets and rng.random() < P.INTERNAL_TRANSFER_SHARE:
            call.internal = True
            self.at(t + rng.uniform(3, 10), self._enqueue, call, rng.choice(targets))
        else:
            call.state = DONE
            self.emit(t, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        self._state(t, agent, "wrap_up")
        self.at(t + rng.uniform(*P.WRAP_S), self._wrap_end, agent)

    def _wrap_end(self, t: float, agent: _Agent) -> None:
        if agent.on_duty and self.rng.random() < P.BACKOFFICE_SHARE:
            self._state(t, agent, "not_ready")  # a while of back-office work
            self.at(t + self.rng.lognormvariate(math.log(P.BACKOFFICE_MEDIAN_S), 0.6), self._back, agent)
        elif agent.on_duty:
            self._go_ready(t, agent)
        else:
            self._state(t, agent, "logged_out" if agent.logout_due else "not_ready")

    def _back(self, t: float, agent: _Agent) -> None:
        if agent.on_duty and agent.state == "not_ready":
            self._go_ready(t, agent)

    def _go_ready(self, t: float, agent: _Agent) -> None:
        self._state(t, agent, "ready")
        heads = [(c.enq, i, q) for i, q in enumerate(agent.queues) if (c := self._head(q)) is not None]
        for _, _, q in sorted(heads):  # the longest-waiting call of the agent's queues first
            self._dispatch(q, t)

    def _state(self, t: float, agent: _Agent, state: AgentState) -> None:
        if agent.state == state:
            return
        if agent.state == "ready":
            for q in agent.queues:
                self.ready[q].remove(agent)
        agent.state = state
        if state == "ready":
            agent.idle_since = t
            for q in agent.queues:
                self.ready[q].append(agent)
        queues = [] if state == "logged_out" else agent.queues
        self.out.emit(
            t, E.AgentStateChanged, E.AgentStateData(agent=agent.id, state=state, queues=queues), SOURCE, None
        )

    # the roster's working day

    def _shifts(self) -> None:
        rng, absence = self.rng, P.ABSENCE_BY_MONTH[self.day.month - 1]
        for index, (agent_id, queues, peak_only) in enumerate(self.sim.roster):
            segments = self._segments(queues[0], index)
            if rng.random() < absence or not segments:
                continue
            if peak_only and not self.sim.month_start(self.day, self.sim.agreements.queues[queues[0]].calendar_id):
                continue
            agent = _Agent(agent_id, index, queues)
            self.at(segments[0][0] - rng.uniform(60, 420), self._state, agent, "not_ready")  # logs in
            for a, b in segments:
                self.at(min(b, a + rng.uniform(0, P.LATE_S)), self._on, agent)
                self.at(b, self._off, agent)
            self.at(segments[-1][1] + rng.uniform(60, 600), self._logout, agent)

    def _segments(self, q: str, index: int) -> list[tuple[float, float]]:
        """The agent's ready periods: the queue's opening hours minus staggered breaks."""
        intervals = self.sim.agreements.queues[q].calendar.intervals_on(self.day)
        stagger = (index % 3) * P.STAGGER_MIN
        breaks = [(m + stagger, m + stagger + d) for m, d in P.COFFEE_BREAKS]
        if len(intervals) == 1 and intervals[0].end - intervals[0].start >= 6 * 60:  # no lunch closure
            lunch = P.LUNCH[0] + (index % 4) * 30
            breaks.append((lunch, lunch + P.LUNCH[1]))
        minutes = []
        for iv in intervals:
            start = iv.start
            for a, b in sorted(breaks):
                if start < a and b < iv.end:
                    minutes.append((start, a))
                    start = b
            minutes.append((start, iv.end))
        return [(_instant(self.day, a, self.sim.tz), _instant(self.day, b, self.sim.tz)) for a, b in minutes]

    def _on(self, t: float, agent: _Agent) -> None:
        agent.on_duty = True
        if agent.state in ("not_ready", "logged_out"):
            self._go_ready(t, agent)

    def _off(self, t: float, agent: _Agent) -> None:
        agent.on_duty = False
        if agent.state == "ready":
            self._state(t, agent, "not_ready")

    def _logout(self, t: float, agent: _Agent) -> None:
        agent.logout_due = True
        if agent.state in ("ready", "not_ready"):
            self._state(t, agent, "logged_out")


# -- mail --------------------------------------------------------------------------------------------


class _MailDay:
    """The mail cases opened on one local day, each followed to its reply or close."""

    def __init__(self, sim: _Simulator, day: date, out: _Out, bounds: list[float]) -> None:
        self.sim, self.day, self.out, self.bounds = sim, day, out, bounds
        self.rng = Random(f"{sim.seed}/{day.isoformat()}/mail")
        self.ymd, self.messages = f"{day:%Y%m%d}", 0

    def run(self) -> None:
        sim, rng = self.sim, self.rng
        for mb in sim.agreements.mailboxes.values():
            prof = _mprof(mb.id)
            n = sim.volume(prof.mails_per_year, P.WEEKDAY_MAIL, P.HOLIDAY_MAIL, self.day, mb.calendar_id, 1.0)
            for t in _poisson(rng, self.bounds, P.MAIL_HOURS, n):
                sender = prof.sender.format(
                    n=sim.pick(rng, round(prof.senders * sim.scale) or 1) + 1
                    if rng.random() < P.REPEAT_SENDER_SHARE
                    else rng.randrange(10_000, 1_000_000)
                )
                template = rng.choice(P.PRIORITY_SUBJECTS if rng.random() < prof.priority_share else prof.subjects)
                subject = template.format(inv=rng.randrange(10**5, 10**8), month=P.MONTHS_SV[self.day.month - 1])
                self._case(mb, t, sender, subject, None, 0)

    def _message_id(self) -> str:
        self.messages += 1
        return f"<{self.rng.getrandbits(40):010x}.{self.ymd}.{self.messages}@example.se>"

    def _emit(self, t: float, kind: Callable[..., Event], data: Any, mb: Mailbox, thread: str) -> None:
        self.out.emit(t, kind, data, f"imap/{mb.id}", f"{mb.id}/{thread}")

    def _received(self, t: float, mb: Mailbox, thread: str | None, sender: str, subject: str) -> tuple[str, str]:
        message = self._message_id()
        thread = thread or message  # a new thread is named by its first message
        data = E.MailReceivedData(mailbox=mb.id, message_id=message, thread_id=thread, sender=sender, subject=subject)
        self._emit(t, E.MailReceived, data, mb, thread)
        return message, thread

    def _case(self, mb: Mailbox, t: float, sender: str, subject: str, thread: str | None, depth: int) -> None:
        rng = self.rng
        last, thread = self._received(t, mb, thread, sender, subject)
        priority = self.sim.priority[mb.id](subject)
        u, reason = rng.random(), None
        for name, share in P.CLOSE_SHARES:
            if u < share:
                reason = name
                break
            u -= share
        if reason == "spam":
            lead = rng.lognormvariate(math.log(P.SPAM_MEDIAN_S), 0.8)
        elif priority:
            lead = rng.lognormvariate(
                math.log(P.PRIORITY_MEDIAN * mb.priority_response_target_seconds), P.PRIORITY_SIGMA
            )
        else:
            lead = rng.lognormvariate(math.log(P.REPLY_MEDIAN * mb.response_target_seconds), P.REPLY_SIGMA)
        done = self.sim.hours[mb.calendar_id].add(t, max(P.MIN_LEAD_S, lead))
        if done is None:
            return
        if reason is not None:
            self._emit(done, E.MailClosed, E.MailClosedData(mailbox=mb.id, thread_id=thread, reason=reason), mb, thread)
            return
        if rng.random() < P.CHASE_SHARE:  # the sender writes again before the reply: same case
            chase = t + rng.lognormvariate(math.log(P.CHASE_MEDIAN_S), 0.8)
            if chase < done:
                last, _ = self._received(chase, mb, thread, sender, "Påminnelse: " + subject)
        data = E.MailRepliedData(mailbox=mb.id, message_id=self._message_id(), thread_id=thread, in_reply_to=last)
        self._emit(done, E.MailReplied, data, mb, thread)
        if depth < P.MAX_FOLLOWUPS and rng.random() < P.FOLLOWUP_SHARE:  # answers the reply: a new case
            again = done + rng.lognormvariate(math.log(P.FOLLOWUP_MEDIAN_S), 1.0)
            self._case(
                mb, again, sender, subject if subject.startswith("SV: ") else "SV: " + subject, thread, depth + 1
            )


# -- helpers -------------------------------------------------------------------------------------------


def _qprof(queue: str) -> P.QueueProfile:
    return P.QUEUES.get(queue, P.DEFAULT_QUEUE)


def _mprof(mailbox: str) -> P.MailboxProfile:
    return P.MAILBOXES.get(mailbox, P.DEFAULT_MAILBOX)


def _per_day(per_year: float, peak: float) -> float:
    """An average working day's arrivals, so that the month-start peak keeps the yearly total."""
    return per_year / P.WORKING_DAYS_PER_YEAR / (1 + (peak - 1) * P.MONTH_START_WORKING_DAYS / P.WORKING_DAYS_PER_MONTH)


def _instant(day: date, minutes: int, tz: ZoneInfo) -> float:
    """Epoch seconds of a local wall-clock time (24:00 is the next midnight), as schemas.calendar."""
    if minutes == 24 * 60:
        day, minutes = day + timedelta(days=1), 0
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz).timestamp()


def _poisson(rng: Random, bounds: list[float], weights: Sequence[float], expected: float) -> list[float]:
    """Arrival instants of a Poisson process, piecewise constant per local hour."""
    times, total = [], sum(weights)
    for h, w in enumerate(weights):
        rate = expected * w / total / 3600
        t, end = bounds[h], bounds[h + 1]
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= end:
                break
            times.append(t)
    return times


def _erlang_agents(load: float, aht: float, sl_seconds: float, target: float) -> int:
    """Fewest agents for which Erlang C gives service level >= target at this offered load."""
    n, target = max(1, math.ceil(load)), min(target, 0.99)  # a target of 1 is never reached
    while True:
        if n > load:
            b = 1.0
            for k in range(1, n + 1):
                b = load * b / (k + load * b)  # Erlang B, recursively
            wait = n * b / (n - load * (1 - b))
            if 1 - wait * math.exp(-(n - load) * sl_seconds / aht) >= target:
                return n
        n += 1


@cache
def _fixed(offset: timedelta | None) -> timezone:
    """A fixed-offset zone: datetimes sharing a ZoneInfo compare by wall clock, wrong in the DST fold."""
    return timezone(offset or timedelta(0))


def _phone_number(rng: Random) -> str:
    return f"+467{rng.choice('0236')}{rng.randrange(10**7):07d}"


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def _priority_matcher(keywords: Sequence[str]) -> Callable[[str], bool]:
    """agreements.md: case-insensitive, diacritics ignored, keywords match word prefixes."""
    folded = [re.escape(_fold(k)) for k in keywords if k.strip()]
    if not folded:
        return lambda _subject: False
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(folded) + ")")
    return lambda subject: pattern.search(_fold(subject)) is not None
