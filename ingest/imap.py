"""An IMAP function mailbox -> canonical mail events (spec/events.md, "Function mailboxes").

The poller reads message headers only (never bodies, never the \\Seen flag) from three
folders: the inbox (`mail.received`), the sent folder (`mail.replied`) and, optionally, a
done folder staff move finished messages to (`mail.closed`, reason `handled`). Events are
*raw*: `mail.received` carries `sender` and `subject`, and the ingest boundary pseudonymises
them like any other source's.

Delivery is at least once: `poll()` reads from the committed checkpoint and `commit()`, called
after the events were published, advances it. A crash in between re-reads the same messages,
which give the same event ids (`imap:{mailbox}:{folder}:{uidvalidity}:{uid}`), so the
derivations de-duplicate them. docs/imap.md describes the rules and their reasons.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import imaplib
import logging
import os
import re
import signal
import ssl as ssl_lib
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Literal

import msgspec

from availability.errors import AvailabilityError
from availability.settings import Settings
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.publisher import KafkaPublisher, PublishError
from schemas.agreements import Agreements
from schemas.events import (
    Event,
    MailClosed,
    MailClosedData,
    MailEvent,
    MailReceived,
    MailReceivedData,
    MailReplied,
    MailRepliedData,
    encode,
)

log = logging.getLogger(__name__)

Role = Literal["inbox", "sent", "done"]
_ROLE_ORDER: dict[Role, int] = {"inbox": 0, "sent": 1, "done": 2}  # as the derivation orders ties
HEADER_FIELDS = (
    "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "FROM", "SUBJECT", "DATE",
    "AUTO-SUBMITTED", "CONTENT-TYPE", "X-AUTOREPLY", "X-AUTORESPOND", "PRECEDENCE", "RETURN-PATH",
)  # fmt: skip
# Headers only, and PEEK so the server does not set \Seen: staff see the mailbox unchanged.
FETCH_ITEMS = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({' '.join(HEADER_FIELDS)})])"
MAX_THREADS = 10_000  # message id -> thread id entries kept in the checkpoint (newest)
MAX_SUBJECTS = 2_000  # subject digest -> thread entries kept for the subject fallback


class ImapError(AvailabilityError):
    """The mailbox cannot be read as configured (login refused, a folder missing, a bad checkpoint)."""


class ImapUnavailable(ImapError):
    """The server was unreachable or dropped the connection; the next poll may succeed."""


# -- the checkpoint ---------------------------------------------------------------------------


class FolderMark(msgspec.Struct, frozen=True):
    uidvalidity: int
    last_uid: int  # the highest UID read (0: none)
    polled_at: datetime  # when this folder was last read


class SubjectMark(msgspec.Struct, frozen=True, array_like=True):
    thread_id: str
    received_at: datetime


class CheckpointData(msgspec.Struct, kw_only=True):
    version: int = 1
    mailbox: str = ""
    folders: dict[str, FolderMark] = {}
    # Message id -> thread id of messages read, and keyed digest of a normalised subject ->
    # the thread of the latest message received with it (never the subject itself).
    threads: dict[str, str] = {}
    subjects: dict[str, SubjectMark] = {}

    def copy(self) -> CheckpointData:
        return CheckpointData(
            mailbox=self.mailbox, folders=dict(self.folders), threads=dict(self.threads), subjects=dict(self.subjects)
        )


class Checkpoint:
    """A small JSON file, replaced atomically (temp file + os.replace), so it is never half written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = self._load()

    def _load(self) -> CheckpointData:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return CheckpointData()
        except OSError as exc:
            raise ImapError(f"{self.path}: cannot read the IMAP checkpoint ({exc.strerror})") from None
        try:
            return msgspec.json.decode(raw, type=CheckpointData)
        except msgspec.MsgspecError:
            raise ImapError(
                f"{self.path}: not an IMAP checkpoint (move it away to read the mailbox from the start)"
            ) from None

    def save(self, data: CheckpointData) -> None:
        payload = msgspec.json.format(msgspec.json.encode(data), indent=1)
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, self.path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise ImapError(f"{self.path}: cannot write the IMAP checkpoint ({exc.strerror})") from None
        self.data = data


