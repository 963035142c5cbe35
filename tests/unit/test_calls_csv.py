"""The call-record CSV adapter (ingest/sources/calls_csv.py): rows shaped like the shipped mappings'
files become the hand-computed events; malformed rows become rejected Records; nothing raises."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.sources.calls_csv import load_mapping, read_calls_csv
from ingest.sources.calls_csv import read_rows as _read_rows
from ingest.sources.mapping import Mapping, MappingError, parse_mapping
from ingest.sources.records import Record
from schemas.agreements import load_agreements

MAPPINGS = Path(__file__).resolve().parents[2] / "ingest" / "sources" / "mappings"
BANK = load_mapping(MAPPINGS / "anonymous-bank-1999.yaml")
ACE = load_mapping(MAPPINGS / "telia-ace-contact-list.yaml")

BANK_HEADER = "vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\tq_start\tq_exit\tq_time\toutcome\tser_start\tser_exit\tser_time\tserver"


def bank_row(vru: str, cid: str, cust: str, typ: str, day: str, times: str, outcome: str, ser: str, server: str) -> str:
    """A bank row: `times` = "vru_entry vru_exit q_start q_exit", `ser` = "ser_start ser_exit"
    (the *_time columns are not read; 0 here)."""
    ve, vx, qs, qx = times.split()
    ss, sx = ser.split()
    return "\t".join([vru, cid, cust, "0", typ, day, ve, vx, "0", qs, qx, "0", outcome, ss, sx, "0", server])


def read(text: str, mapping: Mapping, name: str = "calls.tsv") -> list[Record]:
    return list(_read_rows(io.StringIO(text, newline=""), mapping, name))


def timeline(record: Record) -> list[tuple[str, str, dict[str, Any]]]:
    """(type without `call.`, UTC time, data without call_id) of a record's events."""
    return [
        (e["type"].removeprefix("call."), e["time"], {k: v for k, v in e["data"].items() if k != "call_id"})
        for e in record.events
    ]


# -- the bank's mapping on hand-made rows ----------------------------------------------------------
# February 1999 in Israel is +02:00 all month (DST began on 2 April), so local 7:02:47 is 05:02:47Z.

BANK_ROWS = [
    # 2: served after waiting in the queue; no customer id (0), agent DORIT
    bank_row(
        "AA0101", "1", "0", "PS", "990201", "7:02:47 7:02:56 7:02:56 7:04:00", "AGENT", "7:03:59 7:06:00", "DORIT"
    ),
    # 3: served straight from the VRU (q_start 0:00:00), no server recorded
    bank_row(
        "AA0102",
        "2",
        "12345",
        "NW",
        "990201",
        "8:00:00 8:00:10 0:00:00 0:00:00",
        "AGENT",
        "8:00:09 8:01:00",
        "NO_SERVER",
    ),
    # 4: hung up in the queue; ser_* never happened
    bank_row(
        "AA0101", "3", "0", "NE", "990201", "8:09:16 8:09:22 8:09:22 8:09:27", "HANG", "0:00:00 0:00:00", "NO_SERVER"
    ),
    # 5: hung up in the VRU, never queued
    bank_row(
        "AA0101", "4", "0", "PS", "990201", "9:00:00 9:00:05 0:00:00 0:00:00", "HANG", "0:00:00 0:00:00", "NO_SERVER"
    ),
    # 6: PHANTOM
    bank_row(
        "AA0101",
        "5",
        "0",
        "PS",
        "990202",
        "13:13:33 13:13:42 13:13:42 13:14:12",
        "PHANTOM",
        "13:13:40 13:14:18",
        "NO_SERVER",
    ),
    # 7: entered at 23:59:50 on 1 Feb, answered after midnight
    bank_row(
        "AA0102", "6", "0", "TT", "990201", "23:59:50 23:59:58 23:59:58 0:00:30", "AGENT", "0:00:29 0:05:00", "SHARON"
    ),
    # 8: the VRU's clock 57 s behind the entry's (a real row of 7 Feb has the same shape)
    bank_row(
        "AA0102", "7", "0", "PS", "990207", "9:48:14 9:47:17 9:47:17 9:50:11", "AGENT", "9:50:11 9:51:28", "KAZAV"
    ),
]


