"""The measures of contract v2 in the monthly report, on the embedded ClickHouse, by hand.

spec/metrics.md (revised 2026-11-28): `service_levels`, `flowed_out`, `callers`, `callers_reached`,
`abandoned_recovered`, and the mailboxes' `answered_within_1_working_day` (KKiK); spec/events.md:
a conflicting duplicate is counted. Times are local (+02:00, summer time) unless noted; the
`kontor` calendar is open Mon 08-12 and 13-16:30, Tue-Thu 08-16:30, Fri 08-16.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from dashboards.report import QUEUE_KEYS, monthly_report
from ingest.boundary import Boundary
from ingest.jsonl import read_batches
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements, load_agreements, parse_agreements
from schemas.events import Event
from stream_jobs.core.deriver import Deriver
from tests.conftest import AGREEMENTS, call, ev, shared_examples

K, A = {"queue": "kundreskontra"}, {"queue": "avgifter"}
LATER = datetime(2027, 1, 1, tzinfo=UTC)
X, Y, Z, W = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)  # callers' keyed hashes


@pytest.fixture
def v2() -> Agreements:
    raw = copy.deepcopy(AGREEMENTS)
    raw["queues"]["kundreskontra"]["extra_service_levels"] = [20, 120]
    return parse_agreements(raw)


def report(warehouse, agreements, events, month="2026-04", now=LATER):
    Deriver(warehouse, agreements).apply(events)
    return monthly_report(warehouse, agreements, month, now=now)


def offered(cid: str, t: str, caller: str | None) -> Event:
    data = {"entrance": "08-50833000"} | ({"caller_ref": caller} if caller else {})
    return ev("call.offered", t, call_id=cid, **data)


def answered(cid: str, queued: str, at: str, q=K, caller: str | None = None) -> list[Event]:
    return [
        offered(cid, queued, caller),
        *call(cid, ("queued", queued, q), ("answered", at, q | {"agent": "a"})),
    ]


def abandoned(cid: str, queued: str, at: str, q=K, caller: str | None = None) -> list[Event]:
    return [offered(cid, queued, caller), *call(cid, ("queued", queued, q), ("abandoned", at, q))]


# -- service levels beside T ------------------------------------------------------------------------


def test_extra_service_levels_share_the_base_of_the_service_level(warehouse, v2):
    """K (T = 60 s, extra 20 s and 120 s): answered after 10, 20, 30 and 121 s, an abandon after
    50 s, a short abandon (2 s) and a callback. offered 7, base = 7 - 1 - 1 = 5; within 20 s: 10, 20
    -> 2/5; within 60 s: 3/5; within 120 s: 10, 20, 30 -> 3/5 (121 s is past it)."""
    events = []
    for i, wait in enumerate((10, 20, 30, 121)):
        events += answered(
            f"a{i}", "2026-04-14T10:00:00+02:00", f"2026-04-14T10:{wait // 60:02d}:{wait % 60:02d}+02:00"
        )
    events += abandoned("b", "2026-04-14T11:00:00+02:00", "2026-04-14T11:00:50+02:00")
    events += abandoned("s", "2026-04-14T11:00:00+02:00", "2026-04-14T11:00:02+02:00")
    events += call(
        "cb", ("queued", "2026-04-14T11:00:00+02:00", K), ("callback_requested", "2026-04-14T11:01:00+02:00", K)
    )
    r = report(warehouse, v2, events)["queues"]
    q = r["kundreskontra"]
    assert (q["offered"], q["short_abandoned"], q["callbacks"]) == (7, 1, 1)
    assert q["service_level"] == 3 / 5
    assert q["service_levels"] == {"20": 2 / 5, "120": 3 / 5}
    assert r["avgifter"]["service_levels"] == {}  # no extra thresholds: an empty object


def test_extra_service_levels_are_null_when_the_base_is_0(warehouse, v2):
    """Only a callback: offered 1, base 1 - 1 = 0, so every ratio is null (no data), never 0."""
    events = call(
        "cb", ("queued", "2026-04-14T11:00:00+02:00", K), ("callback_requested", "2026-04-14T11:01:00+02:00", K)
    )
    q = report(warehouse, v2, events)["queues"]["kundreskontra"]
    assert q["service_levels"] == {"20": None, "120": None} and q["service_level"] is None


# -- flow-outs ----------------------------------------------------------------------------------


def test_a_flow_out_is_offered_and_in_the_base_never_answered(warehouse, agreements):
    """Queued 10:00, exited (time-out) 10:05; another answered after 30 s. offered 2, answered 1,
    flowed_out 1, abandoned 0; base 2 -> answer rate 1/2, service level 1/2; the flow-out's 300 s
    is neither an answer's nor an abandon's wait, so the longest wait is 30 s."""
    events = call(
        "f",
        ("queued", "2026-04-14T10:00:00+02:00", K),
        ("exited", "2026-04-14T10:05:00+02:00", K | {"reason": "timeout"}),
    )
    events += answered("a", "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:30+02:00")
    q = report(warehouse, agreements, events)["queues"]["kundreskontra"]
    assert (q["offered"], q["answered"], q["flowed_out"], q["abandoned"]) == (2, 1, 1, 0)
    assert (q["answer_rate"], q["service_level"], q["max_wait_seconds"]) == (0.5, 0.5, 30)


def test_a_requeue_after_a_callback_counts_in_both_queues(warehouse, agreements):
    """Issue case 2: queued K 10:30, callback 10:31, queued A 10:40, answered A 10:41. K: offered 1,
    callbacks 1 (base 0: ratios null); A: offered 1, answered 1, ASA 60 s; no internal transfer."""
    events = call(
        "c",
        ("queued", "2026-04-14T10:30:00+02:00", K),
        ("callback_requested", "2026-04-14T10:31:00+02:00", K),
        ("queued", "2026-04-14T10:40:00+02:00", A),
        ("answered", "2026-04-14T10:41:00+02:00", A | {"agent": "a"}),
    )
    r = report(warehouse, agreements, events)["queues"]
    assert (r["kundreskontra"]["offered"], r["kundreskontra"]["callbacks"], r["kundreskontra"]["answer_rate"]) == (
        1,
        1,
        None,
    )
    a = r["avgifter"]
    assert (a["offered"], a["answered"], a["asa_seconds"], a["internal_transfers"]) == (1, 1, 60, 0)


# -- callers -------------------------------------------------------------------------------------


def test_callers_reached_and_abandoned_recovered(warehouse, agreements):
    """Tue 14 April. X abandons K at 10:01 (after 60 s) and is answered in A at 15:00; Y is answered
    in K; Z abandons K (60 s) and never gets through; an unknown caller is answered in K; W calls K
    on Saturday (out of hours: in no count).

    K: callers {X, Y, Z} = 3; reached (answered in the month, any queue): X (in A), Y = 2;
    abandoned_recovered: X's abandon, answered 4 h 59 min later = 1 (Z's is not).
    A: callers {X} = 1, reached 1, abandoned_recovered 0."""
    events = abandoned("x1", "2026-04-14T10:00:00+02:00", "2026-04-14T10:01:00+02:00", caller=X)
    events += answered("x2", "2026-04-14T14:59:00+02:00", "2026-04-14T15:00:00+02:00", q=A, caller=X)
    events += answered("y", "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:30+02:00", caller=Y)
    events += abandoned("z", "2026-04-14T10:00:00+02:00", "2026-04-14T10:01:00+02:00", caller=Z)
    events += answered("u", "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:30+02:00")
    events += answered("w", "2026-04-18T10:00:00+02:00", "2026-04-18T10:00:30+02:00", caller=W)
    r = report(warehouse, agreements, events)["queues"]
    k, a = r["kundreskontra"], r["avgifter"]
    assert (k["offered"], k["out_of_hours"]) == (4, 1)
    assert (k["callers"], k["callers_reached"], k["abandoned_recovered"]) == (3, 2, 1)
    assert (a["callers"], a["callers_reached"], a["abandoned_recovered"]) == (1, 1, 0)


@pytest.mark.parametrize(
    ("answered_at", "recovered"),
    [
        ("2026-04-15T10:01:00+02:00", 1),  # exactly 24 h after the abandon: within
        ("2026-04-15T10:01:01+02:00", 0),  # 24 h and 1 s: too late
        ("2026-04-14T10:01:00+02:00", 0),  # the abandon's own instant: not strictly after
    ],
)
def test_abandoned_recovered_is_strictly_after_and_within_24_hours(warehouse, agreements, answered_at, recovered):
    """Abandon at Tue 14 April 10:01 (after 60 s); the same caller answered (queued 10 s before)."""
    events = abandoned("x1", "2026-04-14T10:00:00+02:00", "2026-04-14T10:01:00+02:00", caller=X)
    queued = (datetime.fromisoformat(answered_at) - timedelta(seconds=10)).isoformat()
    events += answered("x2", queued, answered_at, q=A, caller=X)
    assert report(warehouse, agreements, events)["queues"]["kundreskontra"]["abandoned_recovered"] == recovered


def test_abandoned_recovered_counts_an_answer_after_the_month_end(warehouse, agreements):
    """Abandon Tue 30 June 16:00 (60 s); answered Wed 1 July 09:00: within 24 h, so June counts it,
    although the answered contact belongs to July (and July's callers_reached)."""
    events = abandoned("x1", "2026-06-30T15:59:00+02:00", "2026-06-30T16:00:00+02:00", caller=X)
    events += answered("x2", "2026-07-01T08:59:00+02:00", "2026-07-01T09:00:00+02:00", caller=X)
    june = report(warehouse, agreements, events, month="2026-06")["queues"]["kundreskontra"]
    assert (june["abandoned_recovered"], june["callers"], june["callers_reached"]) == (1, 1, 0)
    july = monthly_report(warehouse, agreements, "2026-07", now=LATER)["queues"]["kundreskontra"]
    assert (july["callers"], july["callers_reached"], july["abandoned_recovered"]) == (1, 1, 0)


def test_an_abandon_after_the_month_end_is_recovered_by_an_answer_within_its_24_hours(warehouse, agreements):
    """A contact first queued on the month's last open minute (Tue 30 June 16:29, June's) waits
    overnight and is abandoned Wed 1 July 00:30; the caller is answered Thu 2 July 00:20 (queued
    Wed 16:20, a long wait): 23 h 50 min after the abandon, so June counts it recovered, though
    the answer comes more than 24 h after June's end."""
    events = abandoned("x1", "2026-06-30T16:29:00+02:00", "2026-07-01T00:30:00+02:00", caller=X)
    events += answered("x2", "2026-07-01T16:20:00+02:00", "2026-07-02T00:20:00+02:00", caller=X)
    june = report(warehouse, agreements, events, month="2026-06")["queues"]["kundreskontra"]
    assert (june["abandoned"], june["abandoned_recovered"]) == (1, 1)


def test_only_answers_counted_in_answered_recover_and_short_abandons_never_need_to(warehouse, agreements):
    """A short abandon (3 s) answered later is not counted (short abandons are not against us); an
    abandon followed only by an answer out of hours (Saturday) or by an internal transfer's answer
    is not recovered: those answers are not in `answered`."""
    events = abandoned("s", "2026-04-14T10:00:00+02:00", "2026-04-14T10:00:03+02:00", caller=X)
    events += answered("s2", "2026-04-14T11:00:00+02:00", "2026-04-14T11:00:10+02:00", caller=X)
    events += abandoned("fri", "2026-04-17T15:00:00+02:00", "2026-04-17T15:01:00+02:00", caller=Y)
    events += answered("sat", "2026-04-18T10:00:00+02:00", "2026-04-18T10:00:10+02:00", caller=Y)
    events += abandoned("z1", "2026-04-14T10:00:00+02:00", "2026-04-14T10:01:00+02:00", caller=Z)
    events.append(offered("z2", "2026-04-14T11:00:00+02:00", Z))
    events += call(
        "z2",
        ("answered", "2026-04-14T11:00:00+02:00", K | {"agent": "a"}),  # a direct answer: no contact
        ("queued", "2026-04-14T11:05:00+02:00", A),
        ("answered", "2026-04-14T11:06:00+02:00", A | {"agent": "b"}),  # an internal transfer's answer
    )
    k = report(warehouse, agreements, events)["queues"]["kundreskontra"]
    assert (k["abandoned"], k["short_abandoned"], k["abandoned_recovered"]) == (3, 1, 0)


# -- KKiK: answered within one working day -----------------------------------------------------------


def mail(thread: str, received: str, reply: str | None, closed: bool = False) -> list[Event]:
    box = {"mailbox": "kundreskontra", "thread_id": thread}
    out = [ev("mail.received", received, **box, message_id=f"<{thread}@x>")]
    if reply and closed:
        out.append(ev("mail.closed", reply, **box, reason="handled"))
    elif reply:
        out.append(ev("mail.replied", reply, **box, message_id=f"<r{thread}@x>"))
    return out


def test_answered_within_one_working_day(warehouse, agreements):
    """Received Fri 10 April 15:00: the first working day after Friday is Mon 13 April, so the
    deadline is Tue 14 April 00:00 local. A reply Mon 23:59:59 is within; one at 00:00 exactly is
    late. Received Sat 11 April: the next working day is also Monday, same deadline. Received Tue 28
    April: Wed 29 is the next working day (deadline Thu 30 00:00). A closed case is not answered."""
    events = mail("f1", "2026-04-10T15:00:00+02:00", "2026-04-13T23:59:59+02:00")  # within
    events += mail("f2", "2026-04-10T15:00:00+02:00", "2026-04-14T00:00:00+02:00")  # 24:00 exactly: late
    events += mail("s1", "2026-04-11T10:00:00+02:00", "2026-04-13T16:00:00+02:00")  # within
    events += mail("t1", "2026-04-28T09:00:00+02:00", "2026-04-29T23:00:00+02:00")  # within
    events += mail("t2", "2026-04-28T09:00:00+02:00", "2026-04-30T08:00:00+02:00")  # late
    events += mail("c1", "2026-04-14T09:00:00+02:00", "2026-04-14T10:00:00+02:00", closed=True)
    m = report(warehouse, agreements, events)["mailboxes"]["kundreskontra"]
    assert (m["received"], m["answered"], m["closed_without_reply"]) == (6, 5, 1)
    assert m["answered_within_1_working_day"] == 3


def test_the_working_day_skips_holidays(warehouse, agreements):
    """Received Thu 2 April 2026 15:00: Fri 3 (Good Friday), Sat, Sun and Mon 6 (Easter Monday) are
    not working days, so the first working day after is Tue 7 April: a reply Tue 09:00 is within."""
    events = mail("e", "2026-04-02T15:00:00+02:00", "2026-04-07T09:00:00+02:00")
    assert report(warehouse, agreements, events)["mailboxes"]["kundreskontra"]["answered_within_1_working_day"] == 1


# -- conflicting duplicates ----------------------------------------------------------------------------


def test_a_conflicting_duplicate_is_counted_once_however_often_it_is_met(new_warehouse, agreements):
    """Two `call.answered` with the same source and id but other agents (a conflict), an identical
    repeat of another event (no conflict); applied twice, and once more by a second Deriver (a
    restart): one conflict. The contact's numbers are those of one answer."""
    wh = new_warehouse()
    events = call("c", ("queued", "2026-04-14T10:00:00+02:00", K))
    one = ev("call.answered", "2026-04-14T10:00:30+02:00", id="dup", call_id="c", queue="kundreskontra", agent="a1")
    two = ev("call.answered", "2026-04-14T10:00:30+02:00", id="dup", call_id="c", queue="kundreskontra", agent="a2")
    first = Deriver(wh, agreements).apply([*events, one, events[0]])
    assert first.conflicts == []
    second = Deriver(wh, agreements).apply([two])
    assert len(second.conflicts) == 1
    Deriver(wh, agreements).apply([two, one])
    r = monthly_report(wh, agreements, "2026-04", now=LATER)
    assert r["conflicting_duplicates"] == 1
    q = r["queues"]["kundreskontra"]
    assert (q["offered"], q["answered"], q["asa_seconds"]) == (1, 1, 30)


# -- the worked example ------------------------------------------------------------------------------


def test_the_worked_example_gives_the_expected_report_and_the_v2_keys(warehouse):
    """shared/examples: the expected report's keys unchanged, and the v2 keys by hand. Every call has
    the same caller. kundreskontra: offered p1-p4 (p5 on Good Friday and p6 after 13:00 on the
    reduced Valborg eve are out of hours) -> callers 1, reached 1 (p1 answered); p3's abandon is
    short (2 s), p4's (60 s) is followed by no answer within 24 h (p7 is on 30 April) -> recovered 0.
    avgifter: p7 answered -> callers 1, reached 1. Mail: u1 (Thu 2 April, Easter) is answered Tue
    7 April, the first working day after; u2 (Wed 29) on Thu 30 (a reduced, working day) -> 2."""
    examples = shared_examples()
    agreements = load_agreements(examples / "agreements.yaml")
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    events = [e for batch in read_batches(examples / "events.jsonl", boundary) for e in batch.events]
    assert len(events) == 32
    r = report(warehouse, agreements, events)
    expected = json.loads((examples / "expected-report.json").read_text())
    for section in ("queues", "mailboxes"):
        for key, values in expected[section].items():
            assert {m: r[section][key][m] for m in values} == values
    k, a = r["queues"]["kundreskontra"], r["queues"]["avgifter"]
    assert (k["flowed_out"], k["callers"], k["callers_reached"], k["abandoned_recovered"], k["service_levels"]) == (
        0, 1, 1, 0, {}
    )  # fmt: skip
    assert (a["flowed_out"], a["callers"], a["callers_reached"], a["abandoned_recovered"]) == (0, 1, 1, 0)
    assert r["mailboxes"]["kundreskontra"]["answered_within_1_working_day"] == 2
    assert set(QUEUE_KEYS) <= set(k) and r["conflicting_duplicates"] == 0


# -- a late event that leaves a call fewer contacts ------------------------------------------------------


def test_a_contact_a_late_event_merges_away_leaves_no_row(new_warehouse, agreements):
    """queued K 10:00:30, ended 10:01:00, queued K 10:01:30: an abandon after 30 s and a new contact
    still waiting (2 rows). A `call.ended` at 10:00:00 arriving late ends the call before anything
    was queued, so the later end ends no wait and the second call.queued is the same queue: one
    contact, waiting since 10:00:30. The warehouse must then hold one row (seq 2 deleted), in the
    same worker and after a restart."""
    for restart in (False, True):
        wh = new_warehouse()
        first = call(
            "m",
            ("queued", "2026-04-14T10:00:30+02:00", K),
            ("ended", "2026-04-14T10:01:00+02:00", {}),
            ("queued", "2026-04-14T10:01:30+02:00", K),
        )
        deriver = Deriver(wh, agreements)
        deriver.apply(first)
        assert wh.query("SELECT seq, outcome FROM call_contacts FINAL ORDER BY seq") == [
            (1, "abandoned"),
            (2, "waiting"),
        ]
        late = call("m", ("ended", "2026-04-14T10:00:00+02:00", {}))
        (Deriver(wh, agreements) if restart else deriver).apply(late)
        assert wh.query("SELECT seq, outcome FROM call_contacts FINAL ORDER BY seq") == [(1, "waiting")]
        q = monthly_report(wh, agreements, "2026-04", now=LATER)["queues"]["kundreskontra"]
        assert (q["offered"], q["abandoned"]) == (1, 0)
