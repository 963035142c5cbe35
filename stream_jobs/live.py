"""Live state for the wall and the alerts (docs/live-metrics.md), fed by the Deriver's changes.

Counters count transitions (a contact's outcome becoming known, a case ending) found by
comparing each touched entity's facts before and after a batch, so a redelivered batch,
whose events the warehouse already holds, counts nothing again. Gauges are computed at
scrape time against the event clock.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from availability.warehouse import Warehouse
from schemas.agreements import Agreements
from schemas.events import AgentStateChanged, Event, decode
from stream_jobs.calls import ABANDONED, ANSWERED, CALLBACK, WAITING, CallFact
from stream_jobs.deriver import BatchResult
from stream_jobs.mail import OPEN, REPLIED, MailCase

STALE_WAIT = timedelta(hours=4)  # a call "waiting" longer lost its end event; stop showing it

# What `restore` reads: calls still waiting (recently), open cases, each agent's last state.
WAITING_SQL = """
SELECT call_id, queue, assumeNotNull(first_queued_at) FROM call_facts FINAL
WHERE outcome = 'waiting' AND first_queued_at >= (SELECT max(first_queued_at) FROM call_facts) - INTERVAL 4 HOUR
"""
OPEN_CASES_SQL = """
SELECT mailbox, thread_id, seq, opened_at, opened_clock, priority, target_seconds, messages,
       nullIf(sender_ref, '') AS sender_ref
FROM mail_cases FINAL WHERE end = ''
"""
AGENTS_SQL = """
SELECT key, argMax(payload, (time, id)) FROM events
WHERE kind = 'agent' AND time >= (SELECT max(time) FROM events WHERE kind = 'agent') - INTERVAL 1 DAY
GROUP BY key
"""
OUTCOMES = ("answered_in_sl", "answered_late", "abandoned", "abandoned_short", "callback", "out_of_hours")


def outcome_of(fact: CallFact) -> str | None:
    """The contact's outcome category, or None while it waits (or there is no contact)."""
    c = fact.contact
    if c is None:
        return None
    if not fact.queue_open:
        return "out_of_hours"
    if c.outcome == ANSWERED:
        return "answered_in_sl" if fact.in_service_level else "answered_late"
    if c.outcome == ABANDONED:
        return "abandoned_short" if fact.short_abandon else "abandoned"
    if c.outcome == CALLBACK:
        return "callback"
    return None


