"""The monthly report by e-mail: a short Swedish text saying whether each promise was kept, the
workbook and the HTML page attached, sent through the same SMTP relay as the alerts
(deploy/alertmanager/managers.yaml, section `smtp`).

`availability report send --month last --to ADDR… --only-first-working-day` runs from a timer on
days 1–7 of each month (deploy/report/); `first_working_day` decides on which of those it sends,
`last_month` which month it reports.
"""

from __future__ import annotations

import base64
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Sequence
from contextlib import suppress
from datetime import date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from dashboards.reporting import model
from dashboards.reporting.model import Lang
from schemas.agreements import Agreements
from schemas.calendar import month_before
from schemas.errors import AvailabilityError
from schemas.tls import verified_context

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
# The timer fires on days 1–7 (deploy/report/availability-report.timer); a month whose first
# week is closed throughout still gets its report on the last of those days.
LAST_TIMER_DAY = 7
IMPLICIT_TLS_PORT = 465  # SMTPS; as Alertmanager does, this port speaks TLS from the first byte


class MailError(AvailabilityError):
    """The report could not be handed to the SMTP relay; one line naming the relay and why."""


def attachment_name(month: str, extension: str) -> str:
    """`tillganglighet-2026-05.xlsx`: ASCII only, so every mail client keeps the name."""
    return f"tillganglighet-{month}.{extension}"


_WORDS: dict[str, dict[Lang, str]] = {
    "subject": {"sv": "Tillgänglighetsrapport {month}", "en": "Availability report {month}"},
    "greeting": {"sv": "Hej!", "en": "Hello,"},
    "intro": {
        "sv": "Här är tillgänglighetsrapporten för {label} ({month}): telefonköer och funktionsbrevlådor mot "
        "serviceavtalens mål.",
        "en": "Here is the availability report for {label} ({month}): phone queues and function mailboxes "
        "against the service agreements' targets.",
    },
    "notice": {"sv": "OBS: {text}", "en": "NOTE: {text}"},
    "outcome": {"sv": "Utfall mot målen ({legend}):", "en": "Against the targets ({legend}):"},
    "source": {
        "sv": "Siffrorna är räknade ur växelns samtalshändelser och funktionsbrevlådornas ärenden, med reglerna i "
        "serviceavtalen. Alla mått per process, dag, timme och de senaste 13 månaderna finns i bilagorna "
        "{xlsx} (Excel) och {html} (öppnas i en webbläsare); där står också definitionerna av varje mått.",
        "en": "The numbers are counted from the phone platform's call events and the function mailboxes' cases, "
        "by the rules of the service agreements. Every measure per process, day, hour and the last 13 months is "
        "in the attachments {xlsx} (Excel) and {html} (open it in a web browser), with the definition of "
        "each measure.",
    },
}


def compose(
    report: dict[str, Any],
    agreements: Agreements,
    *,
    sender: str,
    to: Sequence[str],
    xlsx: bytes,
    html: str,
    lang: Lang = "sv",
) -> EmailMessage:
    """The month's mail: the headline a manager reads in the preview, the details attached.

    The text is quoted-printable and the attachments base64, so the message is 7-bit clean and
    passes any relay, with or without 8BITMIME."""
    if not to:
        raise MailError("the report mail has no recipient (give at least one --to ADDRESS)")
    month = report["month"]
    xlsx_name, html_name = attachment_name(month, "xlsx"), attachment_name(month, "html")
    message = EmailMessage(policy=SMTP)
    message["Subject"] = _WORDS["subject"][lang].format(month=month)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(datetime.now().astimezone(agreements.timezone))
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    text = body(report, agreements, xlsx_name=xlsx_name, html_name=html_name, lang=lang)
    message.set_content(text, cte="quoted-printable")
    message.add_attachment(xlsx, maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=xlsx_name)
    # As bytes: the page arrives exactly as rendered (a text part would get its line ends rewritten).
    message.add_attachment(
        html.encode("utf-8"), maintype="text", subtype="html", params={"charset": "utf-8"}, filename=html_name
    )
    return message


def body(report: dict[str, Any], agreements: Agreements, *, xlsx_name: str, html_name: str, lang: Lang) -> str:
    """The plain text: greeting, what to know before trusting the numbers, one line per process,
    where the numbers come from, and when open cases were judged."""
    month = report["month"]
    words = {k: v[lang] for k, v in _WORDS.items()}
    paragraphs = [
        words["greeting"],
        words["intro"].format(label=model.period_label("months", month, lang), month=month),
        *(words["notice"].format(text=notice) for notice in model.notices(report, agreements, lang)),
        "\n".join(
            [words["outcome"].format(legend=model.text("mark_legend", lang))]
            + [f"- {line}" for line in model.headline(report, agreements, lang)]
        ),
        words["source"].format(xlsx=xlsx_name, html=html_name),
        model.text("evaluated", lang, time=model.local_time(report["evaluated_at"], agreements)),
    ]
    return "\n\n".join(paragraphs) + "\n"


