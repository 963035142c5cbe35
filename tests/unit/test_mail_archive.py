"""The mail-archive adapter (ingest/sources/mail_archive.py) against notmuch's own threading of
its test corpus, in the three layouts, and on the edge cases of real archives."""

from __future__ import annotations

import base64
import mailbox
import re
import shutil
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.boundary import Boundary
from ingest.imap.headers import normal_subject
from ingest.pseudonymise import Pseudonymiser
from ingest.sources.mail_archive import DUPLICATE, NO_DATE, read_mail_archive
from ingest.sources.records import Record
from schemas.agreements import load_agreements
from schemas.events import Event, MailReceived, MailReplied
from tests.conftest import SHARED, unavailable

CORPUS = SHARED / "data" / "external" / "graph_mail" / "notmuch_test_corpus"
MAILBOX = "kundreskontra"  # a mailbox of the shipped agreements, so the boundary accepts the events
CARL = "cworth@cworth.org"  # the list's maintainer: as the "mailbox", his messages are its replies


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not (CORPUS / "messages").is_dir():
        unavailable(f"the notmuch corpus is not at {CORPUS} (set AVAILABILITY_SHARED to the shared directory)")
    return CORPUS


def read(path: Path | list[Path], own: tuple[str, ...] = (), mailbox_id: str = MAILBOX) -> list[Record]:
    return list(read_mail_archive(path, mailbox_id, own))


def events(records: list[Record]) -> list[dict[str, Any]]:
    return [e for r in records for e in r.events]


def by_origin(records: list[Record]) -> dict[str, Record]:
    return {r.origin: r for r in records}