@pytest.fixture(scope="module")
def bank_records() -> list[Record]:
    return read("\r\n".join([BANK_HEADER, *BANK_ROWS]) + "\r\n", BANK)


def test_bank_served_after_waiting(bank_records: list[Record]) -> None:
    r = bank_records[0]
    assert r.origin == "calls.tsv:2" and r.rejected is None and r.text == ""
    assert timeline(r) == [
        ("offered", "1999-02-01T05:02:47Z", {"entrance": "AA0101"}),  # customer 0: no caller
        ("queued", "1999-02-01T05:02:56Z", {"queue": "ps"}),
        ("answered", "1999-02-01T05:04:00Z", {"queue": "ps", "agent": "DORIT"}),  # at q_exit: wait 64 s = q_time
        ("ended", "1999-02-01T05:06:00Z", {}),  # ser_exit
    ]
    ids = [e["id"] for e in r.events]
    assert ids == [f"990201:AA0101:1:{k}" for k in ("offered", "queued", "answered", "ended")]
    assert {e["data"]["call_id"] for e in r.events} == {"990201:AA0101:1"}
    assert {e["source"] for e in r.events} == {"technion-bank"}


def test_bank_served_from_the_vru_is_a_contact_with_wait_zero(bank_records: list[Record]) -> None:
    # queued_at_answer: queued and answered at vru_exit 8:00:10; NO_SERVER -> the agent "unknown"
    assert timeline(bank_records[1]) == [
        ("offered", "1999-02-01T06:00:00Z", {"entrance": "AA0102", "caller": "12345"}),
        ("queued", "1999-02-01T06:00:10Z", {"queue": "nw"}),
        ("answered", "1999-02-01T06:00:10Z", {"queue": "nw", "agent": "unknown"}),
        ("ended", "1999-02-01T06:01:00Z", {}),
    ]


def test_bank_hang_up_in_queue_and_in_the_vru(bank_records: list[Record]) -> None:
    assert timeline(bank_records[2]) == [
        ("offered", "1999-02-01T06:09:16Z", {"entrance": "AA0101"}),
        ("queued", "1999-02-01T06:09:22Z", {"queue": "ne"}),
        ("abandoned", "1999-02-01T06:09:27Z", {"queue": "ne"}),
        ("ended", "1999-02-01T06:09:27Z", {}),  # ser_exit never: q_exit
    ]
    # never queued: offered and ended (at vru_exit) only, in no queue
    assert timeline(bank_records[3]) == [
        ("offered", "1999-02-01T07:00:00Z", {"entrance": "AA0101"}),
        ("ended", "1999-02-01T07:00:05Z", {}),
    ]


def test_bank_phantom_is_rejected_with_its_text(bank_records: list[Record]) -> None:
    r = bank_records[4]
    assert r.events == () and r.rejected == "PHANTOM: a call the data's authors say to ignore"
    assert r.text == BANK_ROWS[4]  # the line as read, without its CRLF


def test_bank_rollover_past_midnight(bank_records: list[Record]) -> None:
    # local 1 Feb 23:59:50 = 21:59:50Z; q_exit 0:00:30 is earlier on the clock than the entry, so it
    # is 2 Feb 00:00:30 local = 1 Feb 22:00:30Z, and ser_exit 0:05:00 = 22:05:00Z
    assert [t for _, t, _ in timeline(bank_records[5])] == [
        "1999-02-01T21:59:50Z",
        "1999-02-01T21:59:58Z",
        "1999-02-01T22:00:30Z",
        "1999-02-01T22:05:00Z",
    ]


def test_bank_clock_skew_is_not_a_day(bank_records: list[Record]) -> None:
    # q_start 9:47:17 is 57 s before the entry 9:48:14: within skew_seconds (600), so the same
    # day's 9:47:17 (07:47:17Z), not 8 Feb's
    assert [t for _, t, _ in timeline(bank_records[6])] == [
        "1999-02-07T07:48:14Z",
        "1999-02-07T07:47:17Z",
        "1999-02-07T07:50:11Z",
        "1999-02-07T07:51:28Z",
    ]


