"""Live state for the wall and the alerts (docs/live-metrics.md), fed by the Deriver's changes.

Counters count transitions (a contact's outcome becoming known, a case ending) found by
comparing each touched entity's facts before and after a batch, so a redelivered batch,
whose events the store already holds, counts nothing again. Gauges are computed at
scrape time against the clock.

"Now" is a clock the worker is given (the wall clock in production), never a time taken from
the events: one event dated 2150 must not make every open case breached, neither live nor
after a restart. The live boundary rejects events more than MAX_FUTURE ahead of that clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.boundary import now_utc
from schemas.agreements import Agreements
from schemas.events import EARLIEST_TIME, MAX_FUTURE, AgentStateChanged, Event, decode
from stream_jobs.core import outlook
from stream_jobs.core.calls import ABANDONED, ANSWERED, CALLBACK, FLOWED_OUT, WAITING, CallFact, Contact
from stream_jobs.core.deriver import BatchResult
from stream_jobs.core.mail import OPEN, REPLIED, MailCase
from stream_jobs.core.ordering import conflict_key
from stream_jobs.core.store import INTERVAL, Store, as_utc, interval_of

log = logging.getLogger(__name__)

MAX_CONFLICTS_REMEMBERED = 100_000
STALE_WAIT = timedelta(hours=4)  # a call "waiting" longer lost its end event; stop showing it
AGENT_HORIZON = timedelta(days=1)  # an agent with no state change for a day is not restored
# The outlook (docs/forecasting.md): recomputed at most this often, from the last SAMPLES contacts
# and handling cycles of each queue; before there are any, these priors (a few pseudo-samples).
PREDICT_EVERY = timedelta(seconds=15)
SAMPLES = 300
PRIOR_HANDLE_S, PRIOR_PATIENCE_S, PRIOR_AWAY_S, PRIOR_WEIGHT = 345.0, 150.0, 300.0, 3
HISTORY_WEEKS = 4  # the same weekday and time on this many earlier weeks shapes the arrival forecast
SERVING = ("ready", "busy", "wrap_up")  # an agent in these states is taking the queue's calls
MAX_CYCLE = timedelta(hours=1)  # a handling cycle longer than this is a lost event
REPLAY_RETRY = timedelta(minutes=15)  # a failed replay of the earlier weeks' agent events is tried again
MAX_IN_SYSTEM = 300  # calls in the system beyond the agents the outlook takes in (lost end events)

# The `source` label takes these values, `imap/<mailbox>` of the agreements, or OTHER_SOURCE:
# a source name is free text from outside, and every distinct label value is a new series.
# Sources labelled by name besides each mailbox's `imap/<id>` and `mail/<id>` (the IMAP poller, a
# mail archive's import): the webhook, the simulator, the queue_log adapter's and the shipped
# Telia ACE mapping's default names (docs/sources.md). Any other source is `other`.
FIXED_SOURCES = ("callguide", "simulator", "asterisk", "telia-ace")
OTHER_SOURCE = "other"


def shifted_clock(
    start: datetime, speed: float = 1.0, wall: Callable[[], float] = time.time, anchor: float | None = None
) -> Callable[[], datetime]:
    """A clock that reads `start` at the wall-clock instant `anchor` (Unix seconds; default now)
    and runs at `speed` × the wall clock (demos and tests that replay a past day; `availability
    stream --clock-start`). A shared anchor lets a publisher and a worker started a few seconds
    apart keep the same simulated time, which at 600× matters: a second's skew is 10 minutes."""
    origin = wall() if anchor is None else anchor
    return lambda: start + timedelta(seconds=(wall() - origin) * speed)


OUTCOMES = ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "flowed_out", "out_of_hours")


def outcome_of(contact: Contact | None) -> str | None:
    """An ordinary contact's outcome category, or None while it waits (or for an internal
    transfer, which is in no KPI)."""
    if contact is None or contact.internal or contact.outcome == WAITING:
        return None
    if not contact.queue_open:
        return "out_of_hours"
    if contact.outcome == ANSWERED:
        return "answered_in_sl" if contact.in_service_level else "answered_late"
    if contact.outcome == ABANDONED:
        return "abandoned_short" if contact.short_abandon else "abandoned"
    if contact.outcome == CALLBACK:
        return "callback"
    if contact.outcome == FLOWED_OUT:
        return "flowed_out"
    return None


