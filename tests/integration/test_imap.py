"""The IMAP function-mailbox poller against a real Dovecot: events, checkpoints, the report.

No IMAP mocks: messages are APPENDed with chosen INTERNALDATEs (so times are controlled) and
moved with UID MOVE, as a mail client does. The poller's clock is injected only where a rule
uses the time of a poll (a message moved to the done folder).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from availability.settings import Settings
from availability.wiring import Wiring
from dashboards.report import monthly_report
from ingest.boundary import Boundary, Rejection
from ingest.imap.checkpoint import Checkpoint
from ingest.imap.errors import ImapError, ImapUnavailable
from ingest.imap.headers import normal_subject
from ingest.imap.poller import ImapPoller, imap_utf7
from ingest.imap.source import RunStats, run
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements, load_agreements
from schemas.events import Event, MailClosed, MailEvent, MailReceived, MailReplied, encode
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import Warehouse
from tests.conftest import shared_examples
from tests.integration.dovecot_fixture import PASSWORD, Dovecot, deliver, dovecot, move

__all__ = ["dovecot"]  # the session fixture, used by name below

pytestmark = pytest.mark.integration

CEST = timezone(timedelta(hours=2))
KEY = "imap-test-key-of-at-least-32-bytes!!"  # Settings refuse shorter keys
MAILBOX = "kundreskontra"
SOURCE = f"imap/{MAILBOX}"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in April 2026 (CEST, +02:00)."""
    return datetime(2026, 4, day, hour, minute, tzinfo=CEST)


def encoded(text: str) -> str:
    """A subject as mail clients send non-ASCII text (RFC 2047)."""
    return Header(text, "utf-8").encode()


def poller(
    server: Dovecot, user: str, checkpoint: Path, now: datetime, sent: str = "Sent", done: str = "Done"
) -> ImapPoller:
    """A poller as after a (re)start: a new object reading the checkpoint file; its clock is `now`.
    It talks to Dovecot as to a production server: STARTTLS (the default), the certificate verified."""
    return ImapPoller(
        server.host,
        server.port,
        user,
        PASSWORD,
        MAILBOX,
        sent=sent,
        done=done,
        tls_ca=server.ca,
        checkpoint=Checkpoint(checkpoint),
        clock=lambda: now,
    )


def summary(events: list[MailEvent]) -> list[tuple[str, datetime, str, str]]:
    """(type, time, thread, message id or reason) per event: what a case is made of."""
    out: list[tuple[str, datetime, str, str]] = []
    for ev in events:
        if isinstance(ev, MailClosed):
            out.append(("closed", ev.time, ev.data.thread_id, ev.data.reason))
        else:
            kind = "received" if isinstance(ev, MailReceived) else "replied"
            out.append((kind, ev.time, ev.data.thread_id, ev.data.message_id))
    return out


# -- the scenario -----------------------------------------------------------------------------
# Kundreskontra's mailbox in April 2026, with the spec's calendar (Mon-Thu 08:00-16:30,
# Fri 08:00-16:00, Valborg 30 April 08:00-13:00). Message ids name the case they belong to.