# -- one message's headers --------------------------------------------------------------------

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


def _text(value: str | Header | None) -> str:
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


def _ids(value: str | Header | None) -> list[str]:
    return _ID.findall(_text(value))


def ignore_reason(headers: Message, sender: str | None) -> str | None:
    """Auto-replies, bounces and bulk mail are not citizens writing: why a message is skipped."""
    auto = _text(headers["Auto-Submitted"]).split(";")[0].strip().lower()
    if auto and auto != "no":
        return "auto-reply"
    if headers.get_content_type() == "multipart/report":  # delivery status or read receipt
        return "bounce"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in headers and _text(headers[name]).strip().lower() not in ("no", "false", "0"):
            return "auto-reply"
    precedence = _text(headers["Precedence"]).strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return _AUTO_PRECEDENCE[precedence]
    if sender is not None and sender.partition("@")[0].lower() in _DAEMONS:
        return "bounce"
    if _text(headers["Return-Path"]).replace(" ", "") == "<>":  # the null sender of bounces
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
    message_ids = _ids(headers["Message-ID"])
    # A stable stand-in from the header itself (same bytes in every folder it is moved to).
    message_id = message_ids[0] if message_ids else f"<{_digest(key, header)}@{mailbox_id}.imap.invalid>"
    in_reply_to = _ids(headers["In-Reply-To"])
    references = _ids(headers["References"])
    # Addresses from the undecoded header: a decoded display name may hold a comma.
    raw_from = headers["From"]
    pairs = getaddresses([raw_from if isinstance(raw_from, str) else _text(raw_from)])
    addresses = [a for _, a in pairs if "@" in a] or [a for _, a in pairs if a]
    sender = addresses[0] if addresses else None
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
        subject=_text(headers["Subject"]),
        ignore=ignore_reason(headers, sender),
    )


def _digest(key: bytes, value: bytes) -> str:
    return hmac.new(key, value, hashlib.sha256).hexdigest()[:32]


def imap_utf7(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3): `Åtgärdat` -> `&AMU-tg&AOQ-rdat`."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            b64 = base64.b64encode("".join(wide).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            wide.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    flush()
    return "".join(out)