class LiveState(Collector):
    def __init__(self, agreements: Agreements, *, clock: Callable[[], datetime] = now_utc) -> None:
        self.agreements = agreements
        self.clock = clock
        self.contacts: Counter[tuple[str, str]] = Counter()  # (queue, outcome)
        self.transferred: Counter[str] = Counter()
        self.by_day: Counter[tuple[date, str, str]] = Counter()  # (local day first queued, queue, outcome)
        self.waiting: dict[str, tuple[str, datetime]] = {}  # call id -> (queue, first queued)
        self.open_cases: dict[tuple[str, str, int], MailCase] = {}
        self.ended_cases: Counter[tuple[str, str]] = Counter()  # (mailbox, outcome)
        self.agents: dict[str, AgentStateChanged] = {}  # latest state event per agent
        self.source_event: dict[str, float] = {}
        mailboxes = [f"{kind}/{m}" for m in agreements.mailboxes for kind in ("imap", "mail")]
        self.sources = frozenset([*FIXED_SOURCES, *mailboxes])
        # The sources that must keep sending start as seen now, so one silent since the worker
        # started still sets off the freshness alert.
        started = time.time()
        self.source_seen: dict[str, float] = {
            s: started for s in ["callguide", *(f"imap/{m}" for m in agreements.mailboxes)]
        }
        # Conflicting duplicates met, by source label; each other version once (a redelivery
        # meets it again), remembered up to a bound: conflicts are rare, a flood is counted anyway.
        self.conflicts: Counter[str] = Counter()
        self._conflicts_seen: set[tuple[str, str, str]] = set()
        self.skipped_rows = 0  # stored rows `restore` could not use (logged)
        self._failed_sections: set[str] = set()
        # What the outlook needs, per queue: contacts first queued (clock-pruned), the base
        # contacts settled in the last window (clock time, answered within T), recent waits
        # (seconds, left unanswered, booked a callback) and handling cycles (busy to free, s).
        self.arrived: dict[str, deque[datetime]] = defaultdict(deque)
        self.settled: dict[str, deque[tuple[datetime, bool]]] = defaultdict(deque)
        self.waits: dict[str, deque[tuple[float, bool, bool]]] = defaultdict(lambda: deque(maxlen=SAMPLES))
        self.handling: dict[str, deque[float]] = _last_samples()
        self.kinds: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=SAMPLES))  # base, short, callback
        self._restored_at: datetime | None = None
        self._pruned: datetime | None = None
        self.away: dict[str, deque[float]] = _last_samples()  # not-ready spells, s
        self._busy_since: dict[str, datetime] = {}
        self._away_since: dict[str, datetime] = {}
        # Arrivals per (queue, 15-minute interval start, UTC) of earlier weeks, from the store.
        self.history: dict[tuple[str, datetime], int] = {}
        self.history_days: set[date] = set()
        self._history_store: Store | None = None
        self._history_day: date | None = None
        # A replay of the agent events that failed: (store, owns, when), tried again REPLAY_RETRY later.
        self._replay_retry: tuple[Store, Callable[[str, str], bool], datetime] | None = None
        self._predicted: tuple[datetime, dict[str, outlook.Prediction]] | None = None
        # Agents serving each queue, sampled per minute (UTC) while open: the staffing of earlier
        # weeks (breaks, lunches, shift ends), replayed from the store at each restore and
        # sampled at each scrape since.
        self.staffing: dict[tuple[str, datetime], int] = {}

    def source_label(self, source: str) -> str:
        """The `source` label: a known source as it is, anything else `other` (bounded series)."""
        return source if source in self.sources else OTHER_SOURCE

    # -- feeding ----------------------------------------------------------------------------

    def observe(self, events: Sequence[Event], result: BatchResult) -> None:
        wall = time.time()
        label_of = self.source_label
        for ev in events:
            label = label_of(ev.source)
            stamp = ev.time.timestamp()
            if stamp > self.source_event.get(label, 0.0):
                self.source_event[label] = stamp
            self.source_seen[label] = wall
            if type(ev) is AgentStateChanged:
                held = self.agents.get(ev.data.agent)
                if held is None or (ev.time, ev.id) > (held.time, held.id):
                    self.agents[ev.data.agent] = ev
                    self._cycle(held, ev)
        for _, other in result.conflicts:
            seen = conflict_key(other)
            if seen not in self._conflicts_seen:
                if len(self._conflicts_seen) < MAX_CONFLICTS_REMEMBERED:
                    self._conflicts_seen.add(seen)
                self.conflicts[label_of(other.source)] += 1
        for before, after in result.call_changes:
            self._call_changed(before, after)
        for before_cases, after_cases in result.case_changes:
            self._cases_changed(before_cases, after_cases)
        self._refresh_history()

    def _call_changed(self, before: CallFact | None, after: CallFact) -> None:
        """Count what the batch settled: the outcomes and transfers out that `after` has and
        `before` had not, compared as multisets of (local day, queue, outcome) and queues left, not
        contact by contact (a late event can add a contact before the others and renumber them).
        A contact whose outcome changes (a late event turns an abandon into an answer) is not
        counted again: at most as many outcomes are added as contacts became final."""
        tz = self.agreements.timezone
        was, now = _settled(before, tz), _settled(after, tz)
        room = sum(now.values()) - sum(was.values())
        for key, n in (now - was).items():
            n = min(n, room)
            if n <= 0:
                break
            _, queue, outcome = key
            self.contacts[(queue, outcome)] += n
            self.by_day[key] += n
            room -= n
        self.transferred.update(_left(after) - _left(before))
        self._outlook_inputs(before, after)
        last = after.contacts[-1] if after.contacts else None
        if last is not None and last.outcome == WAITING:  # physically in the queue, internal or not
            self.waiting[after.call_id] = (last.queue, last.queued_at)
        else:
            self.waiting.pop(after.call_id, None)

    def _cases_changed(self, before: list[MailCase], after: list[MailCase]) -> None:
        ended_before = {c.seq for c in before if c.end != OPEN}
        for case in after:
            key = (case.mailbox, case.thread_id, case.seq)
            if case.end == OPEN:
                self.open_cases[key] = case
                continue
            self.open_cases.pop(key, None)
            if case.seq not in ended_before:
                outcome = (
                    "closed" if case.end != REPLIED else "answered_within" if case.within_target else "answered_late"
                )
                self.ended_cases[(case.mailbox, outcome)] += 1

    def _outlook_inputs(self, before: CallFact | None, after: CallFact) -> None:
        """Note the contacts this batch started (arrivals) and settled (waits; the window's base)."""
        now = self.clock()
        had = {(c.queue, c.queued_at, c.outcome) for c in before.contacts} if before is not None else set()
        # A contact is one arrival, in the last queue it waited in (as the warehouse's intervals
        # count it): a transfer keeps its first-queued time and moves it to the new queue.
        started = {c.queued_at: c.queue for c in before.contacts if not c.internal} if before is not None else {}
        for c in after.contacts:
            if c.internal:
                continue
            was_in = started.get(c.queued_at)
            if was_in != c.queue:
                if was_in is not None and c.queued_at in self.arrived[was_in]:
                    self.arrived[was_in].remove(c.queued_at)
                self.arrived[c.queue].append(c.queued_at)
            if c.outcome == WAITING or not c.queue_open or (c.queue, c.queued_at, c.outcome) in had:
                continue
            self.kinds[c.queue].append("short" if c.short_abandon else "callback" if c.outcome == CALLBACK else "base")
            if c.short_abandon:  # hung up at once: neither patience nor the base
                continue
            wait = c.wait_seconds or 0.0
            self.waits[c.queue].append((wait, c.outcome in (ABANDONED, CALLBACK, FLOWED_OUT), c.outcome == CALLBACK))
            if c.outcome != CALLBACK:  # callbacks are outside the service level's base
                self.settled[c.queue].append((now, c.in_service_level))

    def _cycle(self, held: AgentStateChanged | None, ev: AgentStateChanged) -> None:
        """A handling cycle runs from busy to the end of the wrap-up: its length is a handle time
        of the agent's queues."""
        agent, state = ev.data.agent, ev.data.state
        was = held.data.state if held is not None else None
        if was in ("busy", "wrap_up") and (state not in ("busy", "wrap_up") or (state == "busy" and was == "wrap_up")):
            since = self._busy_since.pop(agent, None)
            seconds = (ev.time - since).total_seconds() if since is not None else -1.0
            if held is not None and 0 < seconds < MAX_CYCLE.total_seconds():
                for queue in held.data.queues:
                    self.handling[queue].append(seconds)
        if state == "busy" and agent not in self._busy_since:
            self._busy_since[agent] = ev.time
        # A spell of not being ready ends when the agent is ready or busy again (not at logging out).
        if state == "not_ready":
            self._away_since.setdefault(agent, ev.time)
        elif was == "not_ready" or state == "logged_out":
            since = self._away_since.pop(agent, None)
            seconds = (ev.time - since).total_seconds() if since is not None else -1.0
            # Spells longer than the horizon (a lunch closure, a meeting) say nothing about the
            # next half hour's returns; the breaks and back-office work inside it do.
            if held is not None and state != "logged_out" and 0 < seconds <= outlook.HORIZON.total_seconds():
                for queue in held.data.queues:
                    self.away[queue].append(seconds)

    def load_history(self, store: Store) -> None:
        """Read the arrivals of the earlier weeks the forecast looks at (at restore, then daily)."""
        now = self.clock()
        since = now - timedelta(weeks=HISTORY_WEEKS, days=1)
        self._history_store = store
        self._history_day = now.astimezone(self.agreements.timezone).date()
        self.history = {(q, as_utc(at)): n for q, at, n in store.arrivals(since, now)}
        # A day without a single arrival in any queue is a day the store does not hold (a new
        # warehouse), not a day without callers: it is left out of the mean, not counted as 0.
        tz = self.agreements.timezone
        self.history_days = {at.astimezone(tz).date() for _, at in self.history}

    def _refresh_history(self) -> None:
        store = self._history_store
        if store is not None and self.clock().astimezone(self.agreements.timezone).date() != self._history_day:
            self._read_history(store)
        retry = self._replay_retry
        if retry is not None and self.clock() - retry[2] >= REPLAY_RETRY:
            self._replay_agents(retry[0], retry[1], self.clock())

    def _read_history(self, store: Store) -> None:
        """load_history, or a warning: the forecast then uses the recent arrivals alone, and the
        read is tried again the next day (not at every batch)."""
        try:
            self.load_history(store)
        except Exception as exc:
            self._history_store = store
            self._history_day = self.clock().astimezone(self.agreements.timezone).date()
            log.warning("the outlook could not read earlier weeks' arrivals (%s: %s)", type(exc).__name__, exc)

    def sample_staffing(self, now: datetime) -> None:
        """Note how many agents serve each open queue as this minute begins: at its first scrape
        (as a restarted worker replays the stored agent events, `_replay_agents`)."""
        minute = as_utc(now).replace(second=0, microsecond=0)
        serving = Counter(q for ev in self.agents.values() if ev.data.state in SERVING for q in ev.data.queues)
        for qid, q in self.agreements.queues.items():
            if q.calendar.is_open(now):
                self.staffing.setdefault((qid, minute), serving[qid])
        if self._pruned is None or minute - self._pruned >= timedelta(hours=1):  # by age, hourly
            self._pruned = minute
            keep = minute - timedelta(weeks=HISTORY_WEEKS, days=1)
            self.staffing = {k: n for k, n in self.staffing.items() if k[1] >= keep}

    def staffed(self, queue: str, start: datetime, length: timedelta) -> list[float]:
        """The mean of the agents sampled serving the queue in each of the outlook's segments of
        [start, start + length) (nan where no minute of it was sampled)."""
        segment, out = length / outlook.SEGMENTS, []
        for k in range(outlook.SEGMENTS):
            a, b = start + k * segment, start + (k + 1) * segment
            minute, seen = a.replace(second=0, microsecond=0), []
            while minute < b:
                if (n := self.staffing.get((queue, minute))) is not None:
                    seen.append(n)
                minute += timedelta(minutes=1)
            out.append(sum(seen) / len(seen) if seen else math.nan)
        return out

    def staffing_change(self, queue: str, now: datetime, length: timedelta) -> list[float] | None:
        """How many more agents served the queue than at `now`, on average in each of the
        outlook's segments of [now, now + length), on the same weekday and local time of earlier
        weeks (None if never seen)."""
        local, weeks_seen = now.astimezone(self.agreements.timezone), []
        for weeks in range(1, HISTORY_WEEKS + 1):
            start = as_utc(local - timedelta(weeks=weeks)).replace(second=0, microsecond=0)
            at_start = self.staffing.get((queue, start))
            if at_start is None:
                continue
            weeks_seen.append([n - at_start for n in self.staffed(queue, start, length)])
        if not weeks_seen:
            return None
        mean: list[float] = []
        for k in range(outlook.SEGMENTS):
            known = [w[k] for w in weeks_seen if not math.isnan(w[k])]
            mean.append(sum(known) / len(known) if known else (mean[-1] if mean else 0.0))
        return mean

    def history_mean(self, queue: str, now: datetime, offset: timedelta, length: timedelta) -> float | None:
        """Mean arrivals of the earlier weeks in [now + offset, + length) on the same weekday and
        local time, over the weeks the store holds and the queue was open then; None without any."""
        tz, calendar = self.agreements.timezone, self.agreements.queues[queue].calendar
        local = now.astimezone(tz)
        counts = []
        for weeks in range(1, HISTORY_WEEKS + 1):
            then = local - timedelta(weeks=weeks)  # wall-clock arithmetic: the same local time across DST
            start = (then + offset).astimezone(UTC)
            if then.date() not in self.history_days or not calendar.is_open(then):
                continue
            counts.append(self._arrivals_between(queue, start, start + length))
        return sum(counts) / len(counts) if counts else None

    def _arrivals_between(self, queue: str, start: datetime, end: datetime) -> float:
        """Stored arrivals in [start, end), taking a share of a 15-minute interval cut by either end."""
        total, at = 0.0, interval_of(start)
        while at < end:
            n = self.history.get((queue, at), 0)
            if n:
                overlap = (min(end, at + INTERVAL) - max(start, at)).total_seconds()
                total += n * overlap / INTERVAL.total_seconds()
            at += INTERVAL
        return total

    def predictions(self, now: datetime) -> dict[str, outlook.Prediction]:
        """The outlook of every open queue (recomputed at most every PREDICT_EVERY)."""
        out = self.predicted(now)
        if out is None:
            out = outlook.predict_all(self.outlook_inputs(now))
            self.keep_predictions(now, out)
        return out

    def predicted(self, now: datetime) -> dict[str, outlook.Prediction] | None:
        """The outlook computed less than PREDICT_EVERY before `now`, if any."""
        cached = self._predicted
        return cached[1] if cached is not None and timedelta(0) <= now - cached[0] < PREDICT_EVERY else None

    def keep_predictions(self, now: datetime, out: dict[str, outlook.Prediction]) -> None:
        self._predicted = (now, out)

    def outlook_inputs(self, now: datetime) -> dict[str, outlook.QueueNow]:
        """What each open queue's outlook is computed from. Read from the live state, so on the
        thread that changes it (the worker's event loop); the model itself can run on another."""
        return {qid: state for qid in self.agreements.queues if (state := self.queue_now(qid, now)) is not None}

    def queue_now(self, queue: str, now: datetime) -> outlook.QueueNow | None:
        """What the outlook is computed from, for an open queue (None while closed)."""
        q = self.agreements.queues[queue]
        step = outlook.STEP
        if not q.calendar.is_open(now):
            return None
        horizon = outlook.HORIZON.total_seconds()
        for i in range(1, int(horizon // step) + 1):  # until the horizon or the queue closes
            if not q.calendar.is_open(now + timedelta(seconds=i * step)):
                horizon = i * step
                break
        window = outlook.WINDOW
        arrived, settled = self.arrived[queue], self.settled[queue]
        while arrived and now - arrived[0] > 2 * window:
            arrived.popleft()
        while settled and now - settled[0][0] > window:
            settled.popleft()
        recent: float = sum(1 for t in arrived if timedelta(0) <= now - t <= window)
        restored = self._restored_at
        if restored is not None and now - window < restored <= now:  # before a restart: from the store
            recent += self._arrivals_between(queue, now - window, restored)
        rate = outlook.expected_arrivals(recent, lambda o, n: self.history_mean(queue, now, o, n), now)
        # An agent who serves several queues counts in each: it takes whichever call waited longest,
        # so it serves a queue whenever that queue needs it (counting it by its share of the answers
        # was 7 points too pessimistic on the simulator's traffic).
        states = Counter(
            ev.data.state for ev in self.agents.values() if queue in ev.data.queues and ev.data.state != "logged_out"
        )
        handles, waits = self.handling[queue], self.waits[queue]
        waited, left, callbacks = (
            sum(w for w, _, _ in waits),
            sum(lf for _, lf, _ in waits),
            sum(cb for *_, cb in waits),
        )
        away = self.away[queue]
        mean_away = (sum(away) + PRIOR_WEIGHT * PRIOR_AWAY_S) / (len(away) + PRIOR_WEIGHT)
        serving = states["ready"] + states["busy"] + states["wrap_up"]
        change = self.staffing_change(queue, now, timedelta(seconds=horizon))
        if change is None:  # no earlier week seen: those not ready come back at their usual pace
            agents, change = serving + states["not_ready"] * outlook.available_share(mean_away, horizon), []
        else:  # breaks, lunches and shift ends as on earlier weeks at this time
            agents = float(serving)
        ages = sorted(((now - since).total_seconds() for qid, since in self.waiting.values() if qid == queue))
        kinds = Counter(self.kinds[queue])
        return outlook.QueueNow(
            arrivals_per_second=rate,
            handle_seconds=(sum(handles) + PRIOR_WEIGHT * PRIOR_HANDLE_S) / (len(handles) + PRIOR_WEIGHT),
            patience_seconds=(waited + PRIOR_WEIGHT * PRIOR_PATIENCE_S) / (left + PRIOR_WEIGHT),
            callback_share=callbacks / left if left else 0.0,
            agents=agents,
            # At most MAX_IN_SYSTEM waiting (the longest waits first dropped: most are lost end events).
            in_system=states["busy"] + states["wrap_up"] + min(len(ages), MAX_IN_SYSTEM),
            horizon_seconds=horizon,
            threshold_seconds=q.service_level_seconds,
            target=q.service_level_target,
            past=[((now - t).total_seconds(), met) for t, met in settled],
            agents_change=change,
            waiting_ages=ages[:MAX_IN_SYSTEM],
            base_share=(kinds["base"] + PRIOR_WEIGHT) / (kinds.total() + PRIOR_WEIGHT),
        )

    def restore(self, store: Store, owns: Callable[[str, str], bool]) -> None:
        """Rebuild the gauges' state (waiting calls, open cases, agents' states) from the
        store, for the entities this worker owns: `owns(kind, key)` says whether a call,
        mail or agent key is in a partition assigned to it. Run at start and after every
        rebalance, so each entity is shown by exactly one worker.

        Only rows within a window around the clock's now are read (calls waiting for at most
        STALE_WAIT, open cases, agents' states of the last AGENT_HORIZON), and a row that cannot
        be used (a payload that no longer decodes, a queue or mailbox the agreements do not
        define, a time outside the accepted range) is skipped and counted, never raised."""
        self.waiting, self.open_cases, self.agents = {}, {}, {}
        self._busy_since, self._away_since = {}, {}  # a cycle begun before is not this worker's to close
        now = self.clock()
        self._restored_at = now
        until = now + MAX_FUTURE
        skipped = 0
        for call_id, queue, since in store.waiting_calls(now - STALE_WAIT, until):
            if queue not in self.agreements.queues:
                skipped += 1
            elif owns("call", call_id):
                self.waiting[call_id] = (queue, as_utc(since))
        for row in store.open_cases(EARLIEST_TIME, until):
            if row["mailbox"] not in self.agreements.mailboxes:
                skipped += 1
            elif owns("mail", f"{row['mailbox']}/{row['thread_id']}"):
                case = _case(row)
                if case is None:
                    skipped += 1
                else:
                    self.open_cases[(case.mailbox, case.thread_id, case.seq)] = case
        for agent, payload in store.agent_states(now - AGENT_HORIZON, until):
            try:
                latest_state = decode(payload)
            except Exception:  # a payload written by an older version, or damaged
                skipped += 1
                continue
            if type(latest_state) is not AgentStateChanged or any(
                q not in self.agreements.queues for q in latest_state.data.queues
            ):
                skipped += 1
            elif owns("agent", agent):
                self.agents[agent] = latest_state
        self._read_history(store)
        self._replay_agents(store, owns, now)
        if skipped:
            self.skipped_rows += skipped
            log.warning(
                "restore skipped %d stored rows it could not use (unknown queue or mailbox, bad payload)", skipped
            )

    def _replay_agents(self, store: Store, owns: Callable[[str, str], bool], now: datetime) -> None:
        """The earlier weeks as this worker would have seen them, from the stored agent events of
        the agents it owns: the staffing samples (the breaks and lunches the outlook expects;
        without them it falls back to the `not_ready` spells, docs/forecasting.md#limits), the
        handling cycles and the spells of not being ready. At every restore, as what the worker
        owns may have changed (a rolling update's first assignment is partial); the store holds
        every event the process saw, so what it replays replaces what it had. Each minute is
        sampled as `sample_staffing` samples it: the agents serving each open queue as it begins.
        Read a local day at a time (bounded memory). Minutes are unknown, not "nobody served",
        on a day without a usable agent event stored and before the first one (the warehouse
        began, a gap). If the replay fails, the earlier weeks' samples are dropped (they may be
        of another ownership) and it is tried again REPLAY_RETRY later."""
        self._replay_retry = None
        kept = (self.handling, self.away)
        self.handling, self.away = _last_samples(), _last_samples()
        try:
            self.staffing.update(self._replayed(store, owns, now))
        except Exception as exc:
            self.handling, self.away = kept
            self.staffing = {k: n for k, n in self.staffing.items() if k[1] >= now}
            self._replay_retry = (store, owns, now)
            log.warning("the outlook could not replay earlier weeks' agent events (%s: %s)", type(exc).__name__, exc)
        self._busy_since, self._away_since = {}, {}  # as restore: the live events close cycles from now on

    def _replayed(
        self, store: Store, owns: Callable[[str, str], bool], now: datetime
    ) -> dict[tuple[str, datetime], int]:
        """The staffing samples of `_replay_agents`; the cycles and spells go to the live state's."""
        tz, queues = self.agreements.timezone, self.agreements.queues
        first = (now - timedelta(weeks=HISTORY_WEEKS, days=1)).replace(second=0, microsecond=0)
        staffing: dict[tuple[str, datetime], int] = {}
        held: dict[str, AgentStateChanged] = {}
        serving: Counter[str] = Counter()
        minute, skipped = first, 0

        def sample_until(t: datetime, record: bool) -> None:  # the minutes begun by t: an event at t is after them
            nonlocal minute
            while minute <= t:
                calendars: dict[int, bool] = {}  # queues share calendars
                for qid, q in queues.items():
                    if record and calendars.setdefault(id(q.calendar), q.calendar.is_open(minute)):
                        staffing[(qid, minute)] = serving[qid]
                minute += timedelta(minutes=1)

        lead = first - AGENT_HORIZON  # the states agents are in as the first minute begins
        day = lead.astimezone(tz).date()
        while (start := max(lead, datetime.combine(day, datetime.min.time(), tz).astimezone(UTC))) < now:
            end = min(datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC), now)
            usable = []
            for agent, payload in store.agent_events(start, end):
                try:
                    ev = decode(payload)
                except Exception:  # a payload written by an older version, or damaged
                    skipped += 1
                    continue
                if type(ev) is not AgentStateChanged or any(q not in queues for q in ev.data.queues):
                    skipped += 1
                else:
                    usable.append((agent, ev))
            for agent, ev in usable:
                before = held.get(agent)
                newer = before is None or (ev.time, ev.id) > (before.time, before.id)  # as observe takes it
                if not newer or not owns("agent", agent):
                    continue
                sample_until(ev.time, bool(held))
                for was, sign in ((before, -1), (ev, 1)):
                    if was is not None and was.data.state in SERVING:
                        serving.update({q: sign for q in was.data.queues})
                held[agent] = ev
                self._cycle(before, ev)
            sample_until(end - timedelta(microseconds=1), bool(usable and held))
            day += timedelta(days=1)
        if skipped:
            log.warning("the outlook's replay skipped %d stored agent events it could not use", skipped)
        return staffing

    # -- reading ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The clock's time (the wall clock in production), never an event's."""
        return self.clock()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Every family of docs/live-metrics.md. A section that fails (it should not) is left
        out of this scrape and logged once, so /metrics never answers 500."""
        now = self.now()
        sections: tuple[tuple[str, Callable[[datetime], Iterator[Any]]], ...] = (
            ("queues", self._queue_families),
            ("outlook", self._outlook_families),
            ("mailboxes", self._mailbox_families),
            ("sources", self._source_families),
        )
        for name, section in sections:
            try:
                families = list(section(now))
            except Exception as exc:
                if name not in self._failed_sections:
                    self._failed_sections.add(name)
                    log.error(
                        "live metrics: the %s section failed and is left out (%s: %s)", name, type(exc).__name__, exc
                    )
                continue
            yield from families

    def _queue_families(self, now: datetime) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        queues = self.agreements.queues

        contacts = CounterMetricFamily(
            "availability_queue_contacts", "Contacts with a final outcome", labels=["queue", "outcome"]
        )
        transferred = CounterMetricFamily(
            "availability_queue_transferred_out", "Contacts that left the queue before answer", labels=["queue"]
        )
        today = GaugeMetricFamily(
            "availability_queue_today_contacts", "Contacts first queued today, by outcome", labels=["queue", "outcome"]
        )
        waiting = GaugeMetricFamily("availability_queue_waiting", "Calls waiting now", labels=["queue"])
        oldest = GaugeMetricFamily("availability_queue_oldest_wait_seconds", "Longest current wait", labels=["queue"])
        agents = GaugeMetricFamily(
            "availability_queue_agents", "Agents serving the queue by state", labels=["queue", "state"]
        )
        is_open = GaugeMetricFamily("availability_queue_open", "1 while the queue is open", labels=["queue"])
        sl_target = GaugeMetricFamily(
            "availability_queue_service_level_target", "Promised service level", labels=["queue"]
        )
        ar_target = GaugeMetricFamily("availability_queue_answer_rate_target", "Promised answer rate", labels=["queue"])
        sl_seconds = GaugeMetricFamily(
            "availability_queue_service_level_seconds", "Service level threshold T", labels=["queue"]
        )

        local_today = now.astimezone(self.agreements.timezone).date()
        self._forget_old_days(local_today)
        self._forget_stale_waits(now)
        waits: dict[str, list[datetime]] = defaultdict(list)
        for queue, since in self.waiting.values():
            waits[queue].append(since)
        agent_states: Counter[tuple[str, str]] = Counter()
        for ev in self.agents.values():
            if ev.data.state != "logged_out":
                for queue in ev.data.queues:
                    agent_states[(queue, ev.data.state)] += 1

        for qid, q in queues.items():
            for outcome in OUTCOMES:
                contacts.add_metric([qid, outcome], self.contacts[(qid, outcome)])
                today.add_metric([qid, outcome], self.by_day[(local_today, qid, outcome)])
            transferred.add_metric([qid], self.transferred[qid])
            waiting.add_metric([qid], len(waits[qid]))
            oldest.add_metric([qid], max(((now - t).total_seconds() for t in waits[qid]), default=0.0))
            for state in ("ready", "busy", "wrap_up", "not_ready"):
                agents.add_metric([qid, state], agent_states[(qid, state)])
            is_open.add_metric([qid], 1.0 if q.calendar.is_open(now) else 0.0)
            sl_target.add_metric([qid], q.service_level_target)
            ar_target.add_metric([qid], q.answer_rate_target)
            sl_seconds.add_metric([qid], q.service_level_seconds)
        yield from (contacts, transferred, today, waiting, oldest, agents, is_open, sl_target, ar_target, sl_seconds)

    def _outlook_families(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        """The next 30 minutes of each open queue (docs/forecasting.md); none for a closed queue."""
        level = GaugeMetricFamily(
            "availability_queue_expected_service_level",
            "Service level expected for the callers of the next 30 minutes (Erlang A)",
            labels=["queue"],
        )
        rate = GaugeMetricFamily(
            "availability_queue_expected_answer_rate", "Answer rate expected over the next 30 minutes", labels=["queue"]
        )
        contacts = GaugeMetricFamily(
            "availability_queue_expected_contacts", "Calls expected over the next 30 minutes", labels=["queue"]
        )
        breach = GaugeMetricFamily(
            "availability_queue_breach_expected_seconds",
            "Seconds until the 30-minute service level is expected below target (0: it is; +Inf: not within 30 min)",
            labels=["queue"],
        )
        needed = GaugeMetricFamily(
            "availability_queue_agents_needed", "More agents that would avoid the expected breach", labels=["queue"]
        )
        self.sample_staffing(now)
        for qid, p in self.predictions(now).items():
            level.add_metric([qid], p.service_level)
            rate.add_metric([qid], p.answer_rate)
            contacts.add_metric([qid], p.contacts)
            breach.add_metric([qid], p.seconds_to_breach)
            needed.add_metric([qid], p.agents_needed)
        yield from (level, rate, contacts, breach, needed)

    def _source_families(self, now: datetime) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        event_time = GaugeMetricFamily(
            "availability_source_last_event_timestamp_seconds", "Event time of the latest event", labels=["source"]
        )
        seen = GaugeMetricFamily(
            "availability_source_last_seen_timestamp_seconds", "When the worker last got an event", labels=["source"]
        )
        for source in sorted(self.source_event):
            event_time.add_metric([source], self.source_event[source])
        for source in sorted(self.source_seen):
            seen.add_metric([source], self.source_seen[source])
        conflicts = CounterMetricFamily(
            "availability_source_conflicting_duplicates",
            "Events with the source and id of another but different content (one version kept)",
            labels=["source"],
        )
        for source in sorted(self.conflicts):
            conflicts.add_metric([source], self.conflicts[source])
        yield from (event_time, seen, conflicts)

    def _mailbox_families(self, now: datetime) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        open_cases = GaugeMetricFamily(
            "availability_mailbox_open_cases", "Cases open now", labels=["mailbox", "priority"]
        )
        oldest = GaugeMetricFamily(
            "availability_mailbox_oldest_open_business_seconds", "Business age of the oldest open case",
            labels=["mailbox"],
        )  # fmt: skip
        breached = GaugeMetricFamily(
            "availability_mailbox_breached_cases", "Open cases past their target", labels=["mailbox", "priority"]
        )
        soon = GaugeMetricFamily(
            "availability_mailbox_breaching_within_hour", "Open cases that breach within the next business hour",
            labels=["mailbox", "priority"],
        )  # fmt: skip
        is_open = GaugeMetricFamily("availability_mailbox_open", "1 while the mailbox is open", labels=["mailbox"])
        ended = CounterMetricFamily(
            "availability_mailbox_cases", "Cases ended, by outcome", labels=["mailbox", "outcome"]
        )
        priority_left = GaugeMetricFamily(
            "availability_mailbox_priority_breach_seconds",
            "Business seconds until the first open priority case passes its target (0: one has; +Inf: none open)",
            labels=["mailbox"],
        )
        counts: Counter[tuple[str, str, str]] = Counter()  # (mailbox, priority, kind)
        ages: dict[str, float] = defaultdict(float)
        left: dict[str, float] = defaultdict(lambda: math.inf)
        clocks = {mid: mb.calendar.clock(now) for mid, mb in self.agreements.mailboxes.items()}
        for case in self.open_cases.values():
            if case.mailbox not in clocks:
                continue
            age = clocks[case.mailbox] - case.opened_clock
            prio = "true" if case.priority else "false"
            counts[(case.mailbox, prio, "open")] += 1
            ages[case.mailbox] = max(ages[case.mailbox], age)
            if case.priority:
                left[case.mailbox] = min(left[case.mailbox], max(case.target_seconds - age, 0.0))
            if age > case.target_seconds:
                counts[(case.mailbox, prio, "breached")] += 1
            elif case.target_seconds - age <= 3600:
                counts[(case.mailbox, prio, "soon")] += 1
        for mid, mb in self.agreements.mailboxes.items():
            for prio in ("true", "false"):
                open_cases.add_metric([mid, prio], counts[(mid, prio, "open")])
                breached.add_metric([mid, prio], counts[(mid, prio, "breached")])
                soon.add_metric([mid, prio], counts[(mid, prio, "soon")])
            oldest.add_metric([mid], ages[mid])
            priority_left.add_metric([mid], left[mid])
            is_open.add_metric([mid], 1.0 if mb.calendar.is_open(now) else 0.0)
            for outcome in ("answered_within", "answered_late", "closed"):
                ended.add_metric([mid, outcome], self.ended_cases[(mid, outcome)])
        yield from (open_cases, oldest, breached, soon, priority_left, is_open, ended)

    def _forget_old_days(self, today: date) -> None:
        for key in [k for k in self.by_day if k[0] < today - timedelta(days=1)]:
            del self.by_day[key]

    def _forget_stale_waits(self, now: datetime) -> None:
        for call_id in [k for k, (_, since) in self.waiting.items() if now - since > STALE_WAIT]:
            del self.waiting[call_id]


def _settled(fact: CallFact | None, tz: ZoneInfo) -> Counter[tuple[date, str, str]]:
    """(local day first queued, queue, outcome category) of a call's contacts with a final outcome."""
    out: Counter[tuple[date, str, str]] = Counter()
    for c in fact.contacts if fact is not None else ():
        outcome = outcome_of(c)
        if outcome is not None:
            out[(c.queued_at.astimezone(tz).date(), c.queue, outcome)] += 1
    return out


def _left(fact: CallFact | None) -> Counter[str]:
    """The queues a call's offered contacts left before answer (the report's transferred_out)."""
    return Counter(
        q
        for c in (fact.contacts if fact is not None else ())
        if not c.internal and c.queue_open
        for q in c.transferred_from
    )


def _case(row: dict[str, Any]) -> MailCase | None:
    """An open case from its stored row; None if the row cannot be one."""
    try:
        opened_at = as_utc(row["opened_at"])
        if opened_at < EARLIEST_TIME:  # before the business clock starts: not a case the wall can age
            return None
        deadline = row.get("working_day_deadline")
        return MailCase(
            **(row | {"opened_at": opened_at, "working_day_deadline": None if deadline is None else as_utc(deadline)}),
            ended_at=None,
            end=OPEN,
            close_reason="",
            lead_seconds=None,
        )
    except Exception:
        return None


def _last_samples() -> defaultdict[str, deque[float]]:
    """The last SAMPLES values of each queue."""
    return defaultdict(lambda: deque(maxlen=SAMPLES))