def test_rollover_rule_at_the_edges() -> None:
    # entry 0:00:18 on 2 Feb, q_start 23:59:58: 20 s before the entry on the clock (within the
    # skew), so 1 Feb 23:59:58 local = 21:59:58Z; a time 11 min before the entry is the next day.
    rows = [
        bank_row(
            "AA0101", "1", "0", "PS", "990202", "0:00:18 0:00:20 23:59:58 0:01:00", "AGENT", "0:01:00 0:02:00", "A"
        ),
        bank_row(
            "AA0101", "2", "0", "PS", "990202", "12:00:00 12:00:05 11:49:00 11:49:50", "HANG", "0:00:00 0:00:00", "A"
        ),
    ]
    first, second = read("\n".join([BANK_HEADER, *rows]), BANK)
    assert timeline(first)[1][1] == "1999-02-01T21:59:58Z"
    # 11:49:00 is 660 s before 12:00:00 (> 600): 3 Feb 11:49 local = 09:49Z; q_exit 11:49:50 is
    # 610 s before: 3 Feb 11:49:50 (exactly 600 s before would be the same day: the next test)
    assert [t for _, t, _ in timeline(second)][1:3] == ["1999-02-03T09:49:00Z", "1999-02-03T09:49:50Z"]


MALFORMED = [
    ("AA0101\t9\t0", "3 columns where the header has 17"),
    (
        bank_row(
            "AA0101", "10", "0", "PS", "990201", "7:00:00 7:00:05 25:61:00 7:01:00", "AGENT", "7:01:00 7:02:00", "X"
        ),
        "q_start: not a time in the format %H:%M:%S",
    ),
    (
        bank_row(
            "AA0101", "11", "0", "PS", "990230", "7:00:00 7:00:05 7:00:05 7:01:00", "AGENT", "7:01:00 7:02:00", "X"
        ),
        "date: not a date in the format %y%m%d",
    ),
    (
        bank_row(
            "AA0101", "12", "0", "PS", "990201", "7:00:00 7:00:05 7:00:05 7:01:00", "TRANSFER", "7:01:00 7:02:00", "X"
        ),
        "outcome: a value the mapping does not name ('TRANSFER')",
    ),
    (
        bank_row("AA0101", "", "0", "PS", "990201", "7:00:00 7:00:05 7:00:05 7:01:00", "AGENT", "7:01:00 7:02:00", "X"),
        "id: the column 'call_id' is empty",
    ),
    (
        bank_row(
            "AA0101", "14", "0", "PS", "990201", "0:00:00 7:00:05 7:00:05 7:01:00", "AGENT", "7:01:00 7:02:00", "X"
        ),
        "lifecycle.offered: no time (vru_entry empty)",
    ),
    (
        bank_row("AA0101", "15", "0", "", "990201", "7:00:00 7:00:05 7:00:05 7:01:00", "AGENT", "7:01:00 7:02:00", "X"),
        "queue: the column 'type' is empty and there is no default",
    ),
    (
        bank_row(
            "AA0101",
            "16",
            "0",
            "PS",
            "990201",
            "7:00:00 7:00:05 7:00:05 7:01:00",
            "AGENT",
            "7:01:00 7:02:00",
            "+46701234567",
        ),
        None,
    ),
]


def test_malformed_rows_are_rejected_with_reason_and_text() -> None:
    text = "\n".join([BANK_HEADER, *(row for row, _ in MALFORMED)])
    records = read(text, BANK)
    assert [r.origin for r in records] == [f"calls.tsv:{n}" for n in range(2, 2 + len(MALFORMED))]
    for record, (row, reason) in zip(records, MALFORMED, strict=True):
        assert record.rejected == reason
        assert record.text == (row if reason else "")
    # an unmapped outcome value that could be personal data is not quoted in the reason
    odd = bank_row(
        "AA0101", "17", "0", "PS", "990201", "7:00:00 7:00:05 7:00:05 7:01:00", "0701234567", "7:01:00 7:02:00", "X"
    )
    (record,) = read(f"{BANK_HEADER}\n{odd}\n", BANK)
    assert (
        record.rejected == "outcome: a value the mapping does not name ((a value not shown: it could be personal data))"
    )