A1 = {
    "Message-ID": "<a1@kund1.example>",
    "From": "Kund Ett <kund1@example.se>",
    "Subject": encoded("Fråga om faktura 4711"),
}
A2 = {  # the citizen adds something before the reply: same thread, the case clock keeps running
    "Message-ID": "<a2@kund1.example>",
    "From": "kund1@example.se",
    "Subject": encoded("Re: Fråga om faktura 4711"),
    "In-Reply-To": "<a1@kund1.example>",
    "References": "<a1@kund1.example>",
}
RA = {  # the reply, threaded by its headers
    "Message-ID": "<ra@kommun.example>",
    "From": "kundreskontra@kommun.example",
    "Subject": encoded("SV: Fråga om faktura 4711"),
    "In-Reply-To": "<a2@kund1.example>",
    "References": "<a1@kund1.example> <a2@kund1.example>",
}
B1 = {"Message-ID": "<b1@kund2.example>", "From": "kund2@example.net", "Subject": encoded("Avbetalningsplan önskas")}
RB = {  # a reply without In-Reply-To/References: threaded by its subject (the fallback)
    "Message-ID": "<rb@kommun.example>",
    "From": "kundreskontra@kommun.example",
    "Subject": encoded("SV: Avbetalningsplan önskas"),
}
C1 = {"Message-ID": "<c1@kund3.example>", "From": "kund3@example.org", "Subject": encoded("Adressändring")}
E_AUTO = {  # an out-of-office answer to our reply: not a citizen writing
    "Message-ID": "<oof@kund1.example>",
    "From": "kund1@example.se",
    "Subject": "Automatiskt svar: SV: Fraga om faktura 4711",
    "Auto-Submitted": "auto-replied",
    "In-Reply-To": "<ra@kommun.example>",
}
F_BOUNCE = {  # a delivery status notification
    "Message-ID": "<dsn1@mx.kommun.example>",
    "From": "Mail Delivery System <MAILER-DAEMON@mx.kommun.example>",
    "Subject": "Undelivered Mail Returned to Sender",
    "Content-Type": 'multipart/report; report-type=delivery-status; boundary="b"',
}
H_BULK = {
    "Message-ID": "<nl1@news.example>",
    "From": "news@news.example",
    "Subject": "Nyhetsbrev",
    "Precedence": "bulk",
}
G1 = {"Message-ID": "<g1@kund5.example>", "From": "kund5@example.se", "Subject": encoded("Faktura med fel belopp")}
RG = {
    "Message-ID": "<rg@kommun.example>",
    "From": "kundreskontra@kommun.example",
    "Subject": encoded("SV: Faktura med fel belopp"),
    "References": "<g1@kund5.example>",
}
D1 = {"Message-ID": "<d1@kund4.example>", "From": "kund4@example.se", "Subject": encoded("Makulering av faktura")}

ADDRESSES = ("kund1@example.se", "kund2@example.net", "kund3@example.org", "kund4@example.se", "kund5@example.se")
SUBJECTS = ("Fråga om faktura", "Avbetalningsplan", "Adressändring", "Faktura med fel belopp", "Makulering")


@dataclass
class Scenario:
    first: list[MailEvent]  # first poll: the inbox and sent folder so far
    ignored: dict[str, int]
    seen_flags: list[bytes]  # the inbox messages' flags after the poll
    after_move: list[MailEvent]  # C moved to Done
    after_restart: list[MailEvent]  # a new poller, same checkpoint
    uncommitted: list[MailEvent]  # new mail, read but never committed (a crash before publishing)
    reread: list[MailEvent]  # the next poller reads it again
    after_commit: list[MailEvent]