def _domain(sender: str) -> str | None:
    """The sender's domain for the Message-ID (the relay's domain, not this host's name)."""
    with suppress(Exception):
        return Address(addr_spec=sender.strip()).domain or None
    return None


# -- sending ---------------------------------------------------------------------------------------


def send(
    message: EmailMessage,
    smarthost: str,
    *,
    require_tls: bool,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 30,
    tls_ca: str | Path | None = None,
) -> None:
    """Hand the message to the relay, as Alertmanager does with the same settings: port 465 is
    TLS from the start; otherwise STARTTLS when `require_tls` (refused if the relay does not offer
    it). The certificate is verified (the system's CAs, or only `tls_ca`). A password is never
    sent unencrypted, except to a relay on this host. Every failure is one MailError line naming
    the relay; it never holds the password."""
    host, port = _split(smarthost)
    where = f"SMTP relay {smarthost}"
    implicit = port == IMPLICIT_TLS_PORT
    if user is not None and not (require_tls or implicit or _loopback(host)):
        raise MailError(
            f"{where}: the SMTP password would cross the network unencrypted; set smtp.require_tls: true "
            f"(STARTTLS) or use port {IMPLICIT_TLS_PORT}; nothing was sent"
        )
    context = _tls_context(tls_ca, where)
    try:
        if implicit:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if require_tls and not implicit:
                if not smtp.has_extn("starttls"):
                    raise MailError(
                        f"{where} does not offer STARTTLS and smtp.require_tls is true; nothing was sent "
                        "(use the relay's TLS port, or set require_tls: false for a relay on a trusted network)"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if user is not None:
                _login(smtp, user, password or "")
            refused = smtp.send_message(message)
    except MailError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"{where} refused every recipient: {_refusals(exc.recipients)}") from None
    except smtplib.SMTPSenderRefused as exc:
        raise MailError(f"{where} refused the sender {exc.sender} ({_reply(exc.smtp_code, exc.smtp_error)})") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"{where} refused the login of {user} ({_reply(exc.smtp_code, exc.smtp_error)})") from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(f"{where} offers no login (SMTP AUTH) on this connection, but a user was given") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"{where} answered {_reply(exc.smtp_code, exc.smtp_error)}; nothing was sent") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message or _reason(exc)}); "
            "nothing was sent (a private CA: give its certificate file)"
        ) from None
    except ssl.SSLError as exc:
        raise MailError(f"{where}: TLS failed ({_reason(exc)}); nothing was sent") from None
    except TimeoutError:
        raise MailError(f"{where} did not answer within {timeout:g} s; nothing was sent") from None
    except socket.gaierror as exc:
        raise MailError(f"cannot find the {where} ({exc.strerror or _reason(exc)})") from None
    except (OSError, smtplib.SMTPException) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        raise MailError(f"cannot send through the {where} ({why.lower()}); nothing was sent") from None
    if refused:
        raise MailError(f"{where} took the report but refused some recipients: {_refusals(refused)}")


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib's login, which sends only ASCII; a user or password with other characters (a
    Swedish password may well hold åäö) goes as AUTH PLAIN in UTF-8 (RFC 4616)."""
    if (user + password).isascii():
        smtp.login(user, password)
        return
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError("AUTH PLAIN")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _split(smarthost: str) -> tuple[str, int]:
    """`smtp.example.se:587` or `[::1]:25` -> host and port (Alertmanager's smarthost form)."""
    host, _, port = smarthost.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MailError(f"SMTP smarthost {smarthost!r} is not HOST:PORT (e.g. smtp.example.se:587)")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(tls_ca: str | Path | None, where: str) -> ssl.SSLContext:
    try:
        return verified_context(tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"{where}: cannot use the CA file {tls_ca} ({_reason(exc)})") from None


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(message.split())}"


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {_reply(code, text)}" for address, (code, text) in sorted(recipients.items()))


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- when, and which month ---------------------------------------------------------------------------


def first_working_day(agreements: Agreements, year: int, month: int) -> date:
    """The first day of the month when any queue or mailbox is open (its calendar has opening
    hours, after holidays and closed days): the day the report is sent, when people are at work
    to read it, rather than on New Year's Day or a Saturday. Any process opening counts, as the
    mail goes to the whole service centre. When the first LAST_TIMER_DAY days are all closed the
    answer is day LAST_TIMER_DAY, the timer's last chance, so a month is never left unsent."""
    calendars = [q.calendar for q in agreements.queues.values()] + [m.calendar for m in agreements.mailboxes.values()]
    first = date(year, month, 1)
    for offset in range(LAST_TIMER_DAY):
        day = first + timedelta(days=offset)
        if any(calendar.intervals_on(day) for calendar in calendars):
            return day
    return first + timedelta(days=LAST_TIMER_DAY - 1)


def last_month(agreements: Agreements, now: datetime) -> str:
    """`YYYY-MM` of the month before `now`'s local month (the agreements' time zone): just after
    local midnight on 1 June it is still 31 May in UTC, but the month to report is May."""
    if now.tzinfo is None:
        raise ValueError("last_month needs an aware time (a naive one has no place on the clock)")
    return month_before(now.astimezone(agreements.timezone).date())