def _quoted(name: str) -> str:
    return '"' + imap_utf7(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- the poller -------------------------------------------------------------------------------


class ImapPoller:
    """Reads what is new in the mailbox's folders since the committed checkpoint."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        mailbox_id: str,
        *,
        inbox: str = "INBOX",
        sent: str = "Sent",
        done: str | None = "Done",
        ssl: bool = False,
        checkpoint: Checkpoint,
        key: bytes = b"",
        timeout: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        roles: list[tuple[str | None, Role]] = [(inbox, "inbox"), (sent, "sent"), (done, "done")]
        self.folders = [(name, role) for name, role in roles if name]
        names = [name for name, _ in self.folders]
        if len(set(names)) != len(names):
            raise ImapError(f"the inbox, sent and done folders must differ (got {', '.join(names)})")
        if checkpoint.data.mailbox not in ("", mailbox_id):
            raise ImapError(f"{checkpoint.path}: checkpoint of mailbox '{checkpoint.data.mailbox}', not '{mailbox_id}'")
        self.host, self.port, self.user, self._password = host, port, user, password
        self.mailbox_id = mailbox_id
        self.source = f"imap/{mailbox_id}"
        self.ssl = ssl
        self.checkpoint = checkpoint
        self.timeout = timeout
        self._key = key  # keys the subject digests and stand-in message ids
        self._clock = clock
        self._pending: CheckpointData | None = None
        self.ignored: Counter[str] = Counter()  # the last poll's skipped messages by reason

    # -- public -------------------------------------------------------------------------------

    def poll(self) -> list[MailEvent]:
        """The events of messages not in the committed checkpoint, in time order."""
        state = self.checkpoint.data.copy()
        state.mailbox = self.mailbox_id
        now = self._clock()
        timed: list[tuple[datetime, Fetched]] = []
        with self._session() as conn:
            for folder, role in self.folders:
                mark = state.folders.get(folder)
                uidvalidity, messages = self._read(conn, folder, role, mark)
                last = mark.last_uid if mark is not None and mark.uidvalidity == uidvalidity else 0
                last = max([last, *(m.uid for m in messages)])
                state.folders[folder] = FolderMark(uidvalidity, last, now)
                for msg in messages:
                    timed.append((self._time(msg, mark), msg))
        timed.sort(key=lambda tm: (tm[0], _ROLE_ORDER[tm[1].role], tm[1].folder, tm[1].uid))
        events: list[MailEvent] = []
        ignored: Counter[str] = Counter()
        for at, msg in timed:
            if msg.ignore is not None:
                ignored[msg.ignore] += 1
            else:
                events.append(self._event(msg, at, state))
        self._pending, self.ignored = state, ignored
        return events

    def commit(self) -> None:
        """Advance the checkpoint past the last poll (call after its events were published)."""
        if self._pending is not None:
            self.checkpoint.save(self._pending)
            self._pending = None

    # -- IMAP ---------------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[imaplib.IMAP4]:
        where = f"{self.host}:{self.port}"
        try:
            if self.ssl:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=ssl_lib.create_default_context(), timeout=self.timeout
                )
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapUnavailable(f"cannot reach IMAP at {where} ({_reason(exc)})") from None
        try:
            self._login(conn, where)
            yield conn
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise ImapUnavailable(f"IMAP at {where} failed ({_reason(exc)})") from None
        except imaplib.IMAP4.error as exc:  # the server answered BAD
            raise ImapError(f"IMAP at {where} refused a command ({_reason(exc)})") from None
        finally:
            with suppress(Exception):
                conn.logout()

    def _login(self, conn: imaplib.IMAP4, where: str) -> None:
        try:
            try:
                conn.login(self.user, self._password)
            except UnicodeEncodeError:  # LOGIN is ASCII only; SASL PLAIN carries UTF-8
                secret = f"\0{self.user}\0{self._password}".encode()
                conn.authenticate("PLAIN", lambda _: secret)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error:
            raise ImapError(f"IMAP at {where} refused the login of '{self.user}'") from None

    def _read(self, conn: imaplib.IMAP4, folder: str, role: Role, mark: FolderMark | None) -> tuple[int, list[Fetched]]:
        """The folder's UIDVALIDITY and its messages after the mark (all of them if UIDVALIDITY changed)."""
        status, data = conn.select(_quoted(folder), readonly=True)  # EXAMINE: nothing changes
        if status != "OK":
            raise ImapError(f"IMAP folder '{folder}' cannot be opened ({_reason(data)})")
        uidvalidity = int(_first(conn.response("UIDVALIDITY")[1], b"0"))
        exists = int(_first(data, b"0"))
        after = mark.last_uid if mark is not None and mark.uidvalidity == uidvalidity else 0
        if mark is not None and mark.uidvalidity != uidvalidity:
            log.warning("imap %s: folder %s has a new UIDVALIDITY; reading it from the start", self.mailbox_id, folder)
        uidnext = int(_first(conn.response("UIDNEXT")[1], b"0"))
        if exists == 0 or 0 < uidnext <= after + 1:
            return uidvalidity, []
        # `n:*` always includes the highest UID, even when it is below n: filtered below.
        status, data = conn.uid("FETCH", f"{after + 1}:*", FETCH_ITEMS)
        if status != "OK":
            raise ImapUnavailable(f"IMAP FETCH in '{folder}' failed ({_reason(data)})")
        return uidvalidity, [
            read_message(folder, role, uidvalidity, uid, arrived, header, self.mailbox_id, self._key)
            for uid, arrived, header in parse_fetch(data)
            if uid > after
        ]

    # -- messages -> events -------------------------------------------------------------------

    @staticmethod
    def _time(msg: Fetched, mark: FolderMark | None) -> datetime:
        """INTERNALDATE: arrival in the inbox, saving in the sent folder. A move keeps the
        arrival date on most servers (Dovecot, Exchange), so a message new in the done folder
        was moved after the folder's previous poll: no earlier than that."""
        if msg.role == "done" and mark is not None and mark.polled_at > msg.internaldate:
            return mark.polled_at
        return msg.internaldate

    def _event(self, msg: Fetched, at: datetime, state: CheckpointData) -> MailEvent:
        thread = self._thread(msg, at, state)
        _remember(state.threads, msg.message_id, thread, MAX_THREADS)
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"imap:{self.mailbox_id}:{msg.folder}:{msg.uidvalidity}:{msg.uid}",
            "source": self.source,
            "time": at,
            "subject": f"{self.mailbox_id}/{thread}",
            "datacontenttype": "application/json",
        }
        if msg.role == "inbox":
            if msg.subject:
                digest = _digest(self._key, normal_subject(msg.subject).encode())
                _remember(state.subjects, digest, SubjectMark(thread, at), MAX_SUBJECTS)
            data = MailReceivedData(
                mailbox=self.mailbox_id,
                message_id=msg.message_id,
                thread_id=thread,
                sender=msg.sender,
                subject=msg.subject or None,
            )
            return MailReceived(**envelope, data=data)
        if msg.role == "sent":
            replied = MailRepliedData(
                mailbox=self.mailbox_id, message_id=msg.message_id, thread_id=thread, in_reply_to=msg.in_reply_to
            )
            return MailReplied(**envelope, data=replied)
        return MailClosed(**envelope, data=MailClosedData(mailbox=self.mailbox_id, thread_id=thread, reason="handled"))

    def _thread(self, msg: Fetched, at: datetime, state: CheckpointData) -> str:
        """The thread a message belongs to (docs/imap.md, "Threads")."""
        known = state.threads
        if msg.message_id in known:  # read before: in the inbox, now moved to the done folder
            return known[msg.message_id]
        for ref in msg.references:  # root first
            if ref in known:
                return known[ref]
        if msg.references:
            return msg.references[0]
        if msg.role == "sent" and msg.subject:  # a reply without threading headers
            mark = state.subjects.get(_digest(self._key, normal_subject(msg.subject).encode()))
            if mark is not None and mark.received_at <= at:
                return mark.thread_id
        return msg.message_id


