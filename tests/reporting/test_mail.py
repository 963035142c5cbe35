"""The monthly mail through a real SMTP server (aiosmtpd on 127.0.0.1, a free port): what arrives
is parsed back and read as a mail client would; every failure is one line naming the relay.
Also the two dates the timer needs: the first working day of a month, and last month."""

from __future__ import annotations

import copy
import io
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.reporting import mail, model
from schemas.agreements import Agreements, parse_agreements
from schemas.errors import AvailabilityError
from tests.conftest import AGREEMENTS, free_port, importorfail, unavailable

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SENDER = "tillganglighet@example.se"
TO = ["chef.ekonomi@example.se", "servicecenter.ekonomi@example.se"]
HTML = "<!doctype html><meta charset=utf-8><title>Tillgänglighet</title><p>Åtgärder för ärenden i kö: åäö ÅÄÖ</p>"
USER, PASSWORD = "rapport", "hemligt-lösen-1234"


# -- a real SMTP server ----------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Sink:
    """Takes what the relay would take; refuses the recipients listed in `refuse`."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # user, password, over TLS
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None  # STARTTLS, TLS
        self.logins.append((login, password, tls))
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


StartServer = Callable[..., tuple[Sink, str]]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """start(**aiosmtpd options) -> (sink, "127.0.0.1:port"); every server stops after the test."""
    importorfail("aiosmtpd", "a dev dependency: pip install -e '.[dev]'")
    from aiosmtpd.controller import Controller

    started: list[Any] = []

    def start(**options: Any) -> tuple[Sink, str]:
        sink = Sink()
        port = options.pop("port", None) or free_port()
        if "tls_context" in options or "ssl_context" in options:
            options.setdefault("authenticator", sink.authenticate)
        controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return sink, f"127.0.0.1:{port}"

    yield start
    for controller in started:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1: the relay's, and the test's private CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl not installed (apt-get install openssl): it makes the test relay's certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "relay.pem", tmp / "relay.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


# -- the mail ----------------------------------------------------------------------------------------


def workbook() -> bytes:
    """A small real workbook (the report's own comes from dashboards/reporting/xlsx.py)."""
    xlsxwriter = importorfail("xlsxwriter", "a dependency: pip install -e .")
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Sammanfattning")
    sheet.write(0, 0, "Tillgänglighet åäö")
    sheet.write(1, 0, 0.847)
    book.close()
    return out.getvalue()


@pytest.fixture(scope="module")
def xlsx() -> bytes:
    return workbook()


@pytest.fixture
def composed(week_report: dict[str, Any], shipped_agreements: Agreements, xlsx: bytes) -> EmailMessage:
    return mail.compose(week_report, shipped_agreements, sender=SENDER, to=TO, xlsx=xlsx, html=HTML)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text part"
    return str(part.get_content()).replace("\r\n", "\n")  # as sent: SMTP lines end in CRLF


def test_the_report_arrives_with_its_text_and_both_attachments(
    smtp_server: StartServer,
    composed: EmailMessage,
    week_report: dict[str, Any],
    shipped_agreements: Agreements,
    xlsx: bytes,
) -> None:
    sink, smarthost = smtp_server()
    mail.send(composed, smarthost, require_tls=False)

    [got] = sink.received
    assert got.sender == SENDER
    assert got.recipients == TO
    message = got.message
    assert message["From"] == SENDER
    assert [a.addr_spec for a in message["To"].addresses] == TO
    assert message["Subject"] == "Tillgänglighetsrapport 2026-05"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].endswith("@example.se>")

    body = text_of(message)
    assert body.startswith("Hej!\n")
    assert "maj 2026" in body
    for _, name in model.processes(shipped_agreements):
        assert name in body
    for line in model.headline(week_report, shipped_agreements):
        assert f"- {line}\n" in body
    assert "✓" in body or "✗" in body
    assert "OBS:" not in body  # the simulated week has nothing to warn about
    assert "Öppna ärenden bedömda 2026-05-08 14:00 (lokal tid)" in body  # 12:00 UTC is 14:00 CEST
    assert "tillganglighet-2026-05.xlsx" in body and "tillganglighet-2026-05.html" in body

    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(attachments) == {"tillganglighet-2026-05.xlsx", "tillganglighet-2026-05.html"}
    book = attachments["tillganglighet-2026-05.xlsx"]
    assert book.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert book.get_content_disposition() == "attachment"
    data = book.get_content()
    assert data == xlsx
    openpyxl = importorfail("openpyxl", "a dev dependency: pip install -e '.[dev]'")
    sheet = openpyxl.load_workbook(io.BytesIO(data))["Sammanfattning"]
    assert sheet["A1"].value == "Tillgänglighet åäö"
    assert sheet["A2"].value == 0.847

    page = attachments["tillganglighet-2026-05.html"]
    assert page.get_content_type() == "text/html"
    assert page.get_content_charset() == "utf-8"
    decoded = page.get_payload(decode=True)
    assert isinstance(decoded, bytes)
    assert decoded.decode("utf-8") == HTML  # byte for byte as rendered
    assert "åäö ÅÄÖ" in decoded.decode("utf-8")


