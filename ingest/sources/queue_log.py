"""Asterisk `queue_log` -> canonical events: its three layouts read, and one Record for each row.

Layouts (detected per file from its first line that is not a `#` comment or blank):

- native: `epoch|callid|queue|agent|EVENT|data1|…|data5`, as Asterisk writes /var/log/asterisk/queue_log;
- a table printed by psql (Wazo): the same fields between ` | `, the time a local timestamp
  (`2012-07-04 07:33:21.165823`, read in `QueueLogOptions.timezone`); a `time | callid | …` header
  and a `----+----` rule are ignored lines;
- a CSV export with a header, columns found by name: the realtime table `time, callid, queuename,
  agent, event, data1..data5` (or one `data` column holding the pipes; `time` an epoch or a local
  timestamp) and PBXware's `uid, date_time, callid, queue_name, type, event, param1..param3, entpos,
  expos, htime, ttime, time` (`date_time` is the epoch, UTC; PBXware's `time` is a local clock that
  can be a second off, so it is never read; ENTERQUEUE's caller is `param1`).

A table export out of time order is sorted by time in memory before it is translated (psql
prints in any order, Wazo's documentation newest first); a native file, or a table in order, is
read as a stream in the order it was written.

What each verb becomes (`VERBS`; times are the row's epoch; a call id a transfer re-entered under
is replaced by the original call's, see below):

- ENTERQUEUE -> call.offered (at the call's first entry: entrance = the number of the call's DID
  line, else the queue name as written; caller = the callerid if it holds a digit) + call.queued;
- CONNECT -> call.answered (agent = the member) + agent.state busy;
- COMPLETECALLER, COMPLETEAGENT -> call.ended + agent.state (ready, or not_ready if paused);
- ABANDON -> call.abandoned + call.ended (the caller hung up);
- EXITWITHTIMEOUT, EXITEMPTY, EXITWITHKEY -> call.exited timeout, no_agents, exit_key (the
  dialplan goes on: no call.ended); a key in `callback_keys` -> call.callback_requested;
- FULL, JOINEMPTY, JOINUNAVAIL, CLOSED (refused at entry, no ENTERQUEUE) -> call.offered +
  call.queued + call.exited queue_full, no_agents, no_agents, no_agents at the same instant, so the
  unmet demand is counted (flowed out, or out of hours by the agreements' calendar). CLOSED is
  Wazo's closed schedule: the contract has no `closed` reason and no_agents is the nearest;
- TRANSFER, BLINDTRANSFER, ATTENDEDTRANSFER (after an answer) -> call.ended of that talk +
  agent.state; when the transfer handed the caller into a held queue entry (below): no end, that
  entry continues the call;
- ADDMEMBER, REMOVEMEMBER, PAUSE, PAUSEALL, UNPAUSE, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF,
  AGENTCALLBACKLOGIN, AGENTCALLBACKLOGOFF -> agent.state;
- RINGNOANSWER, RINGCANCELED, AGENTDUMP, SYSCOMPAT, DID, QUEUESTART, CONFIGRELOAD, OUT* (PBXware's
  outbound agent calls), QueueMetrics' INFO, CALLSTATUS, EXITCODE, EXITHANGUP -> ignored, each
  with its reason (`IGNORED`); any other verb -> ignored, "<VERB>: a verb this adapter does not read".
- A call verb with callid or queue NONE, an agent verb with agent NONE, an unreadable time or verb
  -> rejected with the reason.

Agents: the member field reduced to its number (`Agent/1127`, `Local/1127@callback-agent/n`,
`PJSIP/1127` -> `1127`; a name stays a name): on one PBX an extension is one person, and
PBXware logs a callback agent as `Local/1127@callback-agent` in ADDMEMBER/REMOVEMEMBER and as
`Agent/1127` everywhere else. agent.state `queues` = the queues the agent is a member of after the
event (ADDMEMBER/REMOVEMEMBER), else the event's queue; `[]` when logged out. State: logged_out after
a LOGOFF (or REMOVEMEMBER from the last queue) until a LOGIN/ADDMEMBER; busy from CONNECT to the end
of that talk; not_ready while paused; else ready. Asterisk does not log wrap-up.

Transfers into a queue (asterisk issue #759): an agent transferring an answered call into another
queue dials that queue from their own phone; the queue logs ENTERQUEUE under the new channel's
callid with the agent's extension as callerid, then ATTENDEDTRANSFER under that callid, and the
answer and end under the original callid. So an ENTERQUEUE whose callerid is the number of an agent
now talking on an answered call is held; a transfer line under its callid ties it to that agent's
call (call.queued of the original call, which metrics.md counts as an internal transfer); any other
outcome (the leg answered, abandoned, the agent's call ending, `hold_seconds`, the end of input)
gives it as a call of its own.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from ingest.sources.records import Record, raw_event, stable_id
from schemas.errors import InputError

MAX_LINE = 64 * 1024  # a queue_log line is ~100 bytes; anything near this is not one
_NONE = ("", "NONE")

# What each verb is (the handler's name in QueueLogTranslator), documented in the table above.
VERBS: dict[str, str] = {
    "ENTERQUEUE": "enter",
    "CONNECT": "connect",
    "COMPLETECALLER": "complete",
    "COMPLETEAGENT": "complete",
    "ABANDON": "abandon",
    "EXITWITHTIMEOUT": "exit",
    "EXITEMPTY": "exit",
    "EXITWITHKEY": "exit",
    "FULL": "refused",
    "JOINEMPTY": "refused",
    "JOINUNAVAIL": "refused",
    "CLOSED": "refused",
    "TRANSFER": "transfer",
    "BLINDTRANSFER": "transfer",
    "ATTENDEDTRANSFER": "transfer",
    "ADDMEMBER": "agent",
    "REMOVEMEMBER": "agent",
    "PAUSE": "agent",
    "PAUSEALL": "agent",
    "UNPAUSE": "agent",
    "UNPAUSEALL": "agent",
    "AGENTLOGIN": "agent",
    "AGENTCALLBACKLOGIN": "agent",
    "AGENTLOGOFF": "agent",
    "AGENTCALLBACKLOGOFF": "agent",
}
EXIT_REASONS = {"EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "no_agents", "EXITWITHKEY": "exit_key"}
REFUSED_REASONS = {"FULL": "queue_full", "JOINEMPTY": "no_agents", "JOINUNAVAIL": "no_agents", "CLOSED": "no_agents"}
IGNORED: dict[str, str] = {
    "RINGNOANSWER": "RINGNOANSWER: a member was rung and did not answer (the call still waits)",
    "RINGCANCELED": "RINGCANCELED: the caller hung up while a member was ringing (ABANDON follows)",
    "AGENTDUMP": "AGENTDUMP: the member hung up during the announcement (the call still waits)",
    "SYSCOMPAT": "SYSCOMPAT: the member's channel was incompatible (the call still waits)",
    "DID": "DID: the dialled number, kept as the entrance of the call's call.offered",
    "QUEUESTART": "QUEUESTART: a system event",
    "CONFIGRELOAD": "CONFIGRELOAD: a system event",
    "INFO": "INFO: a dialplan note (QueueMetrics)",
    "CALLSTATUS": "CALLSTATUS: a dialplan note (QueueMetrics)",
    "EXITCODE": "EXITCODE: a dialplan note (QueueMetrics)",
    "EXITHANGUP": "EXITHANGUP: a dialplan note (QueueMetrics)",
}
COMMENT = "a comment line"
EMPTY = "an empty line"
TABLE_HEADER = "a table header line"
_VERB = re.compile(r"[A-Z][A-Z0-9_]{0,31}").fullmatch
_EPOCH = re.compile(r"(\d{1,11})(?:\.(\d{1,9}))?").fullmatch
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d").match
_AGENT = re.compile(r"[A-Za-z0-9]+/([^@/\s-]+)").match
_RULE = re.compile(r"[-+\s]+").fullmatch


@dataclass(frozen=True)
class QueueLogOptions:
    source: str = "asterisk"  # the events' `source` (the de-duplication scope of their ids)
    queue_map: Mapping[str, str] = field(default_factory=dict)  # the log's queue name -> the agreements' id
    timezone: tzinfo = UTC  # of local timestamps (psql tables, a realtime CSV with dates)
    callback_keys: frozenset[str] = frozenset()  # EXITWITHKEY keys that mean "call me back"
    hold_seconds: float = 3600.0  # the longest a possible consultation leg is held


@dataclass(frozen=True, slots=True)
class Row:
    """One queue_log row in Asterisk's field positions, whatever the layout."""

    time: datetime
    epoch: str  # the time as an id part (Unix seconds)
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]  # data1..data5
    caller: str  # ENTERQUEUE's callerid (data2; PBXware's param1)
    digest: str  # a short hash of the line as read: tells identical-looking rows apart in ids
    text: str  # the line as read (a rejection's text)

    def to_json(self) -> list[Any]:
        return [self.time.isoformat(), self.epoch, self.callid, self.queue, self.agent, self.event,
                list(self.data), self.caller, self.digest, self.text]  # fmt: skip

    @staticmethod
    def from_json(v: list[Any]) -> Row:
        return Row(datetime.fromisoformat(v[0]), v[1], v[2], v[3], v[4], v[5], tuple(v[6]), v[7], v[8], v[9])