def _remember(table: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """Insert as newest; drop the oldest beyond `limit`."""
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]


def _first(values: list[Any] | None, default: bytes) -> bytes:
    value = values[0] if values else None
    return value if isinstance(value, bytes) and value.strip() else default


def _reason(problem: object) -> str:
    if isinstance(problem, list):
        problem = b" ".join(p for p in problem if isinstance(p, bytes))
    if isinstance(problem, bytes):
        problem = problem.decode("utf-8", "replace")
    if isinstance(problem, OSError) and problem.strerror:
        return problem.strerror
    text = str(problem).strip() or type(problem).__name__
    return text.splitlines()[0]


# -- the service loop -------------------------------------------------------------------------


@dataclass
class RunStats:
    polls: int = 0
    published: int = 0
    rejected: int = 0
    ignored: Counter[str] = field(default_factory=Counter)


def default_checkpoint(mailbox_id: str) -> Path:
    return Path(f"imap-{mailbox_id}.checkpoint.json")


def forward(poller: ImapPoller, boundary: Boundary, publish: Callable[[list[Event]], object]) -> RunStats:
    """One poll: read, pass the boundary, publish, then commit. Logs counts, never addresses or subjects."""
    events = poller.poll()
    accepted: list[Event] = []
    rejected = 0
    for ev in events:
        result = boundary.accept(encode(ev))
        if isinstance(result, str):
            # The message itself stays in the mailbox; its id names the folder and UID.
            log.error("imap %s: %s rejected: %s", poller.mailbox_id, ev.id, result)
            rejected += 1
        else:
            accepted.append(result)
    if accepted:
        publish(accepted)
    poller.commit()
    kinds = Counter(type(ev).__name__ for ev in events)
    log.info(
        "imap %s: %d received, %d replied, %d closed, %d rejected, ignored %s",
        poller.mailbox_id,
        kinds["MailReceived"],
        kinds["MailReplied"],
        kinds["MailClosed"],
        rejected,
        dict(poller.ignored) or "none",
    )
    return RunStats(polls=1, published=len(accepted), rejected=rejected, ignored=Counter(poller.ignored))