def threads(records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events(records):
        out.setdefault(e["data"]["thread_id"], []).append(e)
    return out


# -- (1) the notmuch corpus against notmuch's expected output -------------------------------------

# `thread:XXX   2009-11-18 [3/3(4)] Aron Griffis, Keith Packard, Carl Worth; [notmuch] archive (inbox unread)`
EXPECTED_LINE = re.compile(r"^thread:\S+\s+\S+ \[(\d+)/(\d+)(?:\((\d+)\))?\] [^;]*; (.*) \([^()]*\)$")


def expected_threads(corpus: Path) -> list[tuple[str, int, int]]:
    """(normalised subject, messages, files) per thread of `notmuch search '*'` (T080)."""
    out = []
    for line in (corpus / "expected-threads-notmuch-T080.txt").read_text(encoding="utf-8").splitlines():
        m = EXPECTED_LINE.match(line)
        assert m is not None, line
        assert m[1] == m[2]  # '*' matches every message: matched == total
        out.append((normal_subject(m[4]), int(m[2]), int(m[3] or m[2])))
    return out


def test_the_corpus_gives_notmuchs_24_threads_and_52_messages(corpus: Path) -> None:
    # No own address: every message is a received one and carries its subject, to match on.
    records = read(corpus / "messages")
    expected = expected_threads(corpus)
    # notmuch: 24 threads, 52 distinct messages in 53 files (SOURCE.md); read from its output.
    assert len(expected) == 24
    assert sum(n for _, n, _ in expected) == 52
    assert sum(f for _, _, f in expected) == 53
    assert len(records) == 53  # one Record per file
    evs = events(records)
    assert len(evs) == 52 and len({e["data"]["message_id"] for e in evs}) == 52
    assert {e["type"] for e in evs} == {"mail.received"}
    # The duplicate delivery: cur__51.eml is byte for byte bar__18.eml; files are read in path order.
    assert [(r.origin, r.ignored) for r in records if not r.events] == [("cur__51.eml", DUPLICATE)]
    found = threads(records)
    assert len(found) == 24
    assert sorted(len(t) for t in found.values()) == sorted(n for _, n, _ in expected)
    # Each thread by its subject: notmuch names a thread by one of its messages' subjects ("Re:"
    # dropped); the expected subjects are distinct, so each names exactly one thread.
    assert len({s for s, _, _ in expected}) == 24
    sizes = {}
    for members in found.values():
        subjects = {normal_subject(e["data"]["subject"]) for e in members}
        (name,) = [s for s, _, _ in expected if s in subjects]
        sizes[name] = len(members)
    assert sizes == {s: n for s, n, _ in expected}
    # The "(4)" thread holds the duplicate: 3 messages, 4 files.
    (archive,) = [(s, n, f) for s, n, f in expected if f != n]
    assert archive == ("[notmuch] archive", 3, 4)


def test_thread_ids_are_the_roots_and_replies_name_their_parent(corpus: Path) -> None:
    recs = by_origin(read(corpus / "messages"))
    # 7-message thread "Working with Maildir storage?": its first message foo__new__03.eml is the
    # root every References header starts with, so it is the thread id of all seven.
    root = "<20091117190054.GU3165@dottiness.seas.harvard.edu>"
    maildir = [r for r in recs.values() if r.events and r.events[0]["data"]["thread_id"] == root]
    assert sorted(r.origin for r in maildir) == [
        "bar__new__22.eml", "cur__41.eml", "foo__baz__12.eml", "foo__cur__08.eml",
        "foo__new__03.eml", "foo__new__09.eml", "new__04.eml",
    ]  # fmt: skip
    # 02.eml is "[PATCH 2/2]", a different subject, but In-Reply-To 01.eml: notmuch threads by
    # references only, so it is in 01's thread (5 messages), not a thread of its own.
    assert recs["02.eml"].events[0]["data"]["thread_id"] == recs["01.eml"].events[0]["data"]["message_id"]


# One message per offset of the corpus (there are seven, counting +0000), each Date by hand in UTC.
DATES = [
    ("01.eml", "Tue, 17 Nov 2009 21:28:37 +0600", "2009-11-17T15:28:37Z"),  # 21:28 - 6 h
    ("bar__17.eml", "Tue, 17 Nov 2009 23:57:18 +0100", "2009-11-17T22:57:18Z"),  # 23:57 - 1 h
    ("bar__18.eml", "Tue, 17 Nov 2009 18:21:38 -0500", "2009-11-17T23:21:38Z"),  # 18:21 + 5 h
    ("cur__33.eml", "Tue, 17 Nov 2009 21:12:23 -0800 (PST)", "2009-11-18T05:12:23Z"),  # 21:12 + 8 h: next day
    ("bar__baz__cur__25.eml", "Wed, 18 Nov 2009 12:05:53 +1100", "2009-11-18T01:05:53Z"),  # 12:05 - 11 h
    ("cur__31.eml", "Wed, 18 Nov 2009 11:50:17 +0800", "2009-11-18T03:50:17Z"),  # 11:50 - 8 h
    ("cur__50.eml", "Wed, 18 Nov 2009 11:34:54 +0000", "2009-11-18T11:34:54Z"),
]


@pytest.mark.parametrize(("origin", "date", "utc"), DATES)
def test_dates_in_every_offset_are_converted_to_utc(corpus: Path, origin: str, date: str, utc: str) -> None:
    head = BytesHeaderParser().parsebytes((corpus / "messages" / origin).read_bytes())
    assert head["Date"] == date  # the header the expected value was computed from
    (event,) = by_origin(read(corpus / "messages"))[origin].events
    assert event["time"] == utc


def test_carls_messages_are_the_replies_and_the_lead_time_crosses_offsets(corpus: Path) -> None:
    records = read(corpus / "messages", own=("CWorth@cworth.org",))  # any case
    counts = Counter(e["type"] for e in events(records))
    # Carl wrote 12 messages (foo__06, foo__cur__07, cur__40 … cur__49); none starts a thread.
    assert counts == {"mail.received": 40, "mail.replied": 12}
    recs = by_origin(records)
    (asked,) = recs["01.eml"].events  # Mikhail Gusarov, "Tue, 17 Nov 2009 21:28:37 +0600"
    (reply,) = recs["foo__cur__07.eml"].events  # Carl Worth, "Tue, 17 Nov 2009 09:13:27 -0800"
    assert asked["type"] == "mail.received" and asked["data"]["sender"] == "dottedmag@dottedmag.net"
    assert reply["type"] == "mail.replied" and "sender" not in reply["data"] and "subject" not in reply["data"]
    assert reply["data"]["in_reply_to"] == asked["data"]["message_id"]
    assert reply["data"]["thread_id"] == asked["data"]["thread_id"] == asked["data"]["message_id"]
    # 15:28:37Z -> 17:13:27Z: 1 h 44 min 50 s = 6290 s, though the local clocks read 21:28 and 09:13.
    assert (asked["time"], reply["time"]) == ("2009-11-17T15:28:37Z", "2009-11-17T17:13:27Z")
    assert threads(records) == threads(read(corpus / "messages", own=(CARL,)))


def test_every_event_passes_the_boundary_and_no_address_or_subject_survives(corpus: Path) -> None:
    agreements = load_agreements(None)
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    records = read(corpus / "messages", own=(CARL,))
    addresses, subjects = set(), set()
    for p in (corpus / "messages").iterdir():
        evs = by_origin(read(p)).get(p.name)
        assert evs is not None and len(evs.events) == 1
        addresses.add(evs.events[0]["data"]["sender"].casefold())
        subjects.add(evs.events[0]["data"]["subject"].casefold())
    # 16 posters: "Alex" and "Alexander" Botero-Lowry write from one address.
    assert len(addresses) == 16 and CARL in addresses
    accepted: list[MailReceived | MailReplied] = []
    for e in events(records):
        result = boundary.accept(msgspec.json.encode(e))
        assert isinstance(result, MailReceived | MailReplied), result
        accepted.append(result)
        text = msgspec.json.encode(result).decode().casefold()
        assert not any(a in text for a in addresses)
        assert not any(s in text for s in subjects)
    assert sum(isinstance(e, MailReceived) for e in accepted) == 40
    # Threads survive pseudonymisation: the same 24 (ids hashed alike).
    assert len({e.data.thread_id for e in accepted}) == 24


# -- (2) the same corpus as an mbox and as a Maildir ------------------------------------------------


def sorted_events(records: list[Record]) -> list[dict[str, Any]]:
    return sorted((e for e in events(records)), key=lambda e: e["id"])


def test_mbox_and_maildir_give_the_same_events(corpus: Path, tmp_path: Path) -> None:
    files = sorted((corpus / "messages").iterdir())
    box = mailbox.mbox(tmp_path / "archive.mbox")
    md = mailbox.Maildir(tmp_path / "Maildir")
    sent = md.add_folder("Sent")  # Maildir++: .Sent/{cur,new,tmp}; replies are usually there
    for p in files:
        data = p.read_bytes()
        box.add(data)
        from_carl = CARL in str(BytesHeaderParser().parsebytes(data)["From"])
        (sent if from_carl else md).add(data)
    box.close()  # close, not only flush: an mbox holds its file open until closed
    md.close()
    as_files = read(corpus / "messages", own=(CARL,))
    as_mbox = read(tmp_path / "archive.mbox", own=(CARL,))
    as_maildir = read(tmp_path / "Maildir", own=(CARL,))
    assert [r.origin for r in as_mbox] == [f"mbox:{n}" for n in range(1, 54)]
    assert all(r.origin.split("/")[-2] in ("cur", "new") for r in as_maildir)
    assert sum(r.origin.startswith(".Sent/") for r in as_maildir) == 12  # Carl's 12 messages
    (tmp_path / "Maildir" / "tmp" / "123.part").write_bytes(files[0].read_bytes())  # a delivery under way
    # The parent directory: the Maildir found below it, the mbox (not *.eml) not read.
    as_parent = read(tmp_path, own=(CARL,))
    assert sorted(r.origin for r in as_parent) == sorted(f"Maildir/{r.origin}" for r in as_maildir)
    for records in (as_mbox, as_maildir, as_parent):
        assert len(records) == 53
        assert [r.ignored for r in records if not r.events] == [DUPLICATE]
        assert sorted_events(records) == sorted_events(as_files)


# -- (3) Outlook's Thread-Index ----------------------------------------------------------------------


def outlook(message_id: str, thread_index: bytes, subject: str, extra: str = "") -> bytes:
    return (
        f"From: Kund <kund{message_id}@example.se>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 2 Mar 2026 10:0{message_id}:00 +0100\r\nMessage-ID: <{message_id}@outlook.example>\r\n"
        f"Thread-Index: {base64.b64encode(thread_index).decode()}\r\nThread-Topic: x\r\n{extra}\r\n"
    ).encode()


def test_thread_index_joins_messages_without_references(tmp_path: Path) -> None:
    root = bytes(range(22))  # 6 bytes FILETIME + 16 bytes conversation GUID
    other = bytes(range(1, 23))
    (tmp_path / "1.eml").write_bytes(outlook("1", root, "Faktura 4711"))
    (tmp_path / "2.eml").write_bytes(outlook("2", root + b"\x00\x01\x02\x03\x04", "Ny fråga"))  # a child: +5 bytes
    (tmp_path / "3.eml").write_bytes(outlook("3", other, "Faktura 4711"))  # the same subject, another root
    # With References the headers decide: 4 shares the root but answers a message of its own thread.
    (tmp_path / "4.eml").write_bytes(outlook("4", root, "Re: x", "References: <elsewhere@example>\r\n"))
    (tmp_path / "5.eml").write_bytes(outlook("5", b"too short", "x"))  # not a Thread-Index: no link
    thread = {r.origin: r.events[0]["data"]["thread_id"] for r in read(tmp_path)}
    # 1 is the earlier of the pair (10:01 before 10:02): its id names the thread.
    assert thread == {
        "1.eml": "<1@outlook.example>",
        "2.eml": "<1@outlook.example>",
        "3.eml": "<3@outlook.example>",
        "4.eml": "<elsewhere@example>",
        "5.eml": "<5@outlook.example>",
    }


# -- (4) edge cases ----------------------------------------------------------------------------------


def message(headers: str, body: str = "Hej!\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


def test_dates_in_three_offsets_and_a_missing_or_zoneless_date(tmp_path: Path) -> None:
    for name, date in [("utc", "+0000"), ("pst", "-0800"), ("ist", "+0530"), ("unknown", "-0000")]:
        (tmp_path / f"{name}.eml").write_bytes(
            message(f"From: a@example.se\nMessage-ID: <{name}@x>\nDate: Mon, 2 Mar 2026 10:00:00 {date}")
        )
    (tmp_path / "nodate.eml").write_bytes(message("From: a@example.se\nMessage-ID: <nodate@x>\nSubject: s"))
    received = "Received: from mx by mail.example.se; Mon, 2 Mar 2026 10:05:00 +0100"
    (tmp_path / "zoneless.eml").write_bytes(
        message(f"{received}\nFrom: a@example.se\nMessage-ID: <zoneless@x>\nDate: Mon, 2 Mar 2026 10:00:00")
    )
    recs = by_origin(read(tmp_path))
    time = {o: r.events[0]["time"] for o, r in recs.items() if r.events}
    assert time == {
        "utc.eml": "2026-03-02T10:00:00Z",
        "pst.eml": "2026-03-02T18:00:00Z",  # 10:00 + 8 h
        "ist.eml": "2026-03-02T04:30:00Z",  # 10:00 - 5 h 30 min
        "unknown.eml": "2026-03-02T10:00:00Z",  # -0000: UTC, the sender's zone unknown (RFC 5322)
        # A Date without a zone is the sender's unknown local time: the delivery hop's date instead.
        "zoneless.eml": "2026-03-02T09:05:00Z",
    }
    assert recs["nodate.eml"].rejected == NO_DATE
    assert "Message-ID: <nodate@x>" in recs["nodate.eml"].text  # the header as read, for the rejects file
    assert "Hej" not in recs["nodate.eml"].text  # never the body


def test_a_date_before_the_range_falls_back_to_the_delivery_date(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(
        message(
            "Received: from mx; Mon, 2 Mar 2026 10:05:00 +0100\nFrom: a@example.se\nMessage-ID: <a@x>\n"
            "Date: Thu, 1 Jan 1970 00:00:00 +0000"  # a client with its clock at zero
        )
    )
    (tmp_path / "b.eml").write_bytes(
        message("From: a@example.se\nMessage-ID: <b@x>\nDate: Thu, 1 Jan 1970 00:00:00 +0000")
    )
    recs = by_origin(read(tmp_path))
    assert recs["a.eml"].events[0]["time"] == "2026-03-02T09:05:00Z"
    assert recs["b.eml"].events[0]["time"] == "1970-01-01T00:00:00Z"  # all there is: the boundary rejects it


def test_unreadable_files_are_rejected_records(tmp_path: Path) -> None:
    (tmp_path / "ok.eml").write_bytes(
        message("From: a@example.se\nMessage-ID: <ok@x>\nDate: Mon, 2 Mar 2026 10:00:00 +0100")
    )
    (tmp_path / "gone.eml").symlink_to(tmp_path / "nowhere.eml")  # listed, cannot be opened
    (tmp_path / "notes.txt").write_text("not a message")  # not an .eml: not read
    recs = by_origin(read(tmp_path))
    assert set(recs) == {"ok.eml", "gone.eml"}
    assert recs["gone.eml"].rejected == "file cannot be read (FileNotFoundError)"
    assert len(recs["ok.eml"].events) == 1
    with pytest.raises(FileNotFoundError):
        read_mail_archive(tmp_path / "missing", MAILBOX, ())


def test_auto_replies_bounces_and_bulk_are_ignored_with_their_reason(tmp_path: Path) -> None:
    date = "Date: Mon, 2 Mar 2026 10:00:00 +0100"
    (tmp_path / "ooo.eml").write_bytes(
        message(f"From: a@example.se\nMessage-ID: <1@x>\n{date}\nAuto-Submitted: auto-replied")
    )
    (tmp_path / "dsn.eml").write_bytes(message(f"From: MAILER-DAEMON@example.se\nMessage-ID: <2@x>\n{date}"))
    (tmp_path / "news.eml").write_bytes(message(f"From: news@example.se\nMessage-ID: <3@x>\n{date}\nPrecedence: bulk"))
    recs = by_origin(read(tmp_path))
    assert {o: r.ignored for o, r in recs.items()} == {"ooo.eml": "auto-reply", "dsn.eml": "bounce", "news.eml": "bulk"}


def test_a_missing_message_id_gets_a_stable_stand_in(tmp_path: Path) -> None:
    one = message("From: a@example.se\nSubject: Faktura\nDate: Mon, 2 Mar 2026 10:00:00 +0100")
    two = message("From: b@example.se\nSubject: Faktura\nDate: Mon, 2 Mar 2026 10:00:00 +0100")
    (tmp_path / "one.eml").write_bytes(one)
    (tmp_path / "two.eml").write_bytes(two)
    first = {r.origin: r.events[0]["data"]["message_id"] for r in read(tmp_path)}
    assert first == {r.origin: r.events[0]["data"]["message_id"] for r in read(tmp_path)}  # read again: the same
    assert re.fullmatch(r"<[0-9a-f]{32}@kundreskontra\.archive\.invalid>", first["one.eml"])
    assert first["one.eml"] != first["two.eml"]  # different headers, different ids: not duplicates
    # The same message in an mbox (a From_ line, \n line ends) keeps its stand-in.
    box = mailbox.mbox(tmp_path / "box")
    box.add(one)
    box.close()
    (record,) = read(tmp_path / "box")
    assert record.events[0]["data"]["message_id"] == first["one.eml"]


def test_non_utf8_headers_are_decoded_or_replaced_and_encode(tmp_path: Path) -> None:
    raw = (
        b"From: =?ISO-8859-1?Q?J=F6rgen?= <j@example.se>\r\nSubject: Fr\xe5ga om faktura \xff\r\n"
        b"Message-ID: <latin1@x>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nbody \xe5\r\n"
    )
    (tmp_path / "l1.eml").write_bytes(raw)
    (record,) = read(tmp_path)
    (event,) = record.events
    assert event["data"]["sender"] == "j@example.se"
    assert event["data"]["subject"].startswith("Fr") and "faktura" in event["data"]["subject"]
    msgspec.json.encode(event)  # no lone surrogate left
    agreements = load_agreements(None)
    assert isinstance(
        Boundary(agreements, Pseudonymiser(b"k" * 32, agreements)).accept(msgspec.json.encode(event)), Event
    )


def test_own_aliases_are_replies_and_a_bare_reply_joins_by_subject(tmp_path: Path) -> None:
    own = ("kundreskontra@kommun.se", "kund@kommun.se")
    (tmp_path / "1.eml").write_bytes(
        message(
            "From: c@example.se\nSubject: Avbetalningsplan\nMessage-ID: <q@x>\nDate: Mon, 2 Mar 2026 09:00:00 +0100"
        )
    )
    # A reply from an alias (any case) with no References, In-Reply-To or Thread-Index (a web form):
    # it joins the latest received message with the same subject, "SV:" and case aside.
    (tmp_path / "2.eml").write_bytes(
        message(
            "From: Kund@Kommun.SE\nSubject: SV: avbetalningsplan\nMessage-ID: <r@x>\nDate: Mon, 2 Mar 2026 11:00:00 +0100"
        )
    )
    # A reply to nothing received before it (the mailbox writing first): a thread of its own.
    (tmp_path / "3.eml").write_bytes(
        message(
            "From: kundreskontra@kommun.se\nSubject: Påminnelse\nMessage-ID: <s@x>\nDate: Mon, 2 Mar 2026 08:00:00 +0100"
        )
    )
    recs = {r.origin: r.events[0] for r in read(tmp_path, own=own)}
    assert [recs[o]["type"] for o in ("1.eml", "2.eml", "3.eml")] == ["mail.received", "mail.replied", "mail.replied"]
    assert recs["2.eml"]["data"]["thread_id"] == "<q@x>"
    assert "in_reply_to" not in recs["2.eml"]["data"]
    assert recs["3.eml"]["data"]["thread_id"] == "<s@x>"


def test_single_files_mbox_from_lines_and_an_eml_with_a_from_line(tmp_path: Path) -> None:
    eml = tmp_path / "saved.eml"  # some tools save the mbox From_ line too: still one message
    eml.write_bytes(
        b"From someone@example.se Mon Mar  2 09:00:00 2026\n" + message("From: a@example.se\nMessage-ID: <e@x>")
    )
    (record,) = read(eml)
    assert record.origin == "saved.eml"
    assert record.events[0]["time"] == "2026-03-02T09:00:00Z"  # no Date: the From_ line (UTC)
    box = tmp_path / "export"  # no suffix: an mbox by its first line
    box.write_bytes(
        b"From x Mon Mar  2 09:00:00 2026\nFrom: a@example.se\nMessage-ID: <m1@x>\n\n>From the body\n\n"
        b"From x Mon Mar  2 10:00:00 2026\nFrom: b@example.se\nMessage-ID: <m2@x>\nIn-Reply-To: <m1@x>\n\nbody\n"
    )
    recs = read(box)
    assert [(r.origin, r.events[0]["time"], r.events[0]["data"]["thread_id"]) for r in recs] == [
        ("mbox:1", "2026-03-02T09:00:00Z", "<m1@x>"),
        ("mbox:2", "2026-03-02T10:00:00Z", "<m1@x>"),
    ]


# -- (5) malformed input never raises -------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_any_bytes_as_an_eml_give_exactly_one_record(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "x.eml"
    p.write_bytes(data)
    (record,) = read(p)
    assert record.origin == "x.eml"
    assert sum((bool(record.events), record.ignored is not None, record.rejected is not None)) == 1
    for e in record.events:
        msgspec.json.encode(e)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(st.binary(max_size=80), st.sampled_from([b"From x", b"", b"Date: x", b"Message-ID: <a@b>"]))
    )
)
def test_any_mbox_gives_one_record_per_from_line(tmp_path: Path, lines: list[bytes]) -> None:
    data = b"From first\n" + b"\n".join(line.replace(b"\n", b" ") for line in lines)
    p = tmp_path / "box"
    p.write_bytes(data)
    records = read(p)
    assert len(records) == sum(line.startswith(b"From ") for line in data.split(b"\n"))


# -- (6) several PATHs: one archive --------------------------------------------------------------------

OWN = ("kundreskontra@kommun.se",)


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for m in messages:
        box.add(m)
    box.close()
    return path


def test_an_inbox_and_a_sent_mbox_are_threaded_as_one_archive(tmp_path: Path) -> None:
    inbox = [
        message(
            "From: c@example.org\nSubject: Faktura 4711\nMessage-ID: <m1@example.org>\nDate: Mon, 2 Mar 2026 09:00:00 +0100"
        ),
        message(
            "From: d@example.org\nSubject: Bygglov\nMessage-ID: <m2@example.org>\nDate: Mon, 2 Mar 2026 09:30:00 +0100"
        ),
    ]
    sent = [
        # No References, In-Reply-To or Thread-Index: only the subject ties it to <m1@example.org>.
        message(
            "From: kundreskontra@kommun.se\nSubject: SV: Faktura 4711\nMessage-ID: <r1@kommun.se>\n"
            "Date: Mon, 2 Mar 2026 11:00:00 +0100"
        ),
        message(
            "From: kundreskontra@kommun.se\nSubject: SV: Bygglov\nMessage-ID: <r2@kommun.se>\n"
            "In-Reply-To: <m2@example.org>\nDate: Mon, 2 Mar 2026 11:30:00 +0100"
        ),
    ]
    (tmp_path / "split").mkdir()
    inbox_box = write_mbox(tmp_path / "split" / "inbox.mbox", inbox)
    sent_box = write_mbox(tmp_path / "split" / "sent.mbox", sent)
    whole = write_mbox(tmp_path / "whole.mbox", inbox + sent)
    together = read([inbox_box, sent_box], own=OWN)
    # Each origin names its PATH; the records come in reading order: the inbox, then the sent mbox.
    assert [r.origin for r in together] == [
        "inbox.mbox:mbox:1",
        "inbox.mbox:mbox:2",
        "sent.mbox:mbox:1",
        "sent.mbox:mbox:2",
    ]
    # r1 (11:00) joins the latest received "Faktura 4711" before it, m1 (09:00); r2 follows its In-Reply-To.
    thread = {e["data"]["message_id"]: e["data"]["thread_id"] for e in events(together)}
    assert thread == {
        "<m1@example.org>": "<m1@example.org>",
        "<m2@example.org>": "<m2@example.org>",
        "<r1@kommun.se>": "<m1@example.org>",
        "<r2@kommun.se>": "<m2@example.org>",
    }
    # Exactly the events of the same four messages in one mbox.
    assert events(together) == events(read(whole, own=OWN))
    # Read on its own, sent.mbox has no received message to match: r1 is a thread of its own (the bug).
    alone = {e["data"]["message_id"]: e["data"]["thread_id"] for e in events(read(sent_box, own=OWN))}
    assert alone["<r1@kommun.se>"] == "<r1@kommun.se>"
    # A list of one PATH is that PATH: origins unprefixed, as before.
    assert [r.origin for r in read([inbox_box], own=OWN)] == ["mbox:1", "mbox:2"]


def test_a_copy_in_two_paths_is_one_event_the_first_in_reading_order(tmp_path: Path) -> None:
    copy = message(
        "From: c@example.org\nSubject: Faktura\nMessage-ID: <k@example.org>\nDate: Mon, 2 Mar 2026 09:00:00 +0100"
    )
    other = message(
        "From: d@example.org\nSubject: Annat\nMessage-ID: <o@example.org>\nDate: Mon, 2 Mar 2026 10:00:00 +0100"
    )
    a, b = tmp_path / "a" / "INBOX", tmp_path / "b" / "INBOX"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "1.eml").write_bytes(copy)
    (b / "1.eml").write_bytes(copy)  # the same message, the same relative name, another PATH
    (b / "2.eml").write_bytes(other)
    (tmp_path / "saved.eml").write_bytes(copy)  # and once more as a single file
    records = read([a, b, tmp_path / "saved.eml"])
    # Both directories are named INBOX: their origins name them by the PATH as given instead.
    assert [(r.origin, len(r.events), r.ignored) for r in records] == [
        (f"{a.as_posix()}/1.eml", 1, None),  # read first: the one that counts
        (f"{b.as_posix()}/1.eml", 0, DUPLICATE),
        (f"{b.as_posix()}/2.eml", 1, None),
        ("saved.eml", 0, DUPLICATE),  # a message file PATH: its name
    ]
    assert [e["data"]["message_id"] for e in events(records)] == ["<k@example.org>", "<o@example.org>"]
    # Reversed, b's copy is read first and counts; the events are the same.
    reversed_records = read([b, a])
    assert [(r.origin, r.ignored) for r in reversed_records] == [
        (f"{b.as_posix()}/1.eml", None),
        (f"{b.as_posix()}/2.eml", None),
        (f"{a.as_posix()}/1.eml", DUPLICATE),
    ]
    assert sorted_events(reversed_records) == sorted_events(records)
    # A PATH that does not exist: an error at the call, naming it, before anything is read.
    with pytest.raises(FileNotFoundError) as missing:
        read_mail_archive([a, tmp_path / "missing"], MAILBOX, ())
    assert missing.value.filename == str(tmp_path / "missing")


