"""The phone side of the simulator (ingest/simulator/traffic.py): one local day's calls and agents."""

from __future__ import annotations

import copy
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
    __slots__ = ("caller", "choice", "contact", "enq", "epoch", "give_up", "id", "internal", "queue", "redial", "state")

    def __init__(self, call_id: str, caller: str, choice: str) -> None:
        self.id, self.caller, self.choice, self.queue = call_id, caller, choice, choice
        self.state, self.epoch, self.contact, self.enq, self.give_up = WAITING, 0, 0, 0.0, 0.0
        self.internal = self.redial = False


@dataclass(eq=False)
class _Agent:
    id: str
    index: int
    queues: list[str]
    auto: bool = False  # auto-answer: connected without ringing
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
        self.now = -math.inf  # the day has run up to here (`advance`)
        queues = sim.agreements.queues
        self.open = {q: sim.hours[queues[q].calendar_id].on(day) for q in queues}
        self.waiting: dict[str, deque[tuple[_Call, int]]] = {q: deque() for q in queues}
        self.n_waiting = dict.fromkeys(queues, 0)  # calls waiting in each queue (for queue_full)
        self.logged_in = dict.fromkeys(queues, 0)  # agents logged in to each queue (for no_agents)
        self.ready: dict[str, list[_Agent]] = {q: [] for q in queues}
        self.staff: dict[str, list[_Agent]] = {q: [] for q in queues}  # today's agents, by first queue

    def at(self, t: float, action: Callable[..., None], *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, action, args))

    def run(self) -> None:
        self.begin()
        self.advance(math.inf)

    def begin(self) -> None:
        """Schedule the day: its callers, yesterday's redials, the roster's shifts."""
        sim = self.sim
        for q in sim.agreements.queues:
            for t in self._arrivals(q):
                self.at(t, self._arrive, q, sim.caller(self.rng))
        for t, choice, caller in sim.redials.pop(self.day, ()):  # those who gave up yesterday (or before)
            self.at(t, self._offer, choice, caller)
        self._shifts()

    def _arrivals(self, q: str) -> list[float]:
        """The instants the day's new callers of queue q call (a Poisson process)."""
        sim, prof = self.sim, P.queue_profile(q)
        calendar = sim.agreements.queues[q].calendar_id
        n = sim.volume(prof.calls_per_year, P.WEEKDAY_CALLS, P.HOLIDAY_CALLS, self.day, calendar, prof.month_start)
        return poisson(self.rng, self.bounds, P.CALL_HOURS, n)

    def advance(self, until: float) -> None:
        """Run the day's actions due before `until`."""
        while self.heap and self.heap[0][0] < until:
            t, _, action, args = heapq.heappop(self.heap)
            action(t, *args)
        self.now = until

    def fork(self, tag: str, *, new_callers: bool = True) -> PhoneDay:
        """The day as it stands at `now` (every caller waiting, every agent's state and shift,
        every timer), to run on with its own random numbers seeded by `tag`: what could happen
        next, where the day itself is one thing that did (bench/oracle.py). The callers still to
        call of their own accord are drawn afresh from the same Poisson process (new_callers=False
        keeps the day's); those who already called and will call again keep their time. The
        fork's events go to an empty collector with ids `{tag}-{n}`; the redials it books stay
        its own."""
        sim = copy.copy(self.sim)
        sim.redials = {}
        out = Out(self.sim, self.day)
        out.prefix = f"{tag}-"
        twin = copy.deepcopy(self, {id(self.sim): sim, id(self.out): out})
        twin.rng = Random(tag)
        if new_callers:
            twin.heap = [e for e in twin.heap if getattr(e[2], "__func__", None) is not PhoneDay._arrive]
            heapq.heapify(twin.heap)
            for q in sim.agreements.queues:
                for t in twin._arrivals(q):
                    if t >= twin.now:  # a Poisson process's calls after now do not depend on those before
                        twin.at(t, twin._arrive, q, sim.caller(twin.rng))
        return twin

    def emit(self, t: float, kind: Callable[..., Event], data: Any, call: _Call) -> None:
        self.out.emit(t, kind, data, SOURCE, call.id)

    def is_open(self, q: str, t: float) -> bool:
        return any(a <= t < b for a, b in self.open[q])

    # callers

    def _arrive(self, t: float, choice: str, caller: str) -> None:
        """A new caller (not a redial): apart from `_offer` so that `fork` can draw them afresh."""
        self._offer(t, choice, caller)

    def _offer(self, t: float, choice: str, caller: str) -> None:
        self.calls += 1
        call, rng = _Call(f"{self.call_prefix}{self.calls}", caller, choice), self.rng
        if rng.random() < P.DIRECT_SHARE:
            self._direct(t, call, choice)
            return
        self.emit(t, E.CallOffered, E.CallOfferedData(call_id=call.id, entrance=P.ENTRANCE, caller=caller), call)
        menu = t + rng.uniform(*P.MENU_SECONDS)
        if rng.random() < P.MENU_HANGUP:
            self.emit(menu, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        else:
            self.at(menu, self._enqueue, call, choice)

    def _direct(self, t: float, call: _Call, q: str) -> None:
        """A call to an agent's direct number: answered if the agent is ready, never queued."""
        rng, staff = self.rng, self.staff[q]
        data = E.CallOfferedData(call_id=call.id, entrance=P.DIRECT_ENTRANCE, caller=call.caller)
        self.emit(t, E.CallOffered, data, call)
        agent = rng.choice(staff) if staff else None
        answer = t + self._ring(agent) if agent is not None and agent.state == "ready" else None
        if agent is not None and answer is not None and self.is_open(agent.queues[0], answer):
            call.queue = agent.queues[0]
            self._answer(answer, call, agent)
        else:
            call.state = DONE
            self.emit(t + rng.uniform(*P.DIRECT_NO_ANSWER_S), E.CallEnded, E.CallEndedData(call_id=call.id), call)

    def _enqueue(self, t: float, call: _Call, q: str) -> None:
        """call.queued: a new contact (the first, or after an answer, a callback or a flow-out)."""
        rng, is_open = self.rng, self.is_open(q, t)
        call.contact += 1
        n = call.contact
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
        self.at(t + P.queue_profile(q).timeout_s, self._exit, call, n, "timeout")  # runs across transfers
        external = is_open and not call.internal
        targets = self.sim.targets[q] if external else ()
        if targets and rng.random() < P.ROUTED_SHARE:  # the IVR moves it on at the same instant
            to = rng.choice(targets)
            self.emit(t, E.CallTransferred, E.CallTransferredData(call_id=call.id, queue=q, to_queue=to), call)
            onward = tuple(x for x in self.sim.targets[to] if x != q)
            if onward and rng.random() < P.ROUTED_CHAIN_SHARE:
                q, to = to, rng.choice(onward)
                self.emit(t, E.CallTransferred, E.CallTransferredData(call_id=call.id, queue=q, to_queue=to), call)
            q = to
            targets = self.sim.targets[q]
        elif targets and rng.random() < P.MENU_TRANSFER_SHARE:  # wrong choice: changes queue at once
            if self._wait(t, call, q, line=False):
                self.at(t + rng.uniform(*P.MENU_TRANSFER_S), self._transfer, call, rng.choice(targets), n)
            return
        if targets and rng.random() < P.OVERFLOW_SHARE:  # moved on if still waiting by then
            self.at(t + rng.uniform(*P.OVERFLOW_AFTER_S), self._transfer, call, rng.choice(targets), n)
        offer_callback = external and P.queue_profile(q).callback and patience > P.CALLBACK_AFTER_S + 15
        if offer_callback and rng.random() < P.CALLBACK_ACCEPT:
            self.at(t + P.CALLBACK_AFTER_S + rng.uniform(0, 15), self._callback, call, q, n)
        if external and rng.random() < P.EXIT_KEY_SHARE:
            self.at(t + rng.uniform(*P.EXIT_KEY_AFTER_S), self._exit, call, n, "exit_key")
        self._wait(t, call, q)

    def _wait(self, t: float, call: _Call, q: str, line: bool = True) -> bool:
        """The call enters q's line (line=False: is only passing through): False if flowed out at once."""
        call.queue, call.state, call.enq, call.epoch = q, WAITING, t, call.epoch + 1
        if self.is_open(q, t):
            if not self.logged_in[q]:
                self._flow_out(t, call, "no_agents")
                return False
            if self.n_waiting[q] >= self.sim.queue_limit[q]:
                self._flow_out(t, call, "queue_full")
                return False
        self.n_waiting[q] += 1
        if line:
            self.waiting[q].append((call, call.epoch))
            self._dispatch(q, t)
        return True

    def _leave(self, call: _Call, state: int) -> None:
        """The call stops waiting in its queue."""
        call.state = state
        self.n_waiting[call.queue] -= 1

    def _give_up(self, t: float, call: _Call) -> None:
        if call.state != WAITING or t != call.give_up:  # answered, gone, or an earlier leg's timer
            return
        self._leave(call, DONE)
        rng = self.rng
        if rng.random() < P.ABANDON_EVENT_SHARE:
            self.emit(t, E.CallAbandoned, E.CallQueueData(call_id=call.id, queue=call.queue), call)
        self.emit(t, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        if call.redial and t - call.enq > 5 and rng.random() < P.REDIAL_SHARE:
            self._redial(t, call)

    def _redial(self, t: float, call: _Call) -> None:
        """The same caller calls again later today (after a closure: once it reopens), or the next open day."""
        rng, q = self.rng, call.choice
        if rng.random() >= P.REDIAL_NEXT_DAY_SHARE:
            again = t + rng.lognormvariate(math.log(P.REDIAL_MEDIAN_S), 0.7)
            for a, b in self.open[q]:
                if again < b:
                    self.at(again if again >= a else a + rng.uniform(0, P.REDIAL_REOPEN_S), self._offer, q, call.caller)
                    return
        self.sim.redial_later(rng, self.day, q, call.caller)

    def _callback(self, t: float, call: _Call, q: str, n: int) -> None:
        if call.state == WAITING and call.contact == n and call.queue == q and self.is_open(q, t):
            self._leave(call, DONE)
            rng, targets = self.rng, self.sim.targets[q]
            self.emit(t, E.CallbackRequested, E.CallQueueData(call_id=call.id, queue=q), call)
            if targets and rng.random() < P.CALLBACK_REQUEUE_SHARE:  # back to the menu: another matter
                self.at(t + rng.uniform(*P.MENU_SECONDS), self._enqueue, call, rng.choice(targets))
            else:
                self.emit(t + rng.uniform(1, 4), E.CallEnded, E.CallEndedData(call_id=call.id), call)

    def _transfer(self, t: float, call: _Call, to: str, n: int) -> None:
        if call.state == WAITING and call.contact == n:
            self._leave(call, WAITING)
            self.emit(t, E.CallTransferred, E.CallTransferredData(call_id=call.id, queue=call.queue, to_queue=to), call)
            self._wait(t, call, to)

    def _exit(self, t: float, call: _Call, n: int, reason: E.ExitReason) -> None:
        """A timer's flow-out (time-out, exit key) if the contact is still waiting."""
        if call.state == WAITING and call.contact == n:
            self._leave(call, DONE)
            self._flow_out(t, call, reason)

    def _flow_out(self, t: float, call: _Call, reason: E.ExitReason) -> None:
        """call.exited: to the exit key's partner queue at the same instant, else to voicemail."""
        rng = self.rng
        call.state = DONE
        self.emit(t, E.CallExited, E.CallExitedData(call_id=call.id, queue=call.queue, reason=reason), call)
        targets = self.sim.targets[call.queue]
        if reason == "exit_key" and targets and rng.random() < P.EXIT_TO_QUEUE_SHARE:
            self._enqueue(t, call, rng.choice(targets))
            return
        self.emit(t + rng.uniform(*P.VOICEMAIL_S), E.CallEnded, E.CallEndedData(call_id=call.id), call)
        if call.redial and rng.random() < P.REDIAL_AFTER_EXIT_SHARE:
            self._redial(t, call)

    # queues and agents

    def _head(self, q: str) -> _Call | None:
        line = self.waiting[q]
        while line and (line[0][0].state != WAITING or line[0][0].epoch != line[0][1]):
            line.popleft()  # answered, abandoned or moved on since it joined this line
        return line[0][0] if line else None

    def _ring(self, agent: _Agent) -> float:
        return self.rng.uniform(*(P.AUTO_ANSWER_RING_S if agent.auto else P.RING_S))

    def _dispatch(self, q: str, t: float) -> None:
        """Connect waiting calls of q to its ready agents (the longest idle first)."""
        ready = self.ready[q]
        while ready and (call := self._head(q)) is not None:
            agent = min(ready, key=lambda a: (a.idle_since, a.index))
            answer = t + self._ring(agent)
            if not self.is_open(q, answer):
                return
            self.waiting[q].popleft()
            if call.give_up > answer:  # else the caller hangs up while it rings
                self._leave(call, TALKING)
                self._answer(answer, call, agent)

    def _answer(self, t: float, call: _Call, agent: _Agent) -> None:
        call.state, prof, rng = TALKING, P.queue_profile(call.queue), self.rng
        self.emit(t, E.CallAnswered, E.CallAnsweredData(call_id=call.id, queue=call.queue, agent=agent.id), call)
        self._state(t, agent, "busy")
        if not call.internal and self.sim.targets[call.queue] and rng.random() < P.HANDOFF_SHARE:
            self.at(t, self._talk_end, call, agent, True)  # handed on at once: answer + re-queue in one second
            return
        mu = math.log(prof.talk_mean_s) - P.TALK_SIGMA**2 / 2
        self.at(t + max(P.TALK_MIN_S, rng.lognormvariate(mu, P.TALK_SIGMA)), self._talk_end, call, agent, False)

    def _talk_end(self, t: float, call: _Call, agent: _Agent, handoff: bool) -> None:
        rng, targets = self.rng, self.sim.targets[call.queue]
        if handoff or (not call.internal and targets and rng.random() < P.INTERNAL_TRANSFER_SHARE):
            call.internal = True
            self.at(t if handoff else t + rng.uniform(3, 10), self._enqueue, call, rng.choice(targets))
        else:
            call.state = DONE
            self.emit(t, E.CallEnded, E.CallEndedData(call_id=call.id), call)
        self._state(t, agent, "wrap_up")
        self.at(t + rng.uniform(*(P.HANDOFF_WRAP_S if handoff else P.WRAP_S)), self._wrap_end, agent)

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
        if agent.state == "logged_out" or state == "logged_out":
            for q in agent.queues:
                self.logged_in[q] += 1 if agent.state == "logged_out" else -1
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
        rng, absence, sim = self.rng, P.ABSENCE_BY_MONTH[self.day.month - 1], self.sim
        today: list[tuple[int, str, list[str], list[tuple[float, float]]]] = []
        away: list[bool] = []
        for index, (agent_id, queues, peak_only) in enumerate(sim.roster):
            segments = self._segments(queues[0], index)
            absent, calendar = rng.random() < absence, sim.agreements.queues[queues[0]].calendar_id
            if not segments or (peak_only and not sim.month_start(self.day, calendar)):
                continue
            today.append((index, agent_id, queues, segments))
            away.append(absent)
        covered = {q for (_, _, queues, _), absent in zip(today, away, strict=True) if not absent for q in queues}
        for i, (_, _, queues, _) in enumerate(today):  # nobody would serve a queue: a colleague stands in
            if away[i] and not covered.issuperset(queues) and rng.random() < P.STAND_IN_SHARE:
                away[i] = False
                covered.update(queues)
        for (index, agent_id, queues, segments), absent in zip(today, away, strict=True):
            if absent:
                continue
            agent = _Agent(agent_id, index, queues, auto=index % P.AUTO_ANSWER_EVERY == 1)
            self.staff[queues[0]].append(agent)
            if self.day.weekday() == sim.meeting_day[queues[0]] and segments[0][1] - segments[0][0] > P.MEETING_S:
                login = segments[0][0] + P.MEETING_S + rng.uniform(0, 120)  # the team meeting: the queue stays open
                segments[0] = (login, segments[0][1])
            else:
                login = segments[0][0] - rng.uniform(60, 420)
            self.at(login, self._state, agent, "not_ready")  # logs in
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