def test_the_message_is_7bit_clean(composed: EmailMessage) -> None:
    """Any relay takes it, with or without 8BITMIME: the text is quoted-printable, the rest base64."""
    raw = composed.as_bytes()
    assert raw.isascii()
    text = composed.get_body(preferencelist=("plain",))
    assert text is not None and text["Content-Transfer-Encoding"] == "quoted-printable"


def test_notices_come_before_the_numbers(
    week_report: dict[str, Any], shipped_agreements: Agreements, xlsx: bytes
) -> None:
    report = {**week_report, "conflicting_duplicates": 3}
    message = mail.compose(report, shipped_agreements, sender=SENDER, to=TO[:1], xlsx=xlsx, html=HTML)
    body = text_of(message)
    [notice] = model.notices(report, shipped_agreements)
    assert f"OBS: {notice}" in body
    assert body.index("OBS:") < body.index("Utfall mot målen")


def test_english_when_asked(week_report: dict[str, Any], shipped_agreements: Agreements, xlsx: bytes) -> None:
    message = mail.compose(week_report, shipped_agreements, sender=SENDER, to=TO, xlsx=xlsx, html=HTML, lang="en")
    assert message["Subject"] == "Availability report 2026-05"
    body = text_of(message)
    for line in model.headline(week_report, shipped_agreements, "en"):
        assert line in body


def test_no_recipient_is_refused(week_report: dict[str, Any], shipped_agreements: Agreements, xlsx: bytes) -> None:
    with pytest.raises(mail.MailError, match="no recipient"):
        mail.compose(week_report, shipped_agreements, sender=SENDER, to=[], xlsx=xlsx, html=HTML)


# -- failures: one line naming the relay ---------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo[mail.MailError], smarthost: str) -> str:
    text = str(exc.value)
    assert isinstance(exc.value, AvailabilityError)
    assert "\n" not in text and "Traceback" not in text
    assert smarthost in text
    assert PASSWORD not in text
    assert exc.value.__context__ is None or exc.value.__suppress_context__  # no chained traceback either
    return text


def test_a_refused_connection_is_one_line(composed: EmailMessage) -> None:
    smarthost = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=True, user=USER, password=PASSWORD, timeout=5)
    assert one_line(exc, smarthost) == (
        f"cannot send through the SMTP relay {smarthost} (connection refused); nothing was sent"
    )


def test_require_tls_without_starttls_is_refused_and_nothing_is_sent(
    smtp_server: StartServer, composed: EmailMessage
) -> None:
    sink, smarthost = smtp_server()  # no tls_context: aiosmtpd offers no STARTTLS
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=True, user=USER, password=PASSWORD)
    assert "does not offer STARTTLS and smtp.require_tls is true; nothing was sent" in one_line(exc, smarthost)
    assert sink.received == [] and sink.logins == []


def test_starttls_then_login_then_the_mail(
    smtp_server: StartServer, composed: EmailMessage, certificate: Certificate
) -> None:
    sink, smarthost = smtp_server(tls_context=certificate.server_context(), auth_require_tls=True)
    mail.send(composed, smarthost, require_tls=True, user=USER, password=PASSWORD, tls_ca=certificate.cert)
    assert sink.logins == [(USER, PASSWORD, True)]  # the password crossed only inside TLS
    [got] = sink.received
    assert got.message["Subject"] == "Tillgänglighetsrapport 2026-05"