@pytest.fixture(scope="module")
def scenario(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    user = dovecot.new_user()
    checkpoint = tmp_path_factory.mktemp("imap") / "checkpoint.json"
    conn = dovecot.connect(user)
    try:
        for headers, arrived in ((A1, at(17, 15, 30)), (A2, at(17, 15, 45)), (E_AUTO, at(20, 9, 5)),
                                 (B1, at(21, 10)), (F_BOUNCE, at(21, 10, 30)), (H_BULK, at(22, 7)), (C1, at(22, 11))):  # fmt: skip
            deliver(conn, "INBOX", arrived, headers)
        deliver(conn, "Sent", at(20, 9), RA)
        deliver(conn, "Sent", at(21, 13), RB)

        first_poller = poller(dovecot, user, checkpoint, now=at(22, 12))
        first = first_poller.poll()
        ignored = dict(first_poller.ignored)
        first_poller.commit()
        conn.select("INBOX", readonly=True)
        _, flags = conn.fetch("1:*", "(FLAGS)")
        conn.unselect()

        move(conn, "INBOX", "<c1@kund3.example>", "Done")  # handled without a reply
        moved_poller = poller(dovecot, user, checkpoint, now=at(22, 15))
        after_move = moved_poller.poll()
        moved_poller.commit()

        after_restart = poller(dovecot, user, checkpoint, now=at(22, 15, 5)).poll()

        deliver(conn, "INBOX", at(23, 9), G1)
        deliver(conn, "Sent", at(24, 10), RG)
        deliver(conn, "INBOX", at(27, 14), D1)
        uncommitted = poller(dovecot, user, checkpoint, now=at(27, 15)).poll()  # and then the process dies
        again = poller(dovecot, user, checkpoint, now=at(27, 15, 30))
        reread = again.poll()
        again.commit()
        after_commit = poller(dovecot, user, checkpoint, now=at(27, 16)).poll()
    finally:
        conn.logout()
    return Scenario(
        first,
        ignored,
        [f for f in flags if isinstance(f, bytes)],
        after_move,
        after_restart,
        uncommitted,
        reread,
        after_commit,
    )


def test_inbox_and_sent_become_received_and_replied_events(scenario: Scenario) -> None:
    a, b, c = "<a1@kund1.example>", "<b1@kund2.example>", "<c1@kund3.example>"
    assert summary(scenario.first) == [
        ("received", at(17, 15, 30), a, a),
        ("received", at(17, 15, 45), a, "<a2@kund1.example>"),  # References root: thread of A1
        ("replied", at(20, 9), a, "<ra@kommun.example>"),
        ("received", at(21, 10), b, b),
        ("replied", at(21, 13), b, "<rb@kommun.example>"),  # no headers: matched by subject to B1
        ("received", at(22, 11), c, c),
    ]
    # The auto-reply, the bounce and the newsletter are counted, not emitted.
    assert scenario.ignored == {"auto-reply": 1, "bounce": 1, "bulk": 1}

    first = scenario.first[0]
    assert isinstance(first, MailReceived)
    assert first.source == SOURCE and first.id.startswith(f"imap:{MAILBOX}:INBOX:") and first.id.endswith(":1")
    assert first.subject == f"{MAILBOX}/{a}"
    # Raw, as a source emits them: the boundary pseudonymises later. RFC 2047 is decoded.
    assert (first.data.sender, first.data.subject) == ("kund1@example.se", "Fråga om faktura 4711")
    reply = scenario.first[2]
    assert isinstance(reply, MailReplied) and reply.data.in_reply_to == "<a2@kund1.example>"
    assert reply.id.startswith(f"imap:{MAILBOX}:Sent:")
    assert all(ev.time.utcoffset() is not None for ev in scenario.first)
    assert len({ev.id for ev in scenario.first}) == len(scenario.first)

    # Headers were fetched with PEEK: staff still see every message as unread.
    assert scenario.seen_flags and not any(b"\\Seen" in f for f in scenario.seen_flags)


def test_a_message_moved_to_done_closes_its_case(scenario: Scenario) -> None:
    # Dovecot keeps the arrival INTERNALDATE (11:00) on a move, so the close is dated no
    # earlier than the done folder's previous poll (12:00): the move happened after it.
    assert summary(scenario.after_move) == [("closed", at(22, 12), "<c1@kund3.example>", "handled")]
    assert scenario.after_move[0].id.startswith(f"imap:{MAILBOX}:Done:")


def test_a_restart_repeats_nothing_and_a_crash_loses_nothing(scenario: Scenario) -> None:
    assert scenario.after_restart == []
    g = "<g1@kund5.example>"
    assert summary(scenario.uncommitted) == [
        ("received", at(23, 9), g, g),
        ("replied", at(24, 10), g, "<rg@kommun.example>"),
        ("received", at(27, 14), "<d1@kund4.example>", "<d1@kund4.example>"),
    ]
    assert scenario.reread == scenario.uncommitted  # same events, same ids: de-duplicated downstream
    assert scenario.after_commit == []


def test_the_report_counts_the_mailbox_as_the_spec_defines(scenario: Scenario, tmp_path: Path) -> None:
    agreements = load_agreements(shared_examples() / "agreements.yaml")
    boundary = Boundary(agreements, Pseudonymiser(b"test-key", agreements))
    batches = [scenario.first, scenario.after_move, scenario.uncommitted, scenario.reread]
    with Warehouse.open(str(tmp_path / "wh"), database=f"imap_{uuid.uuid4().hex[:8]}") as wh:
        deriver = Deriver(wh, agreements)
        for batch in batches:  # the re-read batch is a duplicate, as after a crash
            accepted = [boundary.accept(encode(ev)) for ev in batch]
            assert all(not isinstance(ev, Rejection) for ev in accepted), accepted
            deriver.apply([ev for ev in accepted if not isinstance(ev, Rejection)])
        report = monthly_report(wh, agreements, "2026-04", now=datetime(2026, 5, 15, tzinfo=CEST))
        stored = repr([wh.query(f"SELECT * FROM {t}") for t in ("events", "mail_cases")])

    # Business time with the example calendar; evaluation at the end of April (00:00 1 May).
    # A  Fri 17 15:30 -> reply Mon 20 09:00: 0.5 h + 1 h = 1.5 h = 5400 s <= 8 h (A2 at 15:45
    #    is the same thread while the case is open: no new case, the clock keeps running).
    # B  "Avbetalningsplan önskas" is priority (avbetalning): Tue 21 10:00 -> 13:00 = 3 h
    #    = 10800 s <= 4 h.
    # C  Wed 22 11:00, moved to Done (closed 12:00): closed without reply, no lead time.
    # G  Thu 23 09:00 -> reply Fri 24 10:00: 7.5 h + 2 h = 9.5 h = 34200 s > 8 h: breached.
    # D  "Makulering av faktura" is priority (makuler), Mon 27 14:00, still open: business age
    #    2.5 h (Mon) + 8.5 h (Tue) + 8.5 h (Wed) + 5 h (Thu 30, Valborg 08-13) = 24.5 h > 4 h: breached.
    # The auto-reply, the bounce and the newsletter opened nothing.
    assert report["mailboxes"][MAILBOX] == {
        "received": 5,  # A, B, C, G, D
        "answered": 3,  # A, B, G
        "closed_without_reply": 1,  # C
        "open_at_end": 1,  # D
        "within_target": 2,  # A, B
        "breached": 2,  # G (answered late), D (open past its target)
        "median_lead_seconds": 10800.0,  # of 5400, 10800, 34200
        # KKiK, by the end of the first working day after the day opened: A (Fri -> Mon 20, by
        # Tue 00:00), B (Tue -> the same day), G (Thu -> Fri 24 10:00, by Sat 00:00): all three.
        "answered_within_1_working_day": 3,
        "priority_received": 2,  # B, D
        "priority_within_target": 1,  # B
    }
    assert MAILBOX in stored and "sender_ref" in stored  # there, pseudonymised
    for raw in ADDRESSES + SUBJECTS:
        assert raw not in stored


def test_a_new_uidvalidity_reads_the_folder_again(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    try:
        deliver(conn, "Sent", at(20, 9), RA)
        first = poller(dovecot, user, tmp_path / "cp.json", now=at(20, 10))
        before = first.poll()
        first.commit()
        # The server lost its UID state (here: the folder is recreated); UIDs start over.
        assert conn.delete("Sent")[0] == "OK" and conn.create("Sent")[0] == "OK"
        deliver(conn, "Sent", at(20, 9), RA)
        deliver(conn, "Sent", at(21, 13), RB)
    finally:
        conn.logout()
    after = poller(dovecot, user, tmp_path / "cp.json", now=at(21, 14)).poll()
    assert [ev.data.message_id for ev in after if isinstance(ev, MailReplied)] == [
        "<ra@kommun.example>",
        "<rb@kommun.example>",
    ]
    old_validity, new_validity = before[0].id.split(":")[3], after[0].id.split(":")[3]
    assert old_validity != new_validity
    assert [ev.id for ev in after] == [f"imap:{MAILBOX}:Sent:{new_validity}:{uid}" for uid in (1, 2)]


def test_folder_names_with_spaces_and_non_ascii(dovecot: Dovecot, tmp_path: Path) -> None:
    assert imap_utf7("Åtgärdat") == "&AMU-tg&AOQ-rdat" and imap_utf7("R&D") == "R&-D"
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    try:
        assert conn.create('"Skickade objekt"')[0] == "OK" and conn.create('"&AMU-tg&AOQ-rdat"')[0] == "OK"
        deliver(conn, "INBOX", at(21, 10), B1)
        deliver(conn, '"Skickade objekt"', at(21, 13), {**RB, "In-Reply-To": "<b1@kund2.example>"})
        # Already in the done folder at the first poll: dated by its INTERNALDATE.
        deliver(conn, '"&AMU-tg&AOQ-rdat"', at(22, 8), C1)
    finally:
        conn.logout()
    events = poller(dovecot, user, tmp_path / "cp.json", now=at(22, 9), sent="Skickade objekt", done="Åtgärdat").poll()
    assert [(type(ev).__name__, ev.time, ev.id.split(":")[2]) for ev in events] == [
        ("MailReceived", at(21, 10), "INBOX"),
        ("MailReplied", at(21, 13), "Skickade objekt"),
        ("MailClosed", at(22, 8), "Åtgärdat"),
    ]


def test_odd_but_real_headers(dovecot: Dovecot, tmp_path: Path) -> None:
    """No Message-ID, raw UTF-8 in a header, and the other auto-reply and bounce markers."""
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    try:
        no_id = {  # no Message-ID; a comma in the encoded name; the subject as raw 8-bit UTF-8
            "From": f"{encoded('Svensson, Åsa')} <kund6@example.se>",
            "Subject": "Anstånd med betalning",
        }
        deliver(conn, "INBOX", at(21, 10), no_id)
        deliver(conn, "INBOX", at(21, 10, 1), {"Message-ID": "<x1@x>", "From": "x@example.se", "X-Autoreply": "yes"})
        deliver(conn, "INBOX", at(21, 10, 2), {"Message-ID": "<x2@x>", "From": "x@example.se", "Return-Path": "<>"})
        deliver(conn, "INBOX", at(21, 10, 3), {"Message-ID": "<x3@x>", "From": "postmaster@example.se"})
        deliver(conn, "INBOX", at(21, 10, 4), {"Message-ID": "<x4@x>", "From": "x@example.se", "Auto-Submitted": "no"})
        first = poller(dovecot, user, tmp_path / "cp.json", now=at(21, 11))
        received = first.poll()
        first.commit()
        move(conn, "INBOX", "Anst", "Done", header="Subject")
    finally:
        conn.logout()
    closed = poller(dovecot, user, tmp_path / "cp.json", now=at(21, 12)).poll()
    assert first.ignored == {"auto-reply": 1, "bounce": 2}
    stand_in = received[0]
    assert isinstance(stand_in, MailReceived) and stand_in.data.subject == "Anstånd med betalning"
    assert stand_in.data.sender == "kund6@example.se"
    assert stand_in.data.message_id.endswith(f"@{MAILBOX}.imap.invalid>")  # synthesised from the header
    assert stand_in.data.thread_id == stand_in.data.message_id
    assert [ev.data.message_id for ev in received[1:] if isinstance(ev, MailReceived)] == ["<x4@x>"]
    # Moved, it is the same message: the same stand-in id, so the close finds its thread.
    assert [(type(ev), ev.data.thread_id) for ev in closed] == [(MailClosed, stand_in.data.thread_id)]


def test_subjects_are_normalised_for_the_reply_fallback() -> None:
    assert normal_subject("SV: Re: VS:  Avbetalningsplan ÖNSKAS ") == "avbetalningsplan önskas"
    assert normal_subject("Fwd: VB: Re[2]: AW: Faktura") == "faktura"
    assert normal_subject("Svar om faktura") == "svar om faktura"  # only prefixes with a colon


# -- the service loop -------------------------------------------------------------------------


def test_run_publishes_pseudonymised_events_and_stops_on_sigterm(
    dovecot: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agreements = load_agreements(shared_examples() / "agreements.yaml")
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    deliver(conn, "INBOX", at(21, 10), B1)
    deliver(conn, "Sent", at(21, 13), {**RB, "References": "<b1@kund2.example>"})
    conn.logout()
    settings = Settings(imap_password=SecretStr(PASSWORD), pseudonym_key=SecretStr(KEY))
    published: list[list[Event]] = []
    first_published = threading.Event()

    def publish(events: list[Event]) -> None:
        published.append(events)
        if len(published) == 1:
            first_published.set()
        else:  # the mail that arrived while the loop ran: now stop as systemd would
            os.kill(os.getpid(), signal.SIGTERM)

    def more_mail() -> None:
        if first_published.wait(10):
            late = dovecot.connect(user)
            deliver(late, "INBOX", at(27, 14), D1)
            late.logout()

    stop, timed_out = threading.Event(), threading.Event()

    def give_up() -> None:  # never hang the suite
        timed_out.set()
        stop.set()

    helper = threading.Thread(target=more_mail)
    safety = threading.Timer(20, give_up)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    helper.start()
    safety.start()
    caplog.set_level(logging.INFO, logger="ingest.imap.source")
    try:
        stats = run_imap(
            settings, agreements, MAILBOX, dovecot.host, dovecot.port, user, tls_ca=dovecot.ca,
            checkpoint=tmp_path / "cp.json", interval=0.1, publish=publish, stop=stop,
        )  # fmt: skip
    finally:
        safety.cancel()
        helper.join()
    assert not timed_out.is_set(), "SIGTERM did not stop the loop"
    assert isinstance(stats, RunStats) and stats.published == 3 and stats.polls >= 2
    assert signal.getsignal(signal.SIGTERM) == sigterm_before  # the handler is restored

    events = [ev for batch in published for ev in batch]
    assert [type(ev) for ev in events] == [MailReceived, MailReplied, MailReceived]
    received = events[0]
    assert isinstance(received, MailReceived)
    assert received.data.sender is None and received.data.subject is None  # the boundary ran
    assert received.data.sender_ref and received.data.categories == ["priority", "avbetalning"]
    # Message-IDs and thread ids can hold addresses, so the boundary replaces them with keyed
    # hashes (issue #7, item 11): the expected values are the run key's pseudonyms of the raw ids.
    ids = Pseudonymiser(KEY.encode(), agreements).id_ref
    b1, rb, d1 = ids("<b1@kund2.example>"), ids("<rb@kommun.example>"), ids("<d1@kund4.example>")
    mail = [ev for ev in events if isinstance(ev, MailReceived | MailReplied)]
    assert [ev.data.message_id for ev in mail] == [b1, rb, d1]
    assert [ev.data.thread_id for ev in mail] == [b1, b1, d1]

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "1 received" in logged
    for raw in (*ADDRESSES, *SUBJECTS, "Avbetalningsplan"):
        assert raw not in logged

    # --once with nothing new: one poll, nothing published, the checkpoint is respected.
    again = run_imap(settings, agreements, MAILBOX, dovecot.host, dovecot.port, user, tls_ca=dovecot.ca,
                checkpoint=tmp_path / "cp.json", once=True, publish=published.append)  # fmt: skip
    assert (again.polls, again.published, len(published)) == (1, 0, 2)


def run_imap(
    settings: Settings,
    agreements: Agreements,
    mailbox: str,
    host: str,
    port: int,
    user: str,
    *,
    publish: Callable[[list[Event]], object],
    interval: float = 60.0,
    once: bool = False,
    stop: threading.Event | None = None,
    **poller_options: Any,
) -> RunStats:
    """The service loop, wired as `availability ingest imap` wires it."""
    wiring = Wiring(settings)
    poller = wiring.imap_poller(agreements, mailbox, host, port, user, **poller_options)
    return run(poller, wiring.boundary(agreements, live=True), publish, interval=interval, once=once, stop=stop)


def test_run_configuration_errors_are_one_line(dovecot: Dovecot, tmp_path: Path) -> None:
    agreements: Agreements = load_agreements(shared_examples() / "agreements.yaml")
    user = dovecot.new_user()
    args = (MAILBOX, dovecot.host, dovecot.port, user)
    no_password = Settings(imap_password=None)
    with pytest.raises(ImapError, match=r"^no IMAP password: set AVAILABILITY_IMAP_PASSWORD$"):
        run_imap(no_password, agreements, *args, once=True, publish=print, tls_ca=dovecot.ca)
    settings = Settings(imap_password=SecretStr("wrong"))
    with pytest.raises(ImapError, match=f"refused the login of '{user}'$"):
        run_imap(
            settings, agreements, *args, checkpoint=tmp_path / "cp.json", once=True, publish=print, tls_ca=dovecot.ca
        )
    with pytest.raises(ImapError, match="unknown mailbox 'nope'"):
        run_imap(
            settings, agreements, "nope", dovecot.host, dovecot.port, user, once=True, publish=print, tls_ca=dovecot.ca
        )
    settings = Settings(imap_password=SecretStr(PASSWORD))
    with pytest.raises(ImapError, match="folder 'Klart' cannot be opened"):
        run_imap(
            settings,
            agreements,
            *args,
            done="Klart",
            checkpoint=tmp_path / "cp.json",
            once=True,
            publish=print,
            tls_ca=dovecot.ca,
        )
    with pytest.raises(ImapError, match="cannot reach IMAP"):
        run_imap(
            settings,
            agreements,
            MAILBOX,
            "127.0.0.1",
            1,
            user,
            checkpoint=tmp_path / "cp.json",
            once=True,
            publish=print,
            tls_ca=dovecot.ca,
        )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ImapError, match="not an IMAP checkpoint"):
        run_imap(
            settings, agreements, *args, checkpoint=tmp_path / "bad.json", once=True, publish=print, tls_ca=dovecot.ca
        )


# -- TLS (issue #7, item 10) ------------------------------------------------------------------


def _logins(server: Dovecot, user: str) -> list[str]:
    return [line for line in server.log().splitlines() if "Login:" in line and f"user=<{user}>" in line]


def test_implicit_tls_and_starttls_verify_the_certificate(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    deliver(conn, "INBOX", at(21, 10), B1)
    conn.logout()

    def poll(port: int, **tls: object) -> list[MailEvent]:
        return ImapPoller(
            dovecot.host, port, user, PASSWORD, MAILBOX, checkpoint=Checkpoint(tmp_path / f"{port}.json"),
            clock=lambda: at(21, 11), **tls,  # type: ignore[arg-type]
        ).poll()  # fmt: skip

    implicit = poll(dovecot.tls_port, ssl=True, tls_ca=dovecot.ca)
    starttls = poll(dovecot.port, tls_ca=dovecot.ca)
    assert (
        summary(implicit) == summary(starttls) == [("received", at(21, 10), "<b1@kund2.example>", "<b1@kund2.example>")]
    )
    assert len(_logins(dovecot, user)) >= 3  # connect() and the two polls
    assert all("TLS" in line for line in _logins(dovecot, user)), _logins(dovecot, user)

    # The system's CAs do not know the test certificate: refused in one line, never retried,
    # and no login was attempted (Dovecot logs none for this account).
    stranger = dovecot.new_user()
    for port, tls in ((dovecot.tls_port, {"ssl": True}), (dovecot.port, {})):
        with pytest.raises(ImapError, match=r"TLS certificate is not trusted .*--tls-ca") as caught:
            ImapPoller(dovecot.host, port, stranger, PASSWORD, MAILBOX, checkpoint=Checkpoint(tmp_path / "x.json"),
                       **tls).poll()  # type: ignore[arg-type]  # fmt: skip
        assert not isinstance(caught.value, ImapUnavailable) and "\n" not in str(caught.value)
    assert _logins(dovecot, stranger) == []
    with pytest.raises(ImapError, match="--tls-ca"):  # a CA file that does not exist
        ImapPoller(dovecot.host, dovecot.port, stranger, PASSWORD, MAILBOX, tls_ca=tmp_path / "none.pem",
                   checkpoint=Checkpoint(tmp_path / "x.json"))  # fmt: skip


def test_the_explicit_plaintext_flag_still_logs_in_and_warns(
    dovecot: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    deliver(conn, "INBOX", at(21, 10), B1)
    conn.logout()
    with caplog.at_level(logging.WARNING, logger="ingest.imap.source"):
        events = ImapPoller(
            dovecot.host, dovecot.port, user, PASSWORD, MAILBOX, insecure_plaintext=True,
            checkpoint=Checkpoint(tmp_path / "cp.json"), clock=lambda: at(21, 11),
        ).poll()  # fmt: skip
    assert summary(events) == [("received", at(21, 10), "<b1@kund2.example>", "<b1@kund2.example>")]
    assert "--insecure-plaintext" in caplog.text and "clear text" in caplog.text
    assert any("TLS" not in line for line in _logins(dovecot, user))  # this login was in the clear