def test_bytes_not_in_the_encoding_blank_lines_and_crlf(tmp_path: Path) -> None:
    good = bank_row(
        "AA0101", "1", "0", "PS", "990201", "7:00:00 7:00:05 7:00:05 7:01:00", "AGENT", "7:01:00 7:02:00", "DORIT"
    )
    bad = good.replace("DORIT", "D\xffRIT").replace("\t1\t", "\t2\t")
    path = tmp_path / "feb.tsv"
    path.write_bytes(b"\r\n".join([BANK_HEADER.encode(), good.encode(), b"", bad.encode("latin-1")]) + b"\r\n")
    records = list(read_calls_csv(path, BANK))
    assert [(r.origin, r.rejected, r.ignored) for r in records] == [
        ("feb.tsv:2", None, None),
        ("feb.tsv:3", None, "an empty line"),
        ("feb.tsv:4", "bytes that are not utf-8", None),
    ]
    assert records[2].text == bad.replace("\xff", "\\xff")  # the byte shown, the text still UTF-8


def test_a_header_without_a_named_column_is_a_file_error() -> None:
    header = BANK_HEADER.replace("\tserver", "\tagent_name")
    with pytest.raises(MappingError, match=r"calls\.tsv: the header has no column 'server' \(named by the mapping\)"):
        read(header + "\n", BANK)


def test_an_empty_file_has_no_records() -> None:
    assert read("", BANK) == []
    assert read(BANK_HEADER + "\r\n", BANK) == []


def test_reading_twice_gives_the_same_ids(bank_records: list[Record]) -> None:
    again = read("\r\n".join([BANK_HEADER, *BANK_ROWS]) + "\r\n", BANK)
    assert again == bank_records


def test_the_file_is_streamed() -> None:
    """An endless input gives its first records: rows are read one at a time."""

    def endless() -> Iterator[str]:
        yield BANK_HEADER + "\n"
        for n in itertools.count():
            yield (
                bank_row(
                    "AA0101",
                    str(n),
                    "0",
                    "PS",
                    "990201",
                    "7:00:00 7:00:05 7:00:05 7:01:00",
                    "AGENT",
                    "7:01:00 7:02:00",
                    "A",
                )
                + "\n"
            )

    first = list(itertools.islice(_read_rows(endless(), BANK, "pipe"), 3))
    assert [r.origin for r in first] == ["pipe:2", "pipe:3", "pipe:4"]


# -- the Telia ACE example on a file shaped as its comments describe ------------------------------

ACE_HEADER = (
    "Contact ID;Contact type;Start time;Entrance;A-number;Queue;Queue start;Queue time (s);Result;Agent;End time"
)
ACE_ROWS = [
    "1001;Incoming IVR call;2026-05-04 08:15:31;0812345;+46701234567;Kundreskontra;2026-05-04 08:16:01;45;Answered;anna.a;2026-05-04 08:20:00",
    "1002;Incoming IVR call;2026-05-04 09:00:00;0812345;Anonymous;Leverantörsreskontra;2026-05-04 09:00:10;0:01:30;Abandoned;;2026-05-04 09:01:40",
    "1003;Incoming IVR call;2026-05-04 09:10:00;0812345;+46701234568;Redovisning;2026-05-04 09:10:20;20;Callback;;2026-05-04 09:10:45",
    "1004;Incoming IVR call;2026-05-04 09:20:00;0812345;+46701234569;Kassa och bank;2026-05-04 09:20:10;600;Escalated;;2026-05-04 09:30:10",
    "1005;Incoming IVR call;2026-05-04 09:30:00;0812345;+46701234560;Redovisning;2026-05-04 09:30:10;12;Lost;;2026-05-04 09:30:22",
    "1006;Chat;2026-05-04 09:40:00;web;;Redovisning;2026-05-04 09:40:00;5;Answered;bo.b;2026-05-04 09:45:00",
    "1007;Incoming IVR call;2026-05-04 09:50:00;0812345;+46701234561;;;;Abandoned;;2026-05-04 09:50:40",
    "1008;Incoming IVR call;2026-05-04 10:00:00;0812345;+46701234562;Okänd kö;2026-05-04 10:00:05;3;Answered;bo.b;2026-05-04 10:02:00",
]