def test_implicit_tls_on_the_smtps_port(
    smtp_server: StartServer, composed: EmailMessage, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Port 465 speaks TLS from the first byte (as Alertmanager reads a :465 smarthost); the test
    cannot bind 465, so it moves that port to a free one."""
    port = free_port()
    monkeypatch.setattr(mail, "IMPLICIT_TLS_PORT", port)
    # aiosmtpd offers AUTH only after its own STARTTLS unless told the connection is safe already
    sink, smarthost = smtp_server(port=port, ssl_context=certificate.server_context(), auth_require_tls=False)
    mail.send(composed, smarthost, require_tls=False, user=USER, password=PASSWORD, tls_ca=certificate.cert)
    assert sink.logins == [(USER, PASSWORD, True)]
    assert len(sink.received) == 1


def test_an_untrusted_certificate_is_refused_before_the_password(
    smtp_server: StartServer, composed: EmailMessage, certificate: Certificate
) -> None:
    sink, smarthost = smtp_server(tls_context=certificate.server_context())
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=True, user=USER, password=PASSWORD)  # the system's CAs
    assert "TLS certificate is not trusted" in one_line(exc, smarthost)
    assert sink.logins == [] and sink.received == []


def test_a_wrong_password_is_named_by_user_never_by_password(
    smtp_server: StartServer, composed: EmailMessage, certificate: Certificate
) -> None:
    sink, smarthost = smtp_server(tls_context=certificate.server_context())
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=True, user=USER, password="fel", tls_ca=certificate.cert)
    text = one_line(exc, smarthost)
    assert f"refused the login of {USER} (535" in text and "fel" not in text.split("(")[-1]
    assert sink.received == []


def test_a_password_is_never_sent_in_clear_over_the_network(composed: EmailMessage) -> None:
    smarthost = "192.0.2.1:25"  # TEST-NET-1: refused before any connection is tried
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=False, user=USER, password=PASSWORD, timeout=1)
    assert "would cross the network unencrypted" in one_line(exc, smarthost)


def test_refused_recipients_are_named(smtp_server: StartServer, composed: EmailMessage) -> None:
    sink, smarthost = smtp_server()
    sink.refuse = set(TO)
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=False)
    text = one_line(exc, smarthost)
    assert "refused every recipient" in text
    assert all(f"{address}: 550 5.1.1 no such mailbox" in text for address in TO)

    sink.refuse = {TO[1]}
    with pytest.raises(mail.MailError) as exc:
        mail.send(composed, smarthost, require_tls=False)
    text = one_line(exc, smarthost)
    assert f"took the report but refused some recipients: {TO[1]}: 550" in text
    assert [r.recipients for r in sink.received] == [[TO[0]]]


@pytest.mark.parametrize("smarthost", ["smtp.example.se", "smtp.example.se:smtp", ":25", "smtp.example.se:0"])
def test_a_smarthost_without_a_port_is_refused(composed: EmailMessage, smarthost: str) -> None:
    with pytest.raises(mail.MailError, match="is not HOST:PORT"):
        mail.send(composed, smarthost, require_tls=True)


# -- when to send, and which month -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 1, date(2026, 1, 2)),  # 1 Jan is a holiday; Friday 2 Jan is a working day
        (2026, 5, date(2026, 5, 4)),  # 1 May a holiday (Friday), then a weekend
        (2026, 6, date(2026, 6, 1)),  # Monday 1 June
        (2026, 8, date(2026, 8, 3)),  # the month starts on a Saturday
        (2026, 11, date(2026, 11, 2)),  # Sunday 1 Nov
        (2027, 1, date(2027, 1, 4)),  # Friday 1 Jan a holiday, then a weekend
    ],
)
def test_first_working_day(shipped_agreements: Agreements, year: int, month: int, expected: date) -> None:
    assert mail.first_working_day(shipped_agreements, year, month) == expected


def test_any_process_open_makes_a_working_day() -> None:
    """A day one calendar closes and another opens is a working day; a calendar no queue or
    mailbox uses does not count."""
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["vakt"] = {"hours": {"sat": ["10:00-12:00"]}}
    raw["calendars"]["oanvand"] = {"hours": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}  # fmt: skip
    raw["queues"]["avgifter"]["calendar"] = "vakt"
    agreements = parse_agreements(raw)
    assert mail.first_working_day(agreements, 2026, 8) == date(2026, 8, 1)  # Saturday: avgifter's phone is open


def test_a_closed_first_week_still_gets_its_report() -> None:
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["kontor"]["closed"] = [f"2026-06-0{d}" for d in range(1, 10)]
    agreements = parse_agreements(raw)
    assert mail.first_working_day(agreements, 2026, 6) == date(2026, 6, mail.LAST_TIMER_DAY)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 6, 15, 12, tzinfo=UTC), "2026-05"),
        (datetime(2026, 1, 15, 12, tzinfo=UTC), "2025-12"),  # across the year
        (datetime(2026, 1, 1, 0, 30, tzinfo=STOCKHOLM), "2025-12"),  # 2025-12-31 23:30 UTC
        (datetime(2026, 6, 1, 0, 30, tzinfo=STOCKHOLM), "2026-05"),  # summer time: 2026-05-31 22:30 UTC
        (datetime(2026, 5, 31, 22, 30, tzinfo=UTC), "2026-05"),  # the same instant, given in UTC
        (datetime(2026, 5, 31, 21, 59, tzinfo=UTC), "2026-04"),  # 23:59 local on 31 May
        (datetime(2026, 4, 1, 0, 30, tzinfo=STOCKHOLM), "2026-03"),  # first month after summer time began
        (datetime(2026, 11, 1, 0, 30, tzinfo=STOCKHOLM), "2026-10"),  # first month after it ended (+01:00)
        (datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "2026-10"),  # that instant in UTC
    ],
)
def test_last_month_is_the_local_month_before(shipped_agreements: Agreements, now: datetime, expected: str) -> None:
    assert mail.last_month(shipped_agreements, now) == expected


def test_last_month_needs_an_aware_time(shipped_agreements: Agreements) -> None:
    with pytest.raises(ValueError, match="aware"):
        mail.last_month(shipped_agreements, datetime(2026, 6, 1, 0, 30))