def test_the_corpus_split_in_two_paths_gives_the_same_threads(corpus: Path, tmp_path: Path) -> None:
    files = sorted((corpus / "messages").iterdir())
    first, rest = tmp_path / "part1", tmp_path / "part2"
    for part, names in ((first, files[:26]), (rest, files[26:])):
        part.mkdir()
        for f in names:
            shutil.copy(f, part / f.name)
    # The split (01.eml … cur__39.eml | cur__40.eml … new__04.eml) cuts across the corpus: the
    # duplicate pair bar__18.eml / cur__51.eml falls one in each part, and so does the 7-message
    # "Working with Maildir storage?" thread (bar__new__22.eml in part1, its root foo__new__03.eml in part2).
    assert (first / "bar__18.eml").exists() and (rest / "cur__51.eml").exists()
    whole = read(corpus / "messages", own=(CARL,))
    split = read([first, rest], own=(CARL,))
    assert len(split) == 53  # one Record per file
    # bar__18.eml is read first (part1), so its copy in part2 is the duplicate, as in the whole corpus.
    assert [(r.origin, r.ignored) for r in split if not r.events] == [("part2/cur__51.eml", DUPLICATE)]
    assert sorted(r.origin for r in split) == sorted(
        f"part1/{r.origin}" if r.origin < "cur__40.eml" else f"part2/{r.origin}" for r in whole
    )
    # notmuch's 24 threads of 52 messages (SOURCE.md), with each event exactly as from the whole corpus.
    found = threads(split)
    assert len(found) == 24 and sum(len(t) for t in found.values()) == 52
    assert sorted_events(split) == sorted_events(whole)
    maildir = found["<20091117190054.GU3165@dottiness.seas.harvard.edu>"]
    assert len(maildir) == 7
    origin_of = {e["id"]: r.origin for r in split for e in r.events}
    assert {origin_of[e["id"]].split("/")[0] for e in maildir} == {"part1", "part2"}
