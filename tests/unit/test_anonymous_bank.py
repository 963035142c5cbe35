"""The whole Technion "Anonymous Bank" February 1999 file (33 344 real calls) through the
calls-csv adapter and its shipped mapping, checked day by day against a third party's daily
file computed from its own copy of the data, and month totals re-derived here with plain csv
code; every event then goes through the real ingest boundary with the bank's agreements."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.sources.calls_csv import load_mapping, read_calls_csv
from ingest.sources.records import Record
from schemas.agreements import load_agreements
from tests.conftest import SHARED, unavailable

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "ingest" / "sources" / "mappings" / "anonymous-bank-1999.yaml"
AGREEMENTS = REPO / "tests" / "data" / "anonymous_bank" / "agreements.yaml"
DATA = SHARED / "data" / "external" / "call_center_datasets" / "technion_anonymous_bank"
TSV = DATA / "anonymous_bank_1999-02.tsv"
DAILY = DATA / "third-party-daily-metrics-1999-02.csv"
ISRAEL = ZoneInfo("Asia/Jerusalem")
NEVER = "0:00:00"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    """The TSV read with plain csv code: the independent side of every comparison."""
    if not TSV.exists():
        unavailable(f"the Anonymous Bank data is not at {TSV} (set AVAILABILITY_SHARED to the shared directory)")
    with TSV.open(newline="", encoding="ascii") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def records(rows: list[dict[str, str]]) -> list[Record]:
    return list(read_calls_csv(TSV, load_mapping(MAPPING)))


def kinds(r: Record) -> set[str]:
    return {e["type"].removeprefix("call.") for e in r.events}


def local_day(r: Record) -> date:
    """The bank's date of a record: its call's offered time in Israel; a rejected row's `date`."""
    if r.rejected is not None:
        return datetime.strptime(r.text.split("\t")[5], "%y%m%d").date()
    offered = next(e for e in r.events if e["type"] == "call.offered")
    return datetime.fromisoformat(offered["time"]).astimezone(ISRAEL).date()


def is_hang(r: Record) -> bool:
    """A HANG row: abandoned in the queue, or offered and ended without a queue (hung up in the VRU)."""
    k = kinds(r)
    return "abandoned" in k or k == {"offered", "ended"}


def test_month_totals_from_the_tsv(rows: list[dict[str, str]]) -> None:
    """SOURCE.md's month figures, re-derived from the TSV: the base the adapter is checked against."""
    outcome = Counter(r["outcome"] for r in rows)
    queued = [r for r in rows if r["q_start"] != NEVER]
    assert len(rows) == 33_344
    assert outcome == {"AGENT": 27_162, "HANG": 5_904, "PHANTOM": 278}
    assert len(queued) == 18_336
    assert Counter(r["outcome"] for r in queued) == {"AGENT": 14_095, "HANG": 3_963, "PHANTOM": 278}
    assert Counter(r["type"] for r in rows) == {
        "PS": 21_460,
        "NW": 7_604,
        "NE": 2_750,
        "TT": 1_088,
        "IN": 293,
        "PE": 149,
    }
    served_wait = [int(r["q_time"]) for r in queued if r["outcome"] == "AGENT"]
    assert round(sum(served_wait) / len(served_wait), 1) == 78.6  # SOURCE.md: mean wait of served 78.6 s


def test_every_row_one_record_as_the_rows_say(rows: list[dict[str, str]], records: list[Record]) -> None:
    assert len(records) == len(rows) == 33_344
    assert [r.origin for r in records] == [f"{TSV.name}:{n}" for n in range(2, 33_346)]
    shapes = Counter(tuple(sorted(kinds(r))) if r.events else r.rejected for r in records)
    assert shapes == {
        # every AGENT row: 14 095 after waiting, 13 067 served from the VRU (queued at the answer)
        ("answered", "ended", "offered", "queued"): 27_162,
        ("abandoned", "ended", "offered", "queued"): 3_963,  # HANG in the queue
        ("ended", "offered"): 5_904 - 3_963,  # HANG in the VRU: 1 941
        "PHANTOM: a call the data's authors say to ignore": 278,
    }
    assert not any(r.ignored for r in records)


