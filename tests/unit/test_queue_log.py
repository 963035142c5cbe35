"""The Asterisk queue_log adapter (ingest/sources/queue_log.py) on the real samples in
../shared/data/external/asterisk_queue_log/ and on small hand-made lines.

The PBXware file's expected figures are computed here independently from the CSV with plain csv
parsing, and also written out as the literal numbers checked by hand (SOURCE.md's counts), so a
change in either the adapter or the reading of the file shows."""

from __future__ import annotations

import copy
import csv
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from ingest.sources.queue_log import (
    CheckpointStateError,
    QueueLogOptions,
    QueueLogTranslator,
    agent_key,
    detect_layout,
    read_queue_log,
)
from ingest.sources.records import Record
from schemas.agreements import parse_agreements
from schemas.errors import InputError
from schemas.events import AgentStateChanged, CallEvent, decode
from stream_jobs.core.calls import derive_call
from tests.conftest import AGREEMENTS, SHARED, unavailable

SAMPLES = SHARED / "data" / "external" / "asterisk_queue_log"
PBXWARE = "pbxware-queue_log-2018-11-29_12-04.pseudonymised.csv"
ISSUE_759 = "asterisk-issue-759-attended-transfer-excerpt.queue_log"
WAZO = "wazo-docs-queue_log-samples.txt"
NEW_YORK = ZoneInfo("America/New_York")


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        unavailable(f"the queue_log sample {path} is missing (set AVAILABILITY_SHARED to the shared directory)")
    return path


def events_of(records: list[Record]) -> list[dict[str, Any]]:
    return [e for r in records for e in r.events]


