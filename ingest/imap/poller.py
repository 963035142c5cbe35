"""The IMAP poller (ingest/imap/source.py): what is new in a function mailbox's folders -> mail events."""

from __future__ import annotations

import base64
import imaplib
import logging
import ssl as ssl_lib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.imap.checkpoint import Checkpoint, CheckpointData, FolderMark, SubjectMark
from ingest.imap.errors import ImapError, ImapUnavailable
from ingest.imap.headers import FETCH_ITEMS, Fetched, Role, keyed_digest, normal_subject, parse_fetch, read_message
from ingest.imap.oauth import Xoauth2, one_line
from schemas.events import (
    MailClosed,
    MailClosedData,
    MailEvent,
    MailReceived,
    MailReceivedData,
    MailReplied,
    MailRepliedData,
)
from schemas.tls import verified_context

log = logging.getLogger("ingest.imap.source")  # one logger name for the whole IMAP ingestor

_ROLE_ORDER: dict[Role, int] = {"inbox": 0, "sent": 1, "done": 2}  # as the derivation orders ties
MAX_THREADS = 10_000  # message id -> thread id entries kept in the checkpoint (newest)
MAX_SUBJECTS = 2_000  # subject digest -> thread entries kept for the subject fallback


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
        insecure_plaintext: bool = False,
        tls_ca: str | Path | None = None,
        checkpoint: Checkpoint,
        key: bytes = b"",
        timeout: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        token: Callable[[], str] | None = None,
    ) -> None:
        """TLS always, unless `insecure_plaintext`: implicit TLS with `ssl` (IMAPS, port 993),
        else STARTTLS (port 143). The server's certificate is verified against the system's CAs,
        or only against `tls_ca` (a PEM file) when given. No credential is sent before that.

        With `token` (e.g. ingest.imap.oauth.EntraToken) the poller signs in with OAuth2:
        `AUTHENTICATE XOAUTH2` with a token asked for at every poll (the provider caches it), and
        `password` is not used; `user` is the mailbox the token may read (Exchange: the shared
        mailbox's address)."""
        if ssl and insecure_plaintext:
            raise ImapError("--ssl and --insecure-plaintext contradict each other: choose one")
        roles: list[tuple[str | None, Role]] = [(inbox, "inbox"), (sent, "sent"), (done, "done")]
        self.folders = [(name, role) for name, role in roles if name]
        names = [name for name, _ in self.folders]
        if len(set(names)) != len(names):
            raise ImapError(f"the inbox, sent and done folders must differ (got {', '.join(names)})")
        if checkpoint.data.mailbox not in ("", mailbox_id):
            raise ImapError(f"{checkpoint.path}: checkpoint of mailbox '{checkpoint.data.mailbox}', not '{mailbox_id}'")
        self.host, self.port, self.user, self._password = host, port, user, password
        self._token = token
        self.mailbox_id = mailbox_id
        self.source = f"imap/{mailbox_id}"
        self.ssl = ssl
        self.insecure_plaintext = insecure_plaintext
        self._tls = None if insecure_plaintext else _tls_context(tls_ca)
        if insecure_plaintext:
            log.warning(
                "imap %s: --insecure-plaintext: the %s of '%s' and the mail headers cross the network "
                "to %s:%d in clear text, readable by anyone on the way; only for a test server on loopback",
                mailbox_id,
                "password" if token is None else "OAuth2 token",
                user,
                host,
                port,
            )
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
        # The token first: with no token there is nothing to connect for (its errors name Entra).
        token = self._token() if self._token is not None else None
        conn = self._connect(where)
        try:
            self._secure(conn, where)
            if token is None:
                self._login(conn, where)
            else:
                self._authenticate(conn, where, token)
            yield conn
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise ImapUnavailable(f"IMAP at {where} failed ({_reason(exc)})") from None
        except imaplib.IMAP4.error as exc:  # the server answered BAD
            raise ImapError(f"IMAP at {where} refused a command ({_reason(exc)})") from None
        finally:
            with suppress(Exception):
                conn.logout()

    def _connect(self, where: str) -> imaplib.IMAP4:
        try:
            if self.ssl:
                return imaplib.IMAP4_SSL(self.host, self.port, ssl_context=self._tls, timeout=self.timeout)
            return imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except ssl_lib.SSLError as exc:
            raise _tls_refused(where, exc) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapUnavailable(f"cannot reach IMAP at {where} ({_reason(exc)})") from None

    def _secure(self, conn: imaplib.IMAP4, where: str) -> None:
        """STARTTLS unless the connection is TLS already or plaintext was asked for; then check
        that the server takes a login. Nothing secret has been sent when this refuses."""
        if not self.ssl and not self.insecure_plaintext:
            if "STARTTLS" not in conn.capabilities:
                raise ImapError(
                    f"IMAP at {where} does not offer STARTTLS, so the password would cross the network in clear "
                    "text; use --ssl (implicit TLS, usually port 993), or --insecure-plaintext for a test server"
                )
            try:
                conn.starttls(ssl_context=self._tls)  # then asks for the capabilities again, over TLS
            except ssl_lib.SSLError as exc:
                raise _tls_refused(where, exc) from None
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:  # BAD or NO
                raise ImapError(
                    f"IMAP at {where} refused STARTTLS ({_reason(exc)}); the password was not sent"
                ) from None
        if self._token is not None:
            if "AUTH=XOAUTH2" not in conn.capabilities:  # asked before the token is sent
                raise ImapError(f"IMAP at {where} does not offer OAuth2 sign-in (no AUTH=XOAUTH2 capability)")
            return
        if "LOGINDISABLED" in conn.capabilities:
            detail = "without TLS; drop --insecure-plaintext" if self.insecure_plaintext else "(even over TLS)"
            raise ImapError(f"IMAP at {where} does not allow a login {detail} (LOGINDISABLED)")

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

    def _authenticate(self, conn: imaplib.IMAP4, where: str, token: str) -> None:
        """AUTHENTICATE XOAUTH2 (Exchange Online, Gmail, Dovecot's oauth2 passdb); a refusal
        names the server's reason (its NO text and the JSON challenge), never the token."""
        exchange = Xoauth2(self.user, token)
        try:
            conn.authenticate("XOAUTH2", exchange)
        except imaplib.IMAP4.abort:
            raise
        except (imaplib.IMAP4.error, ValueError) as exc:  # NO or BAD; ValueError: a challenge not in base64
            why = "; ".join(part for part in (one_line(str(exc), token), exchange.refusal) if part)
            raise ImapError(f"IMAP at {where} refused the OAuth2 token of '{self.user}' ({why})") from None

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
                digest = keyed_digest(self._key, normal_subject(msg.subject).encode())
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
            mark = state.subjects.get(keyed_digest(self._key, normal_subject(msg.subject).encode()))
            if mark is not None and mark.received_at <= at:
                return mark.thread_id
        return msg.message_id


def _tls_context(ca_file: str | Path | None) -> ssl_lib.SSLContext:
    """Certificate and host name verified (TLS 1.2 or newer): the system's CAs, or only `ca_file`."""
    try:
        return verified_context(ca_file)
    except (OSError, ssl_lib.SSLError) as exc:
        raise ImapError(f"cannot use --tls-ca {ca_file} ({_reason(exc)})") from None


def _tls_refused(where: str, exc: ssl_lib.SSLError) -> ImapError:
    """A certificate that does not verify, or a failed handshake: a configuration to fix, not retried."""
    if isinstance(exc, ssl_lib.SSLCertVerificationError):
        why = exc.verify_message or _reason(exc)
        return ImapError(
            f"IMAP at {where}: the server's TLS certificate is not trusted ({why}); the password was not sent. "
            "For a private CA give its certificate with --tls-ca FILE"
        )
    return ImapError(
        f"IMAP at {where}: TLS handshake failed ({exc.reason or _reason(exc)}); the password was not sent. "
        "--ssl is implicit TLS (usually port 993), without it STARTTLS is used (port 143)"
    )


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