def run(
    settings: Settings,
    agreements: Agreements,
    mailbox_id: str,
    host: str,
    port: int | None,
    user: str,
    *,
    ssl: bool = False,
    inbox: str = "INBOX",
    sent: str = "Sent",
    done: str | None = "Done",
    checkpoint: str | Path | None = None,
    interval: float = 60.0,
    once: bool = False,
    timeout: float = 30.0,
    publish: Callable[[list[Event]], object] | None = None,
    stop: threading.Event | None = None,
) -> RunStats:
    """Poll the mailbox every `interval` seconds (or once) and publish its events to Kafka
    (or to `publish`). Stops cleanly on SIGTERM/SIGINT or when `stop` is set; an unreachable
    server or broker is retried at the next interval (with `once`, it is the error)."""
    if mailbox_id not in agreements.mailboxes:
        known = ", ".join(agreements.mailboxes) or "none"
        raise ImapError(f"unknown mailbox '{mailbox_id}' (the agreements define: {known})")
    if settings.imap_password is None:
        raise ImapError("no IMAP password: set AVAILABILITY_IMAP_PASSWORD")
    if settings.uses_development_key:
        log.warning("AVAILABILITY_PSEUDONYM_KEY is not set; sender pseudonyms use the public development key")
    key = settings.pseudonym_key.get_secret_value().encode()
    boundary = Boundary(agreements, Pseudonymiser(key, agreements))
    poller = ImapPoller(
        host,
        port if port is not None else (993 if ssl else 143),
        user,
        settings.imap_password.get_secret_value(),
        mailbox_id,
        inbox=inbox,
        sent=sent,
        done=done,
        ssl=ssl,
        checkpoint=Checkpoint(checkpoint if checkpoint is not None else default_checkpoint(mailbox_id)),
        key=key,
        timeout=timeout,
    )
    publisher = None
    if publish is None:
        publisher = KafkaPublisher(settings.kafka_bootstrap_servers, settings.topic_prefix)
        publish = publisher.publish
    stop = stop or threading.Event()
    stats = RunStats()
    try:
        with _stop_on_signals(stop):
            while not stop.is_set():
                try:
                    one = forward(poller, boundary, publish)
                except (ImapUnavailable, PublishError) as exc:
                    if once:
                        raise
                    log.warning("imap %s: %s; retrying in %g s", mailbox_id, exc, interval)
                else:
                    stats.polls += 1
                    stats.published += one.published
                    stats.rejected += one.rejected
                    stats.ignored.update(one.ignored)
                if once or stop.wait(interval):
                    break
    finally:
        if publisher is not None:
            publisher.close()
    log.info("imap %s: stopped after %d polls, %d events published", mailbox_id, stats.polls, stats.published)
    return stats


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first SIGTERM or SIGINT sets `stop`: the current poll finishes (and commits), then the
    loop ends. A second one interrupts at once (nothing is lost: the poll is not committed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