Parsed = Row | Record  # a row, or the Record of a line that is none (a comment, a header, unreadable)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.strip().encode("utf-8", "replace"), digest_size=4).hexdigest()


def parse_time(text: str, tz: tzinfo) -> tuple[datetime, str] | None:
    """An epoch (UTC) or a date-time (local in `tz` unless it has an offset) -> (aware time, epoch text)."""
    m = _EPOCH(text)
    try:
        if m:
            t = datetime.fromtimestamp(int(m.group(1)), UTC)
            if m.group(2):
                t += timedelta(microseconds=int(m.group(2)[:6].ljust(6, "0")))
            return t, text
        if not _STAMP(text):
            return None
        t = datetime.fromisoformat(text)
        t = t if t.tzinfo is not None else t.replace(tzinfo=tz)
        t.astimezone(UTC)  # an instant that does not exist in UTC (year 1 in a zone east of it)
    except (ValueError, OverflowError, OSError):
        return None
    stamp = t.timestamp()
    return t, f"{stamp:.6f}".rstrip("0").rstrip(".")


def _row(fields: list[str], data: tuple[str, ...], caller: str | None, line: str, tz: tzinfo) -> Parsed:
    """A Row from the five leading fields (time, callid, queue, agent, event) and the data."""
    when = parse_time(fields[0], tz)
    if when is None:
        return Record("", rejected="time: not a Unix time or a date-time", text=line)
    event = fields[4].upper()
    if not _VERB(event):
        return Record("", rejected="event: not a queue_log verb", text=line)
    data = data + ("",) * (5 - len(data))
    if caller is None:
        caller = data[1] if event == "ENTERQUEUE" else ""
    return Row(when[0], when[1], fields[1], fields[2], fields[3], event, data[:5], caller, _digest(line), line)