def test_per_day_calls_and_hangs_match_the_third_party(records: list[Record]) -> None:
    """For every day of February 1999: records (calls + PHANTOM rejections) = `total_calls`, and
    HANG rows (abandoned in the queue + hung up in the VRU) = `hangs` of the third party's file."""
    with DAILY.open(newline="", encoding="utf-8") as f:
        daily = {date.fromisoformat(d["date"]): (int(d["total_calls"]), int(d["hangs"])) for d in csv.DictReader(f)}
    assert sorted(daily) == [date(1999, 2, d) for d in range(1, 29)]
    calls = Counter(local_day(r) for r in records)
    hangs = Counter(local_day(r) for r in records if r.events and is_hang(r))
    ours = {day: (calls[day], hangs[day]) for day in sorted(calls)}
    assert ours == daily
    assert sum(t for t, _ in daily.values()) == 33_344 and sum(h for _, h in daily.values()) == 5_904


def test_offered_day_is_the_date_column(rows: list[dict[str, str]], records: list[Record]) -> None:
    """The rollover places no call's entry on another day: the offered time's local date is the row's `date`."""
    for row, record in zip(rows, records, strict=True):
        assert local_day(record) == datetime.strptime(row["date"], "%y%m%d").date(), record.origin


def test_waits_are_the_datas_own_q_time(rows: list[dict[str, str]], records: list[Record]) -> None:
    """answered/abandoned - queued is q_time on every queued row (midnight crossings included), and 0
    for a call served from the VRU: the total and per-call waits agree with the TSV's column."""

    def wait(r: Record, kind: str) -> float:
        t = {e["type"].removeprefix("call."): datetime.fromisoformat(e["time"]) for e in r.events}
        return (t[kind] - t["queued"]).total_seconds()

    for row, record in zip(rows, records, strict=True):
        if row["outcome"] == "AGENT":
            expected = int(row["q_time"]) if row["q_start"] != NEVER else 0
            assert wait(record, "answered") == expected, record.origin
        elif row["outcome"] == "HANG" and row["q_start"] != NEVER:
            assert wait(record, "abandoned") == int(row["q_time"]), record.origin


def test_queues_are_the_type_column(rows: list[dict[str, str]], records: list[Record]) -> None:
    """The queue of each queued call is its `type`, lower-cased, for every call that reached a queue."""
    expected = Counter(
        r["type"].lower() for r in rows if r["outcome"] == "AGENT" or (r["outcome"] == "HANG" and r["q_start"] != NEVER)
    )
    got = Counter(e["data"]["queue"] for r in records for e in r.events if e["type"] == "call.queued")
    assert got == expected
    assert sum(got.values()) == 27_162 + 3_963


def test_the_agreements_load_with_the_bank_week() -> None:
    a = load_agreements(AGREEMENTS)
    assert sorted(a.queues) == ["in", "ne", "nw", "pe", "ps", "tt"]
    cal = a.queues["ps"].calendar

    def open_at(day: int, hh: int, mm: int) -> bool:
        return cal.is_open(datetime(1999, 2, day, hh, mm, tzinfo=ISRAEL))

    # 1 Feb 1999 is a Monday; 5 Feb a Friday, 6 Feb a Saturday, 7 Feb a Sunday
    assert open_at(1, 7, 0) and not open_at(1, 6, 59) and open_at(1, 23, 59)
    assert open_at(5, 13, 59) and not open_at(5, 14, 0)
    assert not open_at(6, 19, 59) and open_at(6, 20, 0)
    assert open_at(7, 7, 0)


def test_every_event_passes_the_boundary(records: list[Record]) -> None:
    agreements = load_agreements(AGREEMENTS)
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    reasons: Counter[str] = Counter()
    accepted = 0
    for r in records:
        for e in r.events:
            result = boundary.accept(msgspec.json.encode(e), r.origin)
            if isinstance(result, Rejection):
                reasons[result.reason] += 1
            else:
                accepted += 1
    assert reasons == Counter()
    # 4 events per AGENT and queued-HANG row, 2 per VRU hang-up
    assert accepted == 4 * 27_162 + 4 * 3_963 + 2 * 1_941 == 128_382
