"""The phone side of the simulator (ingest/simulator/traffic.py): one local day's calls and agents."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from random import Random
from typing import Any

from ingest.simulator import profiles as P
from ingest.simulator.state import Out, Simulator, instant, poisson
from schemas import events as E
from schemas.events import AgentState, Event

SOURCE = "simulator"  # calls and agents; mail uses "imap/<mailbox>"
_PATIENCE_MU = math.log(P.PATIENCE_MEAN_S) - P.PATIENCE_SIGMA**2 / 2
WAITING, TALKING, DONE = 0, 1, 2


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


class PhoneDay:
    """The calls arriving on one local day and the agents working it: a heap of actions."""

    def __init__(self, sim: Simulator, day: date, out: Out, bounds: list[float]) -> None:
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
            prof = P.queue_profile(q.id)
            n = sim.volume(prof.calls_per_year, P.WEEKDAY_CALLS, P.HOLIDAY_CALLS, self.day, q.calendar_id,
                           prof.month_start)  # fmt: skip
            for t in poisson(self.rng, self.bounds, P.CALL_HOURS, n):
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
        rng, prof, is_open = self.rng, P.queue_profile(q), self.is_open(q, t)
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
        call.state, prof = TALKING, P.queue_profile(call.queue)
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
        return [(instant(self.day, a, self.sim.tz), instant(self.day, b, self.sim.tz)) for a, b in minutes]

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