class PipeLayout:
    """Native lines, and psql's text tables (the same fields between ` | `, local timestamps)."""

    def __init__(self, timezone: tzinfo = UTC, table: bool = False) -> None:
        self.timezone = timezone
        self.table = table  # psql's printout: rows in any order
        self.name = "psql-table" if table else "native"

    def parse(self, line: str) -> Parsed:
        text = line.rstrip("\r\n")
        if len(text) > MAX_LINE:
            return Record("", rejected=f"line longer than {MAX_LINE // 1024} KiB", text=text[:MAX_LINE])
        fields = [f.strip() for f in text.split("|")]
        if len(fields) < 5:
            if _RULE(text) and "-" in text:
                return Record("", ignored=TABLE_HEADER)
            return Record("", rejected="not a queue_log line (fewer than 5 '|'-separated fields)", text=text)
        if fields[0].lower() == "time" and fields[4].lower() == "event":
            return Record("", ignored=TABLE_HEADER)
        return _row(fields[:5], tuple(fields[5:10]), None, text, self.timezone)


class CsvLayout:
    """A CSV export with a header: the realtime table's columns, or PBXware's."""

    def __init__(self, header: list[str], timezone: tzinfo = UTC) -> None:
        self.timezone = timezone
        cols = {name.strip().lower(): i for i, name in enumerate(header)}
        self.table = True
        self.pbxware = {"date_time", "queue_name", "type", "param1"} <= cols.keys()
        self.name = "pbxware-csv" if self.pbxware else "realtime-csv"
        lead = ("date_time", "callid", "queue_name", "type", "event") if self.pbxware else REALTIME_COLUMNS
        self.lead = [cols[c] for c in lead]
        names = ("param1", "param2", "param3") if self.pbxware else ("data1", "data2", "data3", "data4", "data5")
        self.data = [cols[c] for c in names if c in cols]
        self.joined = None if self.data else cols.get("data")  # one `data` column with the pipes inside
        self.width = len(header)

    def parse(self, line: str) -> Parsed:
        text = line.rstrip("\r\n")
        if len(text) > MAX_LINE:
            return Record("", rejected=f"line longer than {MAX_LINE // 1024} KiB", text=text[:MAX_LINE])
        try:
            cells = next(csv.reader([text]), [])
        except csv.Error:
            return Record("", rejected="not a CSV row", text=text)
        if len(cells) < max(self.lead) + 1:
            return Record("", rejected="a row with fewer columns than the header", text=text)
        fields = [cells[i].strip() for i in self.lead]
        if self.joined is not None:
            data = tuple(cells[self.joined].split("|")) if self.joined < len(cells) else ()
        else:
            data = tuple(cells[i].strip() if i < len(cells) else "" for i in self.data)
        # PBXware moved ENTERQUEUE's callerid to param1 (and the other fields to its own columns).
        caller = data[0] if self.pbxware and fields[4].upper() == "ENTERQUEUE" and data else None
        return _row(fields, data, caller, text, self.timezone)