@pytest.fixture(scope="module")
def ace_records(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    path = tmp_path_factory.mktemp("ace") / "kontaktlista.csv"
    path.write_bytes("\r\n".join([ACE_HEADER, *ACE_ROWS]).encode("utf-8-sig"))  # with a BOM, as Excel writes
    return list(read_calls_csv(path, ACE))


def test_ace_example_events(ace_records: list[Record]) -> None:
    # May 2026 in Stockholm is +02:00 (CEST): 08:15:31 local = 06:15:31Z
    assert timeline(ace_records[0]) == [
        ("offered", "2026-05-04T06:15:31Z", {"entrance": "0812345", "caller": "+46701234567"}),
        ("queued", "2026-05-04T06:16:01Z", {"queue": "kundreskontra"}),
        ("answered", "2026-05-04T06:16:46Z", {"queue": "kundreskontra", "agent": "anna.a"}),  # 08:16:01 + 45 s
        ("ended", "2026-05-04T06:20:00Z", {}),
    ]
    # a queue name with å/ö through the map; "Anonymous" is no caller; 0:01:30 after 09:00:10 = 09:01:40
    assert timeline(ace_records[1]) == [
        ("offered", "2026-05-04T07:00:00Z", {"entrance": "0812345"}),
        ("queued", "2026-05-04T07:00:10Z", {"queue": "leverantorsreskontra"}),
        ("abandoned", "2026-05-04T07:01:40Z", {"queue": "leverantorsreskontra"}),
        ("ended", "2026-05-04T07:01:40Z", {}),
    ]
    assert timeline(ace_records[2])[2] == ("callback_requested", "2026-05-04T07:10:40Z", {"queue": "redovisning"})
    assert timeline(ace_records[3])[2] == (
        "exited",
        "2026-05-04T07:30:10Z",
        {"queue": "kassa_bank", "reason": "timeout"},
    )
    assert ace_records[4].rejected == "Lost: lost during delivery to an agent (how to count it is not confirmed)"
    assert ace_records[5].ignored == "not an incoming call (callback, campaign, chat or e-mail)"
    # no queue start: hung up in the IVR
    assert [k for k, _, _ in timeline(ace_records[6])] == ["offered", "ended"]
    # an unknown queue name is sent as it is: the boundary rejects it with a reason
    assert timeline(ace_records[7])[1] == ("queued", "2026-05-04T08:00:05Z", {"queue": "Okänd kö"})
    assert [r.origin for r in ace_records] == [f"kontaktlista.csv:{n}" for n in range(2, 10)]


def test_ace_example_through_the_boundary(ace_records: list[Record]) -> None:
    agreements = load_agreements()  # the default agreements: the example's queue map targets them
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    results = [boundary.accept(msgspec.json.encode(e)) for r in ace_records for e in r.events]
    rejected = [x.reason for x in results if isinstance(x, Rejection)]
    # only the unknown queue of row 1008 (its queued and answered events); the name is quoted
    assert (
        rejected
        == ["data.queue: unknown queue (a value not shown: it could be personal data) (not in the agreements)"] * 2
    )
    assert len(results) - len(rejected) == 4 + 4 + 4 + 4 + 2 + 2  # rows 1001-1004, 1007, 1008's offered+ended


# -- other dialects: no header, title lines, cp1252, ISO times with offsets, durations ------------


def test_headerless_cp1252_iso_and_durations(tmp_path: Path) -> None:
    mapping = parse_mapping(
        {
            "source": "pbx",
            "timezone": "Europe/Stockholm",
            "csv": {
                "delimiter": ";",
                "encoding": "cp1252",
                "header": False,
                "skip_lines": 2,
                "columns": ["id", "start", "wait", "talk", "res", "queue", "who"],
            },
            "id": "id",
            "times": {"format": "iso"},
            "lifecycle": {
                "offered": "start",
                "queued": "start",
                "answered": {"after": "queued", "seconds": "wait"},
                "left": {"after": "queued", "seconds": "wait"},
                "ended": {"after": "answered", "seconds": "talk"},
            },
            "queue": {"column": "queue", "default": "vaxel"},
            "outcome": {
                "column": "res",
                "values": {"svar": "answered", "lagt på": "abandoned", "kö full": "exited:queue_full"},
            },
            "agent": {"column": "who", "none": ["-"], "missing_as": "nobody"},
            "entrance": {"default": "växel"},
            "rules": [{"column": "res", "values": ["test"], "reject": "a test call"}],
        }
    )
    lines = [
        "Samtalslista för växeln",  # two title lines, skipped
        "maj 2026",
        "a1;2026-03-29T01:59:00+01:00;30;0:02:00;svar;;Åsa",  # before the spring DST change; default queue
        "a2;2026-03-29T03:01:00;75.5;;lagt på;kassa;-",  # local time after the change (+02:00)
        "a3;2026-03-29T10:00:00Z;5;;kö full;kassa;-",
        "a4;2026-03-29T10:00:00Z;-5;;lagt på;kassa;-",
        "a5;2026-03-29T10:00:00Z;5;;test;kassa;-",
    ]
    path = tmp_path / "vaxel.csv"
    path.write_bytes("\n".join(lines).encode("cp1252"))
    r1, r2, r3, r4, r5 = read_calls_csv(path, mapping)
    assert timeline(r1) == [
        ("offered", "2026-03-29T00:59:00Z", {"entrance": "växel"}),
        ("queued", "2026-03-29T00:59:00Z", {"queue": "vaxel"}),
        ("answered", "2026-03-29T00:59:30Z", {"queue": "vaxel", "agent": "Åsa"}),
        ("ended", "2026-03-29T01:01:30Z", {}),  # answered + 2 min talk
    ]
    # 03:01 CEST = 01:01Z; 75.5 s wait -> 01:02:15.500Z; no talk time: no call.ended
    assert timeline(r2) == [
        ("offered", "2026-03-29T01:01:00Z", {"entrance": "växel"}),
        ("queued", "2026-03-29T01:01:00Z", {"queue": "kassa"}),
        ("abandoned", "2026-03-29T01:02:15.500Z", {"queue": "kassa"}),
    ]
    assert timeline(r3)[2] == ("exited", "2026-03-29T10:00:05Z", {"queue": "kassa", "reason": "queue_full"})
    assert (r4.origin, r4.rejected) == ("vaxel.csv:6", "wait: not a duration (seconds or h:mm:ss)")
    assert (r5.rejected, r5.text) == ("a test call", lines[6])


# -- nothing raises, whatever the rows --------------------------------------------------------------

SMALL = parse_mapping(
    {
        "source": "fuzz",
        "timezone": "Europe/Stockholm",
        "id": ["d", "id"],
        "date": {"column": "d", "format": "%Y-%m-%d", "skew_seconds": 60},
        "times": {"format": "%H:%M:%S", "never": ["0:00:00"]},
        "lifecycle": {
            "offered": "t0",
            "queued": "t1",
            "answered": ["t2", "t0"],
            "left": {"after": "queued", "seconds": "w"},
            "ended": "t2",
        },
        "queue": {"column": "q", "map": {"A": "a"}},
        "outcome": {
            "column": "o",
            "values": {"ok": "answered", "hang": "abandoned", "cb": "callback", "x": {"ignore": "x"}},
        },
        "agent": {"column": "q"},
        "caller": {"column": "id", "none": ["0"]},
        "entrance": {"column": "q"},
        "rules": [{"column": "o", "values": ["bad"], "reject": "bad"}],
    }
)
COLUMNS = ["d", "id", "t0", "t1", "t2", "w", "q", "o"]
NEAR = st.sampled_from(
    [
        "2026-05-04",
        "2026-13-01",
        "7:02:47",
        "0:00:00",
        "23:59:59",
        "24:00:00",
        "12",
        "-3",
        "1e308",
        "nan",
        "A",
        "B",
        "ok",
        "hang",
        "cb",
        "x",
        "bad",
        "",
        " ",
        "0",
    ]
)
CELL = st.one_of(NEAR, st.text(max_size=12))
ROW = st.one_of(st.lists(CELL, min_size=8, max_size=8), st.lists(CELL, max_size=10))


def one_outcome(r: Record) -> bool:
    return (bool(r.events), r.ignored is not None, r.rejected is not None).count(True) == 1


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=12))
def test_any_rows_give_one_record_each(rows: list[list[str]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    records = read(out.getvalue(), SMALL, "f.csv")
    assert len(records) == len(rows)
    starts = [int(r.origin.split(":")[1]) for r in records]
    assert starts == sorted(set(starts)) and all(s >= 2 for s in starts)
    for r in records:
        assert one_outcome(r)
        for e in r.events:
            msgspec.json.encode(e)  # every event is JSON as it stands


BYTES_MAPPING = parse_mapping({**msgspec.to_builtins(SMALL), "csv": {"header": False, "columns": COLUMNS}})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]))
def test_any_bytes_never_raise(data: bytes, encoding: str) -> None:
    mapping = parse_mapping(
        {**msgspec.to_builtins(BYTES_MAPPING), "csv": {"header": False, "columns": COLUMNS, "encoding": encoding}}
    )
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="surrogateescape", newline="")
    records = list(_read_rows(stream, mapping, "b"))
    assert len(records) <= data.count(b"\n") + data.count(b"\r") + 1  # at most one per line
    for r in records:
        assert one_outcome(r)
        r.text.encode("utf-8")  # a rejects file can hold it


