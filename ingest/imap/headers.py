"""One message's headers as the IMAP poller (ingest/imap/poller.py) fetches and reads them."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any, Literal

Role = Literal["inbox", "sent", "done"]
HEADER_FIELDS = (
    "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "FROM", "SUBJECT", "DATE",
    "AUTO-SUBMITTED", "CONTENT-TYPE", "X-AUTOREPLY", "X-AUTORESPOND", "PRECEDENCE", "RETURN-PATH",
)  # fmt: skip
# Headers only, and PEEK so the server does not set \Seen: staff see the mailbox unchanged.
FETCH_ITEMS = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({' '.join(HEADER_FIELDS)})])"

_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|sv|vs|aw|fwd?|vb|wg)\s*(?:\[\d+\]|\(\d+\))?\s*:)+", re.IGNORECASE)
_FETCH_START = re.compile(rb"^\d+ \(")
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_AUTO_PRECEDENCE = {"auto_reply": "auto-reply", "bulk": "bulk", "junk": "bulk"}
_DAEMONS = {"mailer-daemon", "postmaster"}


@dataclass(frozen=True)
class Fetched:
    """One message as the poller needs it. `sender` and `subject` are personal data."""

    folder: str
    role: Role
    uidvalidity: int
    uid: int
    internaldate: datetime
    message_id: str
    references: tuple[str, ...]  # References, then In-Reply-To ids not already in it
    in_reply_to: str | None
    sender: str | None
    subject: str
    ignore: str | None  # why the message is not a case event (auto-reply, bounce, bulk), or None


def parse_internaldate(meta: bytes) -> datetime | None:
    """`INTERNALDATE " 7-Apr-2026 13:30:00 +0000"` -> an aware datetime (imaplib's own parser
    returns local time and a locale-dependent month is no better)."""
    m = _INTERNALDATE.search(meta)
    if m is None or m[2].decode().lower() not in _MONTHS:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = (g.decode() for g in m.groups())
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    return datetime(int(year), _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss), tzinfo=timezone(offset))


def header_text(value: str | Header | None) -> str:
    """A header's text with RFC 2047 words decoded (raw 8-bit bytes read as UTF-8), unfolded."""
    if value is None:
        return ""
    try:
        parts = decode_header(value)
    except Exception:  # a malformed encoded word: keep what is there
        return " ".join(str(value).split())
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset if charset and charset != "unknown-8bit" else "utf-8", "replace")
            except LookupError:
                chunk = chunk.decode("utf-8", "replace")
        out.append(chunk)
    return " ".join("".join(out).split())


def header_ids(value: str | Header | None) -> list[str]:
    return _ID.findall(header_text(value))


def sender_of(headers: Message) -> str | None:
    """The From address as written (personal data: the boundary hashes it): the first with an `@`.
    Read from the undecoded header, since a decoded display name may hold a comma."""
    raw = headers["From"]
    pairs = getaddresses([raw if isinstance(raw, str) else header_text(raw)])
    addresses = [a for _, a in pairs if "@" in a] or [a for _, a in pairs if a]
    return addresses[0] if addresses else None


def ignore_reason(headers: Message, sender: str | None) -> str | None:
    """Auto-replies, bounces and bulk mail are not citizens writing: why a message is skipped."""
    auto = header_text(headers["Auto-Submitted"]).split(";")[0].strip().lower()
    if auto and auto != "no":
        return "auto-reply"
    if headers.get_content_type() == "multipart/report":  # delivery status or read receipt
        return "bounce"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in headers and header_text(headers[name]).strip().lower() not in ("no", "false", "0"):
            return "auto-reply"
    precedence = header_text(headers["Precedence"]).strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return _AUTO_PRECEDENCE[precedence]
    if sender is not None and sender.partition("@")[0].lower() in _DAEMONS:
        return "bounce"
    if header_text(headers["Return-Path"]).replace(" ", "") == "<>":  # the null sender of bounces
        return "bounce"
    return None


def normal_subject(subject: str) -> str:
    """`SV: Re: Avbetalningsplan  önskas` -> `avbetalningsplan önskas` (for the thread fallback)."""
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


def parse_fetch(data: list[Any]) -> list[tuple[int, datetime, bytes]]:
    """imaplib's FETCH answer -> (uid, internaldate, header bytes) per message.

    imaplib gives a (prefix, literal) tuple per message followed by the bytes after the
    literal (`)` or ` UID 5)` when the server puts items last); unsolicited FETCH responses
    (flag changes by other clients) lack INTERNALDATE and are skipped.
    """
    records: list[list[bytes]] = []
    for item in data:
        if isinstance(item, tuple):
            records.append([item[0], item[1]])
        elif isinstance(item, bytes):
            if _FETCH_START.match(item):
                records.append([item, b""])
            elif records:
                records[-1][0] += b" " + item
    out = []
    for meta, header in records:
        uid, arrived = _UID.search(meta), parse_internaldate(meta)
        if uid is not None and arrived is not None:
            out.append((int(uid[1]), arrived, header))
    return out


def read_message(
    folder: str, role: Role, uidvalidity: int, uid: int, arrived: datetime, header: bytes, mailbox_id: str, key: bytes
) -> Fetched:
    headers = BytesHeaderParser().parsebytes(header)
    message_ids = header_ids(headers["Message-ID"])
    # A stable stand-in from the header itself (same bytes in every folder it is moved to).
    message_id = message_ids[0] if message_ids else f"<{keyed_digest(key, header)}@{mailbox_id}.imap.invalid>"
    in_reply_to = header_ids(headers["In-Reply-To"])
    references = header_ids(headers["References"])
    sender = sender_of(headers)
    return Fetched(
        folder=folder,
        role=role,
        uidvalidity=uidvalidity,
        uid=uid,
        internaldate=arrived,
        message_id=message_id,
        references=tuple(dict.fromkeys(references + in_reply_to)),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        sender=sender,
        subject=header_text(headers["Subject"]),
        ignore=ignore_reason(headers, sender),
    )


def keyed_digest(key: bytes, value: bytes) -> str:
    return hmac.new(key, value, hashlib.sha256).hexdigest()[:32]