class LiveState(Collector):
    def __init__(self, agreements: Agreements) -> None:
        self.agreements = agreements
        self.contacts: Counter[tuple[str, str]] = Counter()  # (queue, outcome)
        self.transferred: Counter[str] = Counter()
        self.by_day: Counter[tuple[date, str, str]] = Counter()  # (local day first queued, queue, outcome)
        self.waiting: dict[str, tuple[str, datetime]] = {}  # call id -> (queue, first queued)
        self.open_cases: dict[tuple[str, str, int], MailCase] = {}
        self.ended_cases: Counter[tuple[str, str]] = Counter()  # (mailbox, outcome)
        self.agents: dict[str, AgentStateChanged] = {}  # latest state event per agent
        self.source_event: dict[str, float] = {}
        # The sources that must keep sending start as seen now, so one silent since the worker
        # started still sets off the freshness alert.
        started = time.time()
        self.source_seen: dict[str, float] = {
            s: started for s in ["callguide", *(f"imap/{m}" for m in agreements.mailboxes)]
        }
        self._clock: tuple[datetime, float] | None = None  # (latest event time, wall time then)

    # -- feeding ----------------------------------------------------------------------------

    def observe(self, events: Sequence[Event], result: BatchResult) -> None:
        wall = time.time()
        for ev in events:
            stamp = ev.time.timestamp()
            if stamp > self.source_event.get(ev.source, 0.0):
                self.source_event[ev.source] = stamp
            self.source_seen[ev.source] = wall
            if type(ev) is AgentStateChanged:
                held = self.agents.get(ev.data.agent)
                if held is None or (ev.time, ev.id) > (held.time, held.id):
                    self.agents[ev.data.agent] = ev
        if events:
            latest = max(ev.time for ev in events)
            if self._clock is None or latest > self._clock[0]:
                self._clock = (latest, wall)
        for before, after in result.call_changes:
            self._call_changed(before, after)
        for before_cases, after_cases in result.case_changes:
            self._cases_changed(before_cases, after_cases)

    def _call_changed(self, before: CallFact | None, after: CallFact) -> None:
        c = after.contact
        if c is None:
            return
        was = outcome_of(before) if before is not None else None
        now = outcome_of(after)
        if now is not None and was is None:
            self.contacts[(c.queue, now)] += 1
            self.by_day[(c.queued_at.astimezone(self.agreements.timezone).date(), c.queue, now)] += 1
        left_before = before.contact.transferred_from if before is not None and before.contact else ()
        for queue in c.transferred_from[len(left_before) :]:
            self.transferred[queue] += 1
        if c.outcome == WAITING:
            self.waiting[after.call_id] = (c.queue, c.queued_at)
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

    def restore(self, warehouse: Warehouse, owns: Callable[[str, str], bool]) -> None:
        """Rebuild the gauges' state (waiting calls, open cases, agents' states, the event
        clock) from the warehouse, for the entities this worker owns: `owns(kind, key)` says
        whether a call, mail or agent key is in a partition assigned to it. Run at start and
        after every rebalance, so each entity is shown by exactly one worker."""
        self.waiting, self.open_cases, self.agents = {}, {}, {}
        latest = warehouse.query("SELECT max(time) FROM events")[0][0]
        if latest is not None and latest.year > 1970:
            stamp = latest.replace(tzinfo=UTC)
            if self._clock is None or stamp > self._clock[0]:
                self._clock = (stamp, time.time())
        for call_id, queue, since in warehouse.query(WAITING_SQL):
            if owns("call", call_id):
                self.waiting[call_id] = (queue, since.replace(tzinfo=UTC))
        for row in warehouse.records(OPEN_CASES_SQL):
            if owns("mail", f"{row['mailbox']}/{row['thread_id']}") and row["mailbox"] in self.agreements.mailboxes:
                row["opened_at"] = row["opened_at"].replace(tzinfo=UTC)
                case = MailCase(**row, ended_at=None, end=OPEN, close_reason="", lead_seconds=None)
                self.open_cases[(case.mailbox, case.thread_id, case.seq)] = case
        for agent, payload in warehouse.query(AGENTS_SQL):
            latest_state = decode(payload)
            if owns("agent", agent) and type(latest_state) is AgentStateChanged:
                self.agents[agent] = latest_state

    # -- reading ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The event clock: the latest event time, advanced by the wall time since."""
        if self._clock is None:
            return datetime.now(UTC)
        latest, wall = self._clock
        return latest + timedelta(seconds=max(0.0, time.time() - wall))

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self.now()
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
        yield from self._mailbox_families(now)

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
        yield from (event_time, seen)

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
        counts: Counter[tuple[str, str, str]] = Counter()  # (mailbox, priority, kind)
        ages: dict[str, float] = defaultdict(float)
        for case in self.open_cases.values():
            mb = self.agreements.mailboxes[case.mailbox]
            age = mb.calendar.clock(now) - case.opened_clock
            prio = "true" if case.priority else "false"
            counts[(case.mailbox, prio, "open")] += 1
            ages[case.mailbox] = max(ages[case.mailbox], age)
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
            is_open.add_metric([mid], 1.0 if mb.calendar.is_open(now) else 0.0)
            for outcome in ("answered_within", "answered_late", "closed"):
                ended.add_metric([mid, outcome], self.ended_cases[(mid, outcome)])
        yield from (open_cases, oldest, breached, soon, is_open, ended)

    def _forget_old_days(self, today: date) -> None:
        for key in [k for k in self.by_day if k[0] < today - timedelta(days=1)]:
            del self.by_day[key]

    def _forget_stale_waits(self, now: datetime) -> None:
        for call_id in [k for k, (_, since) in self.waiting.items() if now - since > STALE_WAIT]:
            del self.waiting[call_id]