def at(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def epoch_of(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def feed_all(lines: list[str], options: QueueLogOptions | None = None) -> list[Record]:
    t = QueueLogTranslator(options)
    out: list[Record] = []
    for n, line in enumerate(lines, 1):
        out += t.feed(line, f"q:{n}")
    return out + t.flush()


def brief(records: list[Record]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e["type"], e["time"], e["data"]) for e in events_of(records)]


# -- the PBXware export --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pbxware() -> tuple[list[dict[str, str]], list[Record]]:
    path = sample(PBXWARE)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    records = list(read_queue_log(path, QueueLogOptions(queue_map={"IT": "it"})))
    return rows, records


def test_pbxware_every_row_is_one_record(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    rows, records = pbxware
    assert len(rows) == 1000  # the export was cut at row 1000 (SOURCE.md)
    assert len(records) == 1000
    # One record per data row: origins are lines 2..1001 (line 1 is the header), each once.
    assert sorted(int(r.origin.rsplit(":", 1)[1]) for r in records) == list(range(2, 1002))
    for r in records:
        assert (len(r.events) > 0) + (r.ignored is not None) + (r.rejected is not None) == 1, r
    with_events = sum(1 for r in records if r.events)
    ignored = Counter(r.ignored for r in records if r.ignored)
    assert not any(r.rejected for r in records)
    # Independently: the verbs that are no event by design, counted straight from the CSV.
    verbs = Counter(row["event"] for row in rows)
    by_design = verbs["RINGNOANSWER"] + verbs["QUEUESTART"] + verbs["CONFIGRELOAD"]
    by_design += sum(n for v, n in verbs.items() if v.startswith("OUT"))
    assert sum(ignored.values()) == by_design == 360 + 7 + 11 + (128 + 77 + 24 + 18 + 9 + 1)
    assert with_events == 1000 - by_design == 365
    assert ignored["RINGNOANSWER: a member was rung and did not answer (the call still waits)"] == 360
    assert ignored["OUTDIAL: an agent's outbound call (PBXware), not a queue contact"] == 128


def test_pbxware_contacts_and_outcomes(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    rows, records = pbxware
    events = events_of(records)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e)
    queued = {e["data"]["call_id"]: epoch_of(e) for e in by_type["call.queued"]}

    # From the CSV alone: the calls that entered the queue, and each call's outcome verb.
    enter = {r["callid"]: int(r["date_time"]) for r in rows if r["event"] == "ENTERQUEUE"}
    outcome = {r["callid"]: r["event"] for r in rows if r["event"] in ("CONNECT", "ABANDON", "EXITWITHTIMEOUT")}
    assert len(by_type["call.queued"]) == len(enter) == 108  # each call entered the queue once
    assert queued == enter
    assert all(e["data"]["queue"] == "it" for e in by_type["call.queued"])  # mapped by --queue-map IT=it
    assert [e["data"]["call_id"] for e in by_type["call.offered"]] == list(enter)  # one offered per call

    # Contacts by local date (America/New_York: PBXware's own `time` column is UTC-5 here).
    local_days = Counter(datetime.fromtimestamp(t, NEW_YORK).date().isoformat() for t in queued.values())
    from_csv = Counter(r["time"][:10] for r in rows if r["event"] == "ENTERQUEUE")
    assert local_days == from_csv == {"2018-11-30": 13, "2018-12-03": 61, "2018-12-04": 34}

    answered = {e["data"]["call_id"] for e in by_type["call.answered"]}
    assert answered == {c for c, v in outcome.items() if v == "CONNECT"} and len(answered) == 93
    abandoned = [e["data"]["call_id"] for e in by_type["call.abandoned"]]
    assert set(abandoned) == {c for c, v in outcome.items() if v == "ABANDON"} and len(abandoned) == 12
    # An abandon's wait is its time minus the call's entry; PBXware wrote it as `htime`.
    waits = [int(epoch_of(e) - queued[e["data"]["call_id"]]) for e in by_type["call.abandoned"]]
    assert waits == [191, 197, 45, 53, 146, 74, 21, 5, 40, 70, 98, 201]
    assert waits == [int(r["htime"]) for r in rows if r["event"] == "ABANDON"]

    (exited,) = by_type["call.exited"]  # one EXITWITHTIMEOUT: the queue's maxwait of 300 s
    assert exited["data"]["reason"] == "timeout"
    assert epoch_of(exited) - queued[exited["data"]["call_id"]] == 300

    # The file ends mid-call: two entries have no outcome yet, so the report shows them waiting.
    decided = answered | set(abandoned) | {exited["data"]["call_id"]}
    waiting = set(queued) - decided
    assert waiting == set(enter) - set(outcome) == {"1543942788.2389", "1543942842.2438"}
    ended = {e["data"]["call_id"] for e in by_type["call.ended"]}
    assert not waiting & ended


def test_pbxware_wait_equals_htime(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    """CONNECT time - ENTERQUEUE time (the adapter's event times) == PBXware's own `htime`, all 93."""
    rows, records = pbxware
    events = events_of(records)
    queued = {e["data"]["call_id"]: epoch_of(e) for e in events if e["type"] == "call.queued"}
    htime = {r["callid"]: int(r["htime"]) for r in rows if r["event"] == "CONNECT"}
    waits = {
        e["data"]["call_id"]: epoch_of(e) - queued[e["data"]["call_id"]] for e in events if e["type"] == "call.answered"
    }
    assert len(waits) == 93
    assert waits == htime
    assert max(waits.values()) == 279  # the longest answered wait (SOURCE.md)
    assert sum(w <= 20 for w in waits.values()) == 39 and sum(w <= 60 for w in waits.values()) == 73


def test_pbxware_transfers_end_the_talk(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    """Both transfers follow an answer and no queue entry continues them: the talk ends there."""
    rows, records = pbxware
    by_origin = {r.origin: r for r in records}
    transfers = [(i + 2, r) for i, r in enumerate(rows) if r["event"].endswith("TRANSFER") and r["queue_name"] == "IT"]
    assert [r["event"] for _, r in transfers] == ["ATTENDEDTRANSFER", "BLINDTRANSFER"]
    for line, row in transfers:
        record = by_origin[f"{PBXWARE}:{line}"]
        assert [e["type"] for e in record.events] == ["call.ended", "agent.state"]
        assert record.events[0]["data"] == {"call_id": row["callid"]}
        assert record.events[0]["time"] == at(int(row["date_time"]))
        assert record.events[1]["data"] == {"agent": "1128", "state": "ready", "queues": ["it"]}
        # The call was answered before (a CONNECT of the same callid comes earlier in the file).
        assert any(r["callid"] == row["callid"] and r["event"] == "CONNECT" for r in rows[: line - 2])


def test_pbxware_times_are_the_epoch_never_the_local_column(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    rows, records = pbxware
    by_origin = {r.origin: r for r in records}
    # Row uid 892: epoch 1543936560 = 15:16:00Z, PBXware's local column says 10:16:01 (a second off).
    row = rows[891]
    assert (row["uid"], row["date_time"], row["time"]) == ("892", "1543936560", "2018-12-04 10:16:01")
    (state,) = by_origin[f"{PBXWARE}:893"].events
    assert state["time"] == "2018-12-04T15:16:00Z"
    assert state["data"] == {"agent": "1144", "state": "logged_out", "queues": []}
    for r in records:
        for e in r.events:
            line = int(r.origin.rsplit(":", 1)[1])
            assert e["time"] == at(int(rows[line - 2]["date_time"]))


def test_pbxware_agents_one_id_per_person(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    """`Local/1127@callback-agent` (ADDMEMBER) and `Agent/1127` (the rest) are agent 1127."""
    _, records = pbxware
    agents = {e["data"]["agent"] for e in events_of(records) if e["type"] in ("agent.state", "call.answered")}
    assert agents == {"1109", "1126", "1127", "1128", "1141", "1144"}
    by_origin = {r.origin: r for r in records}
    # Lines 6/7: ADDMEMBER then AGENTCALLBACKLOGIN of 1127, both ready in queue it.
    assert [e["data"] for e in by_origin[f"{PBXWARE}:6"].events] == [
        {"agent": "1127", "state": "ready", "queues": ["it"]}
    ]
    assert [e["data"] for e in by_origin[f"{PBXWARE}:7"].events] == [
        {"agent": "1127", "state": "ready", "queues": ["it"]}
    ]
    # Line 20: 1127 answers (busy); line 21: the caller hangs up (ready again).
    assert by_origin[f"{PBXWARE}:20"].events[1]["data"]["state"] == "busy"
    assert by_origin[f"{PBXWARE}:21"].events[1]["data"]["state"] == "ready"


def test_pbxware_contract_and_fold(pbxware: tuple[list[dict[str, str]], list[Record]]) -> None:
    """Every event is valid by the contract, and the contact fold reads the file's figures from them."""
    _, records = pbxware
    decoded = [decode(msgspec.json.encode(e)) for e in events_of(records)]
    raw = copy.deepcopy(AGREEMENTS)
    raw["timezone"] = "America/New_York"
    raw["calendars"] = {
        "always": {"hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    }
    raw["queues"] = {"it": dict(AGREEMENTS["queues"]["kundreskontra"], name="IT", calendar="always")}
    raw["mailboxes"] = {}
    agreements = parse_agreements(raw)
    calls: dict[str, list[CallEvent]] = defaultdict(list)
    for ev in decoded:
        if not isinstance(ev, AgentStateChanged):
            calls[ev.data.call_id].append(ev)  # type: ignore[union-attr,arg-type]
    outcomes = Counter(c.outcome for cid, evs in calls.items() for c in derive_call(cid, evs, agreements).contacts)
    assert outcomes == {"answered": 93, "abandoned": 12, "flowed_out": 1, "waiting": 2}


def test_reimport_gives_the_same_ids() -> None:
    path = sample(PBXWARE)
    first = [e["id"] for e in events_of(list(read_queue_log(path)))]
    again = [e["id"] for e in events_of(list(read_queue_log(path)))]
    assert first == again
    assert len(set(first)) == len(first)  # and distinct


# -- asterisk issue #759: an attended transfer into another queue --------------------------------------

X, LEG = "1717397243.239826", "1717397390.239830"


def test_issue_759_the_second_queue_continues_the_call() -> None:
    records = list(read_queue_log(sample(ISSUE_759)))
    assert len(records) == 8  # one per line
    did = "DID: the dialled number, kept as the entrance of the call's call.offered"
    assert [(r.origin, r.ignored) for r in records if r.ignored] == [(f"{ISSUE_759}:1", did), (f"{ISSUE_759}:4", did)]
    got = [(int(r.origin.rsplit(":", 1)[1]), e["type"], e["time"], e["data"]) for r in records for e in r.events]
    assert got == [
        # The caller dialled DIDNUMBER1 and entered queue 1501 (entrance and caller from lines 1-2).
        (
            2,
            "call.offered",
            "2024-06-03T06:47:39Z",
            {"call_id": X, "entrance": "DIDNUMBER1", "caller": "PSEUDOCALLER1"},
        ),
        (2, "call.queued", "2024-06-03T06:47:39Z", {"call_id": X, "queue": "1501"}),
        # Answered 12 s later (line 3's holdtime 12) by PJSIP/7009.
        (3, "call.answered", "2024-06-03T06:47:51Z", {"call_id": X, "queue": "1501", "agent": "7009"}),
        (3, "agent.state", "2024-06-03T06:47:51Z", {"agent": "7009", "state": "busy", "queues": ["1501"]}),
        # Line 5 (ENTERQUEUE under the new callid, callerid 7009 = the talking agent) is held; line 6's
        # ATTENDEDTRANSFER under that callid ties it to the original call: a re-queue after its answer
        # (metrics.md: an internal transfer), given late, before line 6's own record.
        (5, "call.queued", "2024-06-03T06:49:50Z", {"call_id": X, "queue": "1509"}),
        (6, "agent.state", "2024-06-03T06:49:51Z", {"agent": "7009", "state": "ready", "queues": ["1501"]}),
        # The second queue answers the original callid 7 s after the entry (line 7's holdtime 7).
        (7, "call.answered", "2024-06-03T06:49:57Z", {"call_id": X, "queue": "1509", "agent": "7051"}),
        (7, "agent.state", "2024-06-03T06:49:57Z", {"agent": "7051", "state": "busy", "queues": ["1509"]}),
        (8, "call.ended", "2024-06-03T06:52:50Z", {"call_id": X}),
        (8, "agent.state", "2024-06-03T06:52:50Z", {"agent": "7051", "state": "ready", "queues": ["1509"]}),
    ]


def test_issue_759_fold_one_call_answered_then_internal_transfer() -> None:
    records = list(
        read_queue_log(sample(ISSUE_759), QueueLogOptions(queue_map={"1501": "kundreskontra", "1509": "avgifter"}))
    )
    evs = [decode(msgspec.json.encode(e)) for e in events_of(records) if e["type"].startswith("call.")]
    assert {e.data.call_id for e in evs} == {X}  # type: ignore[union-attr]
    fact = derive_call(X, evs, parse_agreements(AGREEMENTS))  # type: ignore[arg-type]
    first, second = fact.contacts
    assert (first.queue, first.outcome, first.wait_seconds, first.internal) == ("kundreskontra", "answered", 12, False)
    assert (second.queue, second.outcome, second.wait_seconds, second.internal) == ("avgifter", "answered", 7, True)
    assert fact.ended_at == datetime(2024, 6, 3, 6, 52, 50, tzinfo=UTC)


# -- the Wazo documentation's scenarios (a psql table, local timestamps, newest first) ----------------

WAZO_TZ = ZoneInfo("America/Montreal")  # a Wazo lab (Quebec); July: EDT, UTC-4


def test_wazo_scenarios() -> None:
    records = list(read_queue_log(sample(WAZO), QueueLogOptions(timezone=WAZO_TZ)))
    lines = sample(WAZO).read_text().splitlines()
    assert len(records) == len(lines) == 34  # every line a record: comments and blanks are ignored ones
    comments, blanks = sum(x.startswith("#") for x in lines), sum(not x.strip() for x in lines)
    assert (comments, blanks) == (14, 8)  # 6 header comments + 8 scenario titles; a blank before each title
    assert Counter(r.ignored for r in records if r.ignored) == {"a comment line": comments, "an empty line": blanks}
    got = [(int(r.origin.rsplit(":", 1)[1]), e["type"], e["time"], e["data"]) for r in records for e in r.events]
    a3001 = "3001"
    # Rows are sorted by time (the documentation prints each scenario newest first); 15:27 local = 19:27Z.
    assert got == [
        # Agent callback login: no queue is known for the agent yet (queue NONE).
        (9, "agent.state", "2012-07-03T19:27:23.896Z", {"agent": a3001, "state": "ready", "queues": []}),
        # Callback logoff, then Wazo's clean-up unpauses: the agent stays logged out.
        (15, "agent.state", "2012-07-03T19:28:06.249Z", {"agent": a3001, "state": "logged_out", "queues": []}),
        (14, "agent.state", "2012-07-03T19:28:07.327Z", {"agent": a3001, "state": "logged_out", "queues": []}),
        (13, "agent.state", "2012-07-03T19:28:07.346Z", {"agent": a3001, "state": "logged_out", "queues": []}),
        (12, "agent.state", "2012-07-03T19:28:07.348Z", {"agent": a3001, "state": "logged_out", "queues": []}),
        # JOINEMPTY: refused at entry, counted as offered and flowed out (no agents).
        (18, "call.offered", "2012-07-04T11:27:55.640Z", {"call_id": "1341401275.9", "entrance": "q1"}),
        (18, "call.queued", "2012-07-04T11:27:55.640Z", {"call_id": "1341401275.9", "queue": "q1"}),
        (
            18,
            "call.exited",
            "2012-07-04T11:27:55.640Z",
            {"call_id": "1341401275.9", "queue": "q1", "reason": "no_agents"},
        ),
        # Enter and answered 2 s later (CONNECT's holdtime 2); the agent is busy.
        (
            22,
            "call.offered",
            "2012-07-04T11:33:21.165Z",
            {"call_id": "1341401601.24", "entrance": "q1", "caller": "1000"},
        ),
        (22, "call.queued", "2012-07-04T11:33:21.165Z", {"call_id": "1341401601.24", "queue": "q1"}),
        (21, "call.answered", "2012-07-04T11:33:23.085Z", {"call_id": "1341401601.24", "queue": "q1", "agent": a3001}),
        (21, "agent.state", "2012-07-04T11:33:23.085Z", {"agent": a3001, "state": "busy", "queues": ["q1"]}),
        # COMPLETEAGENT (another call of the documentation): the call ends, the agent is free.
        (25, "call.ended", "2012-07-04T11:37:46.601Z", {"call_id": "1341401851.34"}),
        (25, "agent.state", "2012-07-04T11:37:46.601Z", {"agent": a3001, "state": "ready", "queues": ["q1"]}),
        # FULL: refused at entry, flowed out (queue full).
        (28, "call.offered", "2012-07-04T11:40:17.339Z", {"call_id": "1341402016.44", "entrance": "q1"}),
        (28, "call.queued", "2012-07-04T11:40:17.339Z", {"call_id": "1341402016.44", "queue": "q1"}),
        (
            28,
            "call.exited",
            "2012-07-04T11:40:17.339Z",
            {"call_id": "1341402016.44", "queue": "q1", "reason": "queue_full"},
        ),
        # CLOSED (Wazo's schedule): unmet demand; the contract's nearest reason is no_agents.
        (31, "call.offered", "2012-07-04T11:48:03.455Z", {"call_id": "1341402482.49", "entrance": "q1"}),
        (31, "call.queued", "2012-07-04T11:48:03.455Z", {"call_id": "1341402482.49", "queue": "q1"}),
        (
            31,
            "call.exited",
            "2012-07-04T11:48:03.455Z",
            {"call_id": "1341402482.49", "queue": "q1", "reason": "no_agents"},
        ),
        # ABANDON: abandoned, and the call is over.
        (34, "call.abandoned", "2012-07-04T11:49:52.939Z", {"call_id": "1341402586.51", "queue": "q1"}),
        (34, "call.ended", "2012-07-04T11:49:52.939Z", {"call_id": "1341402586.51"}),
    ]


def test_wazo_default_timezone_is_utc() -> None:
    records = list(read_queue_log(sample(WAZO)))
    first = next(e for r in records for e in r.events)
    assert first["time"] == "2012-07-03T15:27:23.896Z"


# -- hand-made lines -----------------------------------------------------------------------------------


def test_layout_detection() -> None:
    assert detect_layout("1717397259|1|q|NONE|DID|1")[0].name == "native"
    assert detect_layout("2012-07-04 07:33:21.1 | 1.2 | q1 | NONE | ENTERQUEUE")[0].name == "psql-table"
    assert detect_layout("time | callid | queuename | agent | event | data1")[0].name == "psql-table"
    layout, header = detect_layout(
        "uid,date_time,callid,queue_name,type,event,param1,param2,param3,entpos,expos,htime,ttime,time"
    )
    assert (layout.name, header) == ("pbxware-csv", True)
    layout, header = detect_layout("time,callid,queuename,agent,event,data1,data2,data3,data4,data5")
    assert (layout.name, header) == ("realtime-csv", True)


def test_realtime_csv_with_local_times_and_one_data_column(tmp_path: Path) -> None:
    path = tmp_path / "ql.csv"
    path.write_text(
        "id,time,callid,queuename,agent,event,data\n"
        '1,2024-01-15 09:00:00,c1,Support,NONE,ENTERQUEUE,"|+4687654321|1"\n'
        "2,2024-01-15 09:00:30,c1,Support,SIP/201,CONNECT,30|c1b|2\n"
        "3,2024-01-15 09:05:30,c1,Support,SIP/201,COMPLETECALLER,30|300|1\n"
    )
    stockholm = ZoneInfo("Europe/Stockholm")  # CET in January: UTC+1
    records = list(read_queue_log(path, QueueLogOptions(queue_map={"Support": "kundreskontra"}, timezone=stockholm)))
    assert brief(records) == [
        ("call.offered", "2024-01-15T08:00:00Z", {"call_id": "c1", "entrance": "Support", "caller": "+4687654321"}),
        ("call.queued", "2024-01-15T08:00:00Z", {"call_id": "c1", "queue": "kundreskontra"}),
        ("call.answered", "2024-01-15T08:00:30Z", {"call_id": "c1", "queue": "kundreskontra", "agent": "201"}),
        ("agent.state", "2024-01-15T08:00:30Z", {"agent": "201", "state": "busy", "queues": ["kundreskontra"]}),
        ("call.ended", "2024-01-15T08:05:30Z", {"call_id": "c1"}),
        ("agent.state", "2024-01-15T08:05:30Z", {"agent": "201", "state": "ready", "queues": ["kundreskontra"]}),
    ]


def test_realtime_csv_out_of_order_is_sorted(tmp_path: Path) -> None:
    path = tmp_path / "ql.csv"
    path.write_text(
        "time,callid,queuename,agent,event,data1,data2,data3,data4,data5\n"
        "1700000100,c1,q,NONE,ABANDON,1,1,100,,\n"
        "1700000000,c1,q,NONE,ENTERQUEUE,,0701234567,1,,\n"
    )
    records = list(read_queue_log(path))
    assert [r.origin for r in records] == ["ql.csv:3", "ql.csv:2"]
    assert [t for t, *_ in brief(records)] == ["call.offered", "call.queued", "call.abandoned", "call.ended"]


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("Agent/1127", "1127"),
        ("Local/1127@callback-agent", "1127"),
        ("Local/2004@from-queue/n", "2004"),
        ("PJSIP/7009", "7009"),
        ("SIP/8007", "8007"),
        ("Anna Berg", "Anna Berg"),  # a member name stays a name (the boundary hashes it)
        ("NONE", None),
        ("", None),
    ],
)
def test_agent_key(field: str, key: str | None) -> None:
    assert agent_key(field) == key


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "an empty line"),
        ("# note", "a comment line"),
        ("garbage", "not a queue_log line (fewer than 5 '|'-separated fields)"),
        ("yesterday|c1|q|NONE|ENTERQUEUE||1|1", "time: not a Unix time or a date-time"),
        ("99999999999|c1|q|NONE|ENTERQUEUE||1|1", None),  # year 5138: read; the boundary rejects it
        ("1700000000|c1|q|NONE|enter queue||1|1", "event: not a queue_log verb"),
        ("1700000000|NONE|q|NONE|ENTERQUEUE||1|1", "callid: NONE on ENTERQUEUE"),
        ("1700000000|c1|NONE|SIP/1|CONNECT|1|x|1", "queue: NONE on CONNECT"),
        ("1700000000|c1|q|NONE|CONNECT|1|x|1", "agent: NONE on CONNECT"),
        ("1700000000|NONE|q|NONE|PAUSE|", "agent: NONE on PAUSE"),
    ],
)
def test_unreadable_lines_are_rejected(line: str, reason: str | None) -> None:
    (record,) = feed_all([line])
    if reason is None:
        assert record.events and record.rejected is None
    elif reason in ("an empty line", "a comment line"):
        assert record.ignored == reason and not record.events
    else:
        assert record.rejected == reason and not record.events
        assert record.text == line


@pytest.mark.parametrize(
    ("verb", "reason"),
    [
        ("RINGNOANSWER", "RINGNOANSWER: a member was rung and did not answer (the call still waits)"),
        ("QUEUESTART", "QUEUESTART: a system event"),
        ("OUTDIAL", "OUTDIAL: an agent's outbound call (PBXware), not a queue contact"),
        ("INFO", "INFO: a dialplan note (QueueMetrics)"),
        ("WHATEVER", "WHATEVER: a verb this adapter does not read"),
    ],
)
def test_ignored_verbs_name_the_verb(verb: str, reason: str) -> None:
    (record,) = feed_all([f"1700000000|c1|q|SIP/1|{verb}|1|2"])
    assert record.ignored == reason and not record.events


def test_queue_map_and_lower_case() -> None:
    records = feed_all(
        ["1700000000|c1|Sales|NONE|ENTERQUEUE||1|1", "1700000001|c2|Kund|NONE|ENTERQUEUE||2|1"],
        QueueLogOptions(queue_map={"Kund": "kundreskontra"}),
    )
    assert [d["queue"] for t, _, d in brief(records) if t == "call.queued"] == ["sales", "kundreskontra"]


def test_exits_and_callback_keys() -> None:
    lines = [
        "1700000000|c1|q|NONE|ENTERQUEUE||070|1",
        "1700000060|c1|q|NONE|EXITWITHKEY|1|1|1|60",
        "1700000100|c2|q|NONE|ENTERQUEUE||071|1",
        "1700000160|c2|q|NONE|EXITWITHKEY|5|1|1|60",
        "1700000200|c3|q|NONE|ENTERQUEUE||072|1",
        "1700000260|c3|q|NONE|EXITEMPTY|1|1|60",
        "1700000300|c4|q|NONE|ENTERQUEUE||073|1",
        "1700000600|c4|q|NONE|EXITWITHTIMEOUT|1|1|300",
    ]
    out = [
        (t, d)
        for t, _, d in brief(feed_all(lines, QueueLogOptions(callback_keys=frozenset({"5"}))))
        if t not in ("call.offered", "call.queued")
    ]
    assert out == [
        ("call.exited", {"call_id": "c1", "queue": "q", "reason": "exit_key"}),
        ("call.callback_requested", {"call_id": "c2", "queue": "q"}),  # key 5 is the site's callback key
        ("call.exited", {"call_id": "c3", "queue": "q", "reason": "no_agents"}),
        ("call.exited", {"call_id": "c4", "queue": "q", "reason": "timeout"}),
    ]


def test_caller_without_a_digit_is_left_out() -> None:
    records = feed_all(["1700000000|c1|q|NONE|ENTERQUEUE||anonymous|1"])
    assert brief(records)[0][2] == {"call_id": "c1", "entrance": "q"}


def test_membership_and_pause() -> None:
    lines = [
        "1700000000|NONE|q1|SIP/7|ADDMEMBER|",
        "1700000001|NONE|q2|SIP/7|ADDMEMBER|",
        "1700000002|NONE|q1|SIP/7|PAUSE|lunch",
        "1700000003|NONE|q1|SIP/7|REMOVEMEMBER|",
        "1700000004|NONE|q1|SIP/7|UNPAUSE|",
        "1700000005|NONE|q2|SIP/7|REMOVEMEMBER|",
        "1700000006|NONE|NONE|Agent/7|AGENTLOGIN|SIP/7",
    ]
    states = [(d["state"], d["queues"]) for _, _, d in brief(feed_all(lines))]
    assert states == [
        ("ready", ["q1"]),
        ("ready", ["q1", "q2"]),
        ("not_ready", ["q1", "q2"]),
        ("not_ready", ["q2"]),
        ("ready", ["q2"]),
        ("logged_out", []),  # removed from its last queue
        ("ready", []),  # logged in again, member of no queue known
    ]


CONSULT = [
    "1700000000|c1|q1|NONE|ENTERQUEUE||0701234567|1",
    "1700000010|c1|q1|PJSIP/7009|CONNECT|10|c1m|9",
    "1700000100|c9|q2|NONE|ENTERQUEUE||7009|1",  # the agent dials queue q2 from their phone
]


def test_a_held_leg_is_its_own_call_when_the_agents_call_ends() -> None:
    records = feed_all([*CONSULT, "1700000120|c1|q1|PJSIP/7009|COMPLETECALLER|10|110|1"])
    # The agent's call c1 ended without a transfer: the q2 entry was a call of its own (c9).
    assert [r.origin for r in records] == ["q:1", "q:2", "q:3", "q:4"]
    assert [(t, d.get("call_id")) for t, _, d in brief(records)][-4:] == [
        ("call.offered", "c9"),
        ("call.queued", "c9"),
        ("call.ended", "c1"),
        ("agent.state", None),
    ]


def test_a_held_leg_of_a_cut_file_is_flushed_as_waiting() -> None:
    records = feed_all(CONSULT)
    assert [r.origin for r in records] == ["q:1", "q:2", "q:3"]  # line 3 came out of flush()
    assert brief(records)[-1] == ("call.queued", "2023-11-14T22:15:00Z", {"call_id": "c9", "queue": "q2"})


def test_a_held_leg_answered_itself_is_its_own_call() -> None:
    records = feed_all([*CONSULT, "1700000105|c9|q2|PJSIP/7051|CONNECT|5|c9m|4"])
    assert [(t, d.get("call_id")) for t, _, d in brief(records)][-4:] == [
        ("call.offered", "c9"),
        ("call.queued", "c9"),
        ("call.answered", "c9"),
        ("agent.state", None),
    ]


def test_snapshot_restores_the_state() -> None:
    """A translator rebuilt from its snapshot gives what an uninterrupted one gives (the follower's restart)."""
    lines = [
        "1700000000|NONE|q1|SIP/7009|ADDMEMBER|",
        "1700000001|d1|q1|NONE|DID|0812345",
        *CONSULT,
        "1700000101|c9|q1|PJSIP/7009|ATTENDEDTRANSFER|APP|Queue|10|91|1",
        "1700000200|c1|q2|PJSIP/7051|CONNECT|100|c1n|5",
    ]
    whole = feed_all(lines)
    for cut in range(len(lines) + 1):
        first = QueueLogTranslator()
        out: list[Record] = []
        for n, line in enumerate(lines[:cut], 1):
            out += first.feed(line, f"q:{n}")
        state = msgspec.json.decode(msgspec.json.encode(first.snapshot()))  # through JSON, as in a checkpoint
        second = QueueLogTranslator(None, state)
        for n, line in enumerate(lines[cut:], cut + 1):
            out += second.feed(line, f"q:{n}")
        assert out + second.flush() == whole, cut
    # The tie happened: c9's entry is a re-queue of c1.
    assert ("call.queued", "2023-11-14T22:15:00Z", {"call_id": "c1", "queue": "q2"}) in brief(whole)


GOOD_ROW = ["2023-11-14T22:13:20+00:00", "1700000000", "c9", "q1", "NONE", "ENTERQUEUE",
            ["", "7009", "1", "", ""], "7009", "0a1b2c3d", "1700000000|c9|q1|NONE|ENTERQUEUE||7009|1"]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "part"),
    [
        # Each is a snapshot with one part damaged as a hand edit or a cut file would (the
        # message names that part); before the check each was a TypeError/KeyError/ValueError.
        ({"offered": "c1"}, "offered"),  # a string, not a list: would become the ids "c", "1"
        ({"offered": [1, 2]}, "offered"),
        ({"entrance": [["c1", "0812"]]}, "entrance"),
        ({"alias": {"c9": None}}, "alias"),
        ({"talking": {"7009": 5}}, "talking"),
        ({"agents": {"7009": [["q1"], False, False]}}, "agents"),  # three fields, not four
        ({"agents": {"7009": ["q1", False, False, False]}}, "agents"),  # queues not a list
        ({"agents": {"7009": [["q1"], "no", False, False]}}, "agents"),
        ({"held": {"c9": GOOD_ROW}}, "held"),
        ({"held": [["c9", GOOD_ROW[:9], "q:1", "7009"]]}, "held"),
        ({"held": [["c9", ["yesterday", *GOOD_ROW[1:]], "q:1", "7009"]]}, "held"),  # not a time
        ({"held": [["c9", GOOD_ROW, "q:1"]]}, "held"),
    ],
)
def test_a_damaged_snapshot_is_one_clear_error(state: dict[str, Any], part: str) -> None:
    with pytest.raises(InputError, match=rf"^checkpoint state unreadable \({part}: ") as caught:
        QueueLogTranslator(None, state)
    assert isinstance(caught.value, CheckpointStateError) and "\n" not in str(caught.value)


def test_a_snapshot_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(CheckpointStateError, match=r"^checkpoint state unreadable \(not an object\)$"):
        QueueLogTranslator(None, [["offered", []]])  # type: ignore[arg-type]


def test_a_whole_snapshot_with_every_part_is_taken_back() -> None:
    """The check refuses no snapshot that `snapshot()` writes: every part filled, through JSON."""
    state = {
        "offered": ["c1"],
        "entrance": {"c1": "0812"},
        "alias": {"c9": "c1"},
        "agents": {"7009": [["q1"], True, False, True]},
        "talking": {"7009": "c1"},
        "held": [["c9", GOOD_ROW, "q:1", "7009"]],
    }
    again = QueueLogTranslator(None, msgspec.json.decode(msgspec.json.encode(state))).snapshot()
    assert again == state


def test_ids_are_stable_and_distinct() -> None:
    lines = ["1700000000|c1|q|NONE|ENTERQUEUE||070|1", "1700000000|c2|q|NONE|ENTERQUEUE||070|1"]
    a, b = feed_all(lines), feed_all(lines)
    ids = [e["id"] for e in events_of(a)]
    assert ids == [e["id"] for e in events_of(b)]
    assert len(set(ids)) == 4
    assert ids[0].startswith("ql:c1:1700000000:ENTERQUEUE:") and ids[0].endswith(":offered")