# -- review findings: a duration across the clock change, the skew's edge, a codec of no text ------


def test_a_queue_time_across_the_autumn_clock_change_is_elapsed_time(tmp_path: Path) -> None:
    # Sunday 25 Oct 2026, Stockholm: 03:00 CEST becomes 02:00 CET. Queued at 02:59:30 (the first
    # 02:59:30, +02:00 = 00:59:30Z) and waiting 60 s: answered at 01:00:30Z, a wait of 60 s. Adding
    # the seconds to the local clock reading gave 03:00:30 CET = 02:00:30Z, a wait of 3660 s.
    row = "2001;Incoming IVR call;2026-10-25 02:59:00;0812345;+46701234567;Kundreskontra;2026-10-25 02:59:30;60;Answered;anna.a;2026-10-25 03:10:00"
    path = tmp_path / "oktober.csv"
    path.write_bytes("\r\n".join([ACE_HEADER, row]).encode("utf-8-sig"))
    [record] = read_calls_csv(path, ACE)
    times = {kind: t for kind, t, _ in timeline(record)}
    assert (times["queued"], times["answered"]) == ("2026-10-25T00:59:30Z", "2026-10-25T01:00:30Z")


def test_a_time_exactly_skew_seconds_before_the_entry_is_the_same_day() -> None:
    # skew_seconds 600 (the bank's mapping): q_start 9:50:00 is exactly 600 s before the entry
    # 10:00:00, "at most 10 minutes earlier": 1 Feb 9:50:00 local (+02:00) = 07:50:00Z, not 2 Feb.
    row = bank_row(
        "AA0101", "1", "0", "PS", "990201", "10:00:00 10:00:05 9:50:00 10:01:00", "HANG", "0:00:00 0:00:00", "A"
    )
    [record] = read("\n".join([BANK_HEADER, row]), BANK)
    assert timeline(record)[1][1] == "1999-02-01T07:50:00Z"