Layout = PipeLayout | CsvLayout
REALTIME_COLUMNS = ("time", "callid", "queuename", "agent", "event")


def detect_layout(first_line: str, timezone: tzinfo = UTC) -> tuple[Layout, bool]:
    """The layout of a file from its first line that is not a comment: (layout, that line is a header)."""
    text = first_line.strip()
    if "|" not in text and "," in text:
        try:
            header = next(csv.reader([text]), [])
        except csv.Error:
            header = []
        names = {h.strip().lower() for h in header}
        if {"date_time", "queue_name", "type", "param1", "event", "callid"} <= names or set(REALTIME_COLUMNS) <= names:
            return CsvLayout(header, timezone), True
    first = text.split("|", 1)[0].strip()
    return PipeLayout(timezone, table=first.lower() == "time" or bool(_STAMP(first))), False


def agent_key(agent: str) -> str | None:
    """The member field -> the agent's id: its number for `Tech/1127…` interfaces (see the module
    docstring), the field itself for a name; None for NONE."""
    agent = agent.strip()
    if agent in _NONE:
        return None
    m = _AGENT(agent)
    return m.group(1) if m else agent


@dataclass
class _Agent:
    queues: list[str] = field(default_factory=list)  # member of (the agreements' ids), in order added
    paused: bool = False
    logged_out: bool = False
    busy: bool = False

    def state(self) -> str:
        if self.logged_out:
            return "logged_out"
        return "busy" if self.busy else "not_ready" if self.paused else "ready"


@dataclass(frozen=True, slots=True)
class _Held:
    row: Row
    origin: str
    agent: str  # the agent whose number was the callerid


def _bounded_put(d: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > limit:
        d.popitem(last=False)


class QueueLogTranslator:
    """queue_log rows -> Records, one per row, with the state a row needs: which calls were offered,
    the DID of a call, agents' queues and states, who talks on which call, held consultation legs.

    `snapshot()` gives that state as JSON (the follower keeps it in its checkpoint) and
    `QueueLogTranslator(options, state)` takes it back, so a restarted follower translates the
    next line as an uninterrupted one would have."""

    LIMIT = 100_000  # calls remembered (offered, DIDs, transfer aliases): days of a busy switch

    def __init__(self, options: QueueLogOptions | None = None, state: Mapping[str, Any] | None = None) -> None:
        self.options = options or QueueLogOptions()
        self._native = PipeLayout(self.options.timezone)
        self._offered: OrderedDict[str, None] = OrderedDict()
        self._entrance: OrderedDict[str, str] = OrderedDict()  # callid -> DID
        self._alias: OrderedDict[str, str] = OrderedDict()  # a transfer's entry callid -> the original call
        self._agents: dict[str, _Agent] = {}
        self._talking: dict[str, str] = {}  # agent -> the call they answered and still talk on
        self._held: dict[str, _Held] = {}  # callid -> a possible consultation leg's ENTERQUEUE
        if state:
            self._restore(state)
        self._handlers: dict[str, Callable[[Row, str], list[Record]]] = {
            "enter": self._enter,
            "connect": self._connect,
            "complete": self._complete,
            "abandon": self._abandon,
            "exit": self._exit,
            "refused": self._refused,
            "transfer": self._transfer,
            "agent": self._agent_event,
        }

    # -- entry points ---------------------------------------------------------------------------------

    def feed(self, line: str, origin: str) -> list[Record]:
        """One native line (the follower's entry): its Record, and any held Record it resolved."""
        stripped = line.strip()
        if not stripped:
            return [Record(origin, ignored=EMPTY)]
        if stripped.startswith("#"):
            return [Record(origin, ignored=COMMENT)]
        return self.feed_parsed(self._native.parse(line), origin)

    def feed_parsed(self, parsed: Parsed, origin: str) -> list[Record]:
        if isinstance(parsed, Record):
            return [replace(parsed, origin=origin)]
        row = parsed
        out = self._expire(row.time)
        held = self._held.get(row.callid)
        if held is not None and VERBS.get(row.event) not in ("transfer", None):
            out += self._release(row.callid)  # the leg has an outcome of its own: it was a call
        kind = VERBS.get(row.event)
        if kind is None:
            if row.event == "DID" and row.data[0].strip():
                _bounded_put(self._entrance, row.callid, row.data[0].strip(), self.LIMIT)
            return [*out, Record(origin, ignored=self._ignore_reason(row.event))]
        return out + self._handlers[kind](row, origin)

    def flush(self) -> list[Record]:
        """The Records still held at the end of the input: each held leg as a call of its own."""
        out: list[Record] = []
        for callid in list(self._held):
            out += self._release(callid)
        return out

    # -- verbs ----------------------------------------------------------------------------------------

    def _enter(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        caller = row.caller.strip()
        if row.callid not in self._alias and caller in self._talking and self._talking[caller] != row.callid:
            self._held[row.callid] = _Held(row, origin, caller)
            return []
        return [Record(origin, events=self._entry_events(row))]

    def _entry_events(self, row: Row, call_id: str | None = None) -> tuple[dict[str, Any], ...]:
        call = call_id or self._call(row.callid)
        events = []
        if call not in self._offered:
            _bounded_put(self._offered, call, None, self.LIMIT)
            data: dict[str, Any] = {"call_id": call, "entrance": self._entrance.pop(row.callid, "") or row.queue}
            if any(ch.isdigit() for ch in row.caller):
                data["caller"] = row.caller.strip()
            events.append(self._event("call.offered", row, "offered", data))
        events.append(self._event("call.queued", row, "queued", {"call_id": call, "queue": self._queue(row.queue)}))
        return tuple(events)

    def _connect(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row) or self._agent_field(row)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        call, agent = self._call(row.callid), agent_key(row.agent) or ""
        answered = self._event(
            "call.answered", row, "answered", {"call_id": call, "queue": self._queue(row.queue), "agent": agent}
        )
        self._talking[agent] = call
        a = self._agents.setdefault(agent, _Agent())
        a.busy, a.logged_out = True, False
        return [Record(origin, events=(answered, self._agent_state(row, agent)))]

    def _complete(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row, queue=False)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        call = self._call(row.callid)
        ended = self._event("call.ended", row, "ended", {"call_id": call})
        return [*self._talk_over(row, call), Record(origin, events=(ended, *self._freed(row)))]

    def _abandon(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        call = self._call(row.callid)
        abandoned = self._event("call.abandoned", row, "abandoned", {"call_id": call, "queue": self._queue(row.queue)})
        ended = self._event("call.ended", row, "ended", {"call_id": call})
        return [*self._talk_over(row, call), Record(origin, events=(abandoned, ended))]

    def _exit(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        data = {"call_id": self._call(row.callid), "queue": self._queue(row.queue)}
        if row.event == "EXITWITHKEY" and row.data[0].strip() in self.options.callback_keys:
            return [Record(origin, events=(self._event("call.callback_requested", row, "callback", data),))]
        data["reason"] = EXIT_REASONS[row.event]
        return [Record(origin, events=(self._event("call.exited", row, "exited", data),))]

    def _refused(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        data = {
            "call_id": self._call(row.callid),
            "queue": self._queue(row.queue),
            "reason": REFUSED_REASONS[row.event],
        }
        return [Record(origin, events=(*self._entry_events(row), self._event("call.exited", row, "exited", data)))]

    def _transfer(self, row: Row, origin: str) -> list[Record]:
        bad = self._call_fields(row, queue=False)
        if bad:
            return [Record(origin, rejected=bad, text=row.text)]
        agent = agent_key(row.agent)
        held = self._held.pop(row.callid, None)
        if held is not None:
            original = self._talking.get(agent or "") or self._talking.get(held.agent)
            if original is None:  # nobody's call to tie it to: the leg was a call of its own
                self._held[row.callid] = held
                out = self._release(row.callid)
                return out + self._transfer(row, origin)
            # The caller was handed into the held entry's queue: that entry continues the call.
            _bounded_put(self._alias, row.callid, original, self.LIMIT)
            tied = Record(held.origin, events=self._entry_events(held.row, original))
            for who in {agent, held.agent} - {None}:
                if self._talking.get(who or "") == original:
                    del self._talking[who or ""]
                    self._agents.setdefault(who or "", _Agent()).busy = False
            events = (self._agent_state(row, agent),) if agent is not None else ()
            return [tied, Record(origin, events=events, ignored=None if events else self._transfer_note(row))]
        call = self._call(row.callid)
        ended = self._event("call.ended", row, "ended", {"call_id": call})
        return [*self._talk_over(row, call), Record(origin, events=(ended, *self._freed(row)))]

    @staticmethod
    def _transfer_note(row: Row) -> str:
        return f"{row.event}: the caller was handed into a queue; that queue's entry continues the call"

    def _agent_event(self, row: Row, origin: str) -> list[Record]:
        agent = agent_key(row.agent)
        if agent is None:
            return [Record(origin, rejected=f"agent: NONE on {row.event}", text=row.text)]
        a = self._agents.setdefault(agent, _Agent())
        queue = None if row.queue.strip() in _NONE else self._queue(row.queue)
        verb = row.event
        if verb == "ADDMEMBER":
            if queue is not None and queue not in a.queues:
                a.queues.append(queue)
            a.logged_out = False
        elif verb == "REMOVEMEMBER":
            if queue in a.queues:
                a.queues.remove(queue)
            if not a.queues:
                a.logged_out, a.busy, a.paused = True, False, False
        elif verb in ("PAUSE", "PAUSEALL"):
            a.paused = True
        elif verb in ("UNPAUSE", "UNPAUSEALL"):
            a.paused = False
        elif verb.endswith("LOGIN"):
            a.logged_out = False
        else:  # *LOGOFF
            a.logged_out, a.busy, a.paused = True, False, False
        out = self._quit_talking(agent) if a.logged_out else []
        return [*out, Record(origin, events=(self._agent_state(row, agent),))]

    # -- state ----------------------------------------------------------------------------------------

    def _agent_state(self, row: Row, agent: str) -> dict[str, Any]:
        a = self._agents.setdefault(agent, _Agent())
        if self._talking.get(agent) is None:
            a.busy = False
        state = a.state()
        if state == "logged_out":
            queues: list[str] = []
        elif a.queues:
            queues = sorted(a.queues)
        else:
            queues = [] if row.queue.strip() in _NONE else [self._queue(row.queue)]
        return self._event("agent.state", row, "agent", {"agent": agent, "state": state, "queues": queues})

    def _talk_over(self, row: Row, call: str) -> list[Record]:
        """The talk on `call` is over, and the row's agent talks no more (one talk at a time: a
        missed COMPLETE must not leave them busy): legs held for them are calls of their own."""
        out: list[Record] = []
        agent = agent_key(row.agent)
        for who in {a for a, c in self._talking.items() if c == call} | ({agent} if agent else set()):
            out += self._quit_talking(who)
        return out

    def _freed(self, row: Row) -> tuple[dict[str, Any], ...]:
        """The agent.state of the row's agent after its talk (none when the row names no agent)."""
        agent = agent_key(row.agent)
        return () if agent is None else (self._agent_state(row, agent),)

    def _quit_talking(self, agent: str) -> list[Record]:
        self._talking.pop(agent, None)
        if agent in self._agents:
            self._agents[agent].busy = False
        return [r for callid, h in list(self._held.items()) if h.agent == agent for r in self._release(callid)]

    def _release(self, callid: str) -> list[Record]:
        held = self._held.pop(callid)
        return [Record(held.origin, events=self._entry_events(held.row))]

    def _expire(self, now: datetime) -> list[Record]:
        limit = timedelta(seconds=self.options.hold_seconds)
        old = [c for c, h in self._held.items() if now - h.row.time > limit]
        return [r for c in old for r in self._release(c)]

    def _call(self, callid: str) -> str:
        return self._alias.get(callid, callid)

    def _queue(self, name: str) -> str:
        name = name.strip()
        return self.options.queue_map.get(name) or name.lower()

    @staticmethod
    def _call_fields(row: Row, queue: bool = True) -> str | None:
        if row.callid.strip() in _NONE:
            return f"callid: NONE on {row.event}"
        if queue and row.queue.strip() in _NONE:
            return f"queue: NONE on {row.event}"
        return None

    @staticmethod
    def _agent_field(row: Row) -> str | None:
        return f"agent: NONE on {row.event}" if agent_key(row.agent) is None else None

    @staticmethod
    def _ignore_reason(verb: str) -> str:
        if verb in IGNORED:
            return IGNORED[verb]
        if verb.startswith("OUT"):
            return f"{verb}: an agent's outbound call (PBXware), not a queue contact"
        return f"{verb}: a verb this adapter does not read"

    def _event(self, type_name: str, row: Row, part: str, data: dict[str, Any]) -> dict[str, Any]:
        event_id = stable_id("ql", row.callid, row.epoch, row.event, row.digest, part)
        return raw_event(type_name, event_id, self.options.source, row.time, data)

    # -- snapshot -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The translator's state as JSON values (for a follower's checkpoint)."""
        return {
            "offered": list(self._offered),
            "entrance": dict(self._entrance),
            "alias": dict(self._alias),
            "agents": {k: [a.queues, a.paused, a.logged_out, a.busy] for k, a in self._agents.items()},
            "talking": dict(self._talking),
            "held": [[c, h.row.to_json(), h.origin, h.agent] for c, h in self._held.items()],
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        """Take back a `snapshot()`; a damaged one (a checkpoint edited or cut) raises
        CheckpointStateError naming the part, not a TypeError from deep inside a later `feed`."""
        if not isinstance(state, Mapping):
            raise CheckpointStateError("checkpoint state unreadable (not an object)")
        part = ""
        try:
            part = "offered"
            offered = state.get(part, [])
            if not isinstance(offered, list) or not all(isinstance(c, str) for c in offered):
                raise TypeError
            self._offered = OrderedDict.fromkeys(offered)
            part = "entrance"
            self._entrance = OrderedDict(_str_map(state.get(part, {})))
            part = "alias"
            self._alias = OrderedDict(_str_map(state.get(part, {})))
            part = "talking"
            self._talking = _str_map(state.get(part, {}))
            part = "agents"
            agents = state.get(part, {})
            if not isinstance(agents, dict):
                raise TypeError
            self._agents = {}
            for k, v in agents.items():
                queues, paused, logged_out, busy = v
                if not isinstance(queues, list) or not all(isinstance(x, bool) for x in (paused, logged_out, busy)):
                    raise TypeError
                self._agents[k] = _Agent([str(q) for q in queues], paused, logged_out, busy)
            part = "held"
            held = state.get(part, [])
            if not isinstance(held, list):
                raise TypeError
            self._held = {}
            for c, r, o, a in held:
                if not isinstance(r, list) or len(r) != 10 or not all(isinstance(x, str) for x in (c, o, a)):
                    raise TypeError
                self._held[c] = _Held(Row.from_json(r), o, a)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            raise CheckpointStateError(f"checkpoint state unreadable ({part}: not as a snapshot writes it)") from None


class CheckpointStateError(InputError):
    """A translator state (from a follower's checkpoint) that is not a snapshot's: one line, no traceback."""


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError
    return value


def _parsed_lines(
    handle: Iterator[str], name: str, options: QueueLogOptions
) -> Iterator[tuple[Parsed, str, Layout | None]]:
    """Each line of a file parsed, with its origin and the file's layout (None before it is known)."""
    layout: Layout | None = None
    for n, line in enumerate(handle, 1):
        origin = f"{name}:{n}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            yield Record(origin, ignored=COMMENT if stripped else EMPTY), origin, layout
            continue
        if layout is None:
            layout, header = detect_layout(line, options.timezone)
            if header:  # the CSV header: the layout, not a record
                continue
        yield layout.parse(line), origin, layout


def read_queue_log(path: Path, options: QueueLogOptions | None = None) -> Iterator[Record]:
    """Every Record of a queue_log file in any layout (one per line but a CSV header), then the held ones.

    A table export out of time order is sorted in memory first (the translator follows calls in
    time); a native file, or a table already in order, is read as a stream."""
    options = options or QueueLogOptions()
    translator = QueueLogTranslator(options)
    path = Path(path)

    def lines() -> Iterator[tuple[Parsed, str, Layout | None]]:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            yield from _parsed_lines(handle, path.name, options)

    ordered = True
    last: datetime | None = None
    for parsed, _, layout in lines():
        if layout is None:  # comments before the first row
            continue
        if not layout.table:
            break
        if isinstance(parsed, Row):
            if last is not None and parsed.time < last:
                ordered = False
                break
            last = parsed.time
    if ordered:
        for parsed, origin, _ in lines():
            yield from translator.feed_parsed(parsed, origin)
    else:
        rows: list[tuple[Row, int, str]] = []
        for n, (parsed, origin, _) in enumerate(lines()):
            if isinstance(parsed, Row):
                rows.append((parsed, n, origin))
            else:
                yield replace(parsed, origin=origin)
        rows.sort(key=lambda r: (r[0].time, r[1]))
        for row, _, origin in rows:
            yield from translator.feed_parsed(row, origin)
    yield from translator.flush()
