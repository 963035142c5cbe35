"""A function mailbox's mail archive (`.eml` files, an mbox, a Maildir) -> mail events, threaded whole.

The archive is known whole, so threads are found as notmuch and JWZ find them rather than as
the live poller must (ingest/imap/poller.py, one poll at a time): every `Message-ID`,
`In-Reply-To` and `References` id of a message joins one thread, also through ids of messages
that are not in the archive; Outlook's `Thread-Index` joins messages that carry no
`References`; a reply of the mailbox without any of these joins the latest received message
with the same subject, as the poller does. Several PATHs (an inbox and a sent folder exported
apart) are one archive. Only headers are read, never a body. All messages of all PATHs are read
first (a few fields each), then one Record per message is given, in reading order
(docs/sources.md, "Mail archives").
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ingest.imap.headers import header_ids, header_text, ignore_reason, normal_subject, sender_of
from ingest.sources.records import Record, raw_event, stable_id
from schemas.events import in_time_range

DUPLICATE = "duplicate of an earlier message (same Message-ID)"
NO_DATE = "no date"  # neither Date, Received nor an mbox From_ line gives a time with an offset
MAX_HEADER_BYTES = 256 * 1024  # a message's header is a few KiB; more is read as body
_THREAD_INDEX_ROOT = 22  # bytes: a FILETIME (6) and the conversation's GUID (16); replies add 5 each
_MINUS_ZERO = re.compile(r"-0000\b")  # RFC 5322: UTC, the sender's zone unknown
_FROM_LINE_DATE = re.compile(r"(\w{3}) +(\d{1,2}) (\d{1,2}):(\d\d)(?::(\d\d))? (\d{4})")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_BLANK = (b"\n", b"\r\n")


@dataclass(slots=True)
class _Message:
    """What threading and the event need of one message; `sender` and `subject` are personal data."""

    origin: str
    message_id: str
    links: tuple[str, ...]  # ids it joins: References, In-Reply-To, a Thread-Index root
    root: str  # its thread's root as far as it knows: References[0], else In-Reply-To, else itself
    in_reply_to: str | None
    sender: str | None
    subject: str
    own: bool  # written by the mailbox: a reply
    time: datetime | None
    ignore: str | None
    text: str = ""  # the header as read, only when it is rejected (no date)


def read_mail_archive(
    path: Path | Sequence[Path], mailbox: str, own_addresses: Collection[str], *, source: str | None = None
) -> Iterator[Record]:
    """One Record per message of the archive at `path`: a single message file, an mbox file
    (first line `From `, unless named `*.eml`), or a directory: its `*.eml` files and its
    Maildirs' messages (directories with `cur/` and `new/`, such as `.Sent` in Maildir++), at
    any depth.

    `path` may be several PATHs (an inbox and a sent folder exported apart): they are one
    archive, read in the order given, threaded and de-duplicated together (a copy in two PATHs
    counts once, the first read). A record's origin is then prefixed by its PATH's name (the
    PATH as given when its name is empty or another PATH's too): `inbox.mbox:mbox:3`,
    `Maildir/cur/1.eml`, `saved.eml`; with one PATH it is relative to that PATH, as before.

    A message From one of `own_addresses` (the mailbox's address and its aliases, any case) is
    `mail.replied`, any other `mail.received`. `source` defaults to `mail/{mailbox}`. Raises
    FileNotFoundError at once, before any is read, when a PATH does not exist; a message that
    cannot be read is a rejected Record."""
    paths = [path] if isinstance(path, Path) else list(path)
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(p))
    own = frozenset(a.strip().casefold() for a in own_addresses if a.strip())
    return _records(paths, mailbox, own, source or f"mail/{mailbox}")


def _records(paths: list[Path], mailbox: str, own: frozenset[str], source: str) -> Iterator[Record]:
    """Read every header of every PATH first (threads are known only then), then give the
    Records in reading order."""
    read: list[_Message | Record] = []
    seen: set[str] = set()
    for origin, head in _all_heads(paths):
        if isinstance(head, str):  # the file could not be read: the reason
            read.append(Record(origin, rejected=head))
            continue
        try:
            msg = _message(origin, head, mailbox, own)
        except Exception as exc:  # whatever the bytes, a Record: never an exception
            read.append(Record(origin, rejected=f"header cannot be read ({type(exc).__name__})", text=_shown(head)))
            continue
        if msg.message_id in seen:
            read.append(Record(origin, ignored=DUPLICATE))
        else:
            seen.add(msg.message_id)
            read.append(msg)
    threads = _threads([m for m in read if isinstance(m, _Message)])
    for item in read:
        yield item if isinstance(item, Record) else _record(item, threads[item.message_id], mailbox, source)


def _record(msg: _Message, thread: str, mailbox: str, source: str) -> Record:
    if msg.ignore is not None:
        return Record(msg.origin, ignored=msg.ignore)
    if msg.time is None:
        return Record(msg.origin, rejected=NO_DATE, text=msg.text)
    try:
        event_id = stable_id("mail", mailbox, msg.message_id)
        if msg.own:
            data: dict[str, Any] = {"mailbox": mailbox, "message_id": msg.message_id, "thread_id": thread}
            if msg.in_reply_to is not None:
                data["in_reply_to"] = msg.in_reply_to
            event = raw_event("mail.replied", event_id, source, msg.time, data)
        else:
            data = {"mailbox": mailbox, "message_id": msg.message_id, "thread_id": thread, "sender": msg.sender}
            if msg.subject:
                data["subject"] = msg.subject
            event = raw_event("mail.received", event_id, source, msg.time, data)
    except Exception as exc:  # e.g. a time that cannot be written in UTC
        return Record(msg.origin, rejected=f"cannot be made an event ({type(exc).__name__})", text=msg.text)
    return Record(msg.origin, events=(event,))


# -- threads ------------------------------------------------------------------------------------


def _threads(messages: list[_Message]) -> dict[str, str]:
    """Message-ID -> thread id. Every id a message names joins its thread (union-find over ids,
    known or not); a reply of the mailbox naming none joins the subject's latest received
    message. A thread's id is the root named by its earliest message (by time, then id):
    for an ordinary thread the first message's own id, whichever of its messages are present,
    which is also the id the live poller gives it."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # either way: the thread id is chosen below

    for msg in messages:
        find(msg.message_id)
        for link in msg.links:
            union(msg.message_id, link)
    for reply, received in _subject_matches(messages):
        union(reply.message_id, received.message_id)
    first: dict[str, _Message] = {}
    for msg in messages:
        top = find(msg.message_id)
        best = first.get(top)
        if best is None or _order(msg) < _order(best):
            first[top] = msg
    return {msg.message_id: first[find(msg.message_id)].root for msg in messages}


def _order(msg: _Message) -> tuple[bool, datetime, str]:
    return (msg.time is None, msg.time or datetime.max.replace(tzinfo=UTC), msg.message_id)


def _subject_matches(messages: list[_Message]) -> Iterator[tuple[_Message, _Message]]:
    """(reply, received message) for each reply of the mailbox without threading headers: the
    latest received message with the same normalised subject, not after the reply (the live
    poller's fallback, docs/imap.md "Threads", step 4)."""
    received: dict[str, list[_Message]] = {}
    for msg in messages:
        if not msg.own and msg.ignore is None and msg.time is not None and msg.subject:
            received.setdefault(normal_subject(msg.subject), []).append(msg)
    for reply in messages:
        if not reply.own or reply.links or reply.time is None or not reply.subject:
            continue
        at = reply.time
        earlier = [m for m in received.get(normal_subject(reply.subject), ()) if m.time is not None and m.time <= at]
        if earlier:
            yield reply, max(earlier, key=_order)


# -- one message's header -------------------------------------------------------------------------


def _message(origin: str, head: bytes, mailbox: str, own: frozenset[str]) -> _Message:
    headers = BytesHeaderParser().parsebytes(head)
    ids = header_ids(headers["Message-ID"])
    message_id = _clean(ids[0]) if ids else _stand_in(head, mailbox)
    references = [_clean(i) for i in header_ids(headers["References"])]
    in_reply_to = [_clean(i) for i in header_ids(headers["In-Reply-To"])]
    links = list(dict.fromkeys(references + in_reply_to))
    if not references and (conversation := _thread_index(headers)) is not None:
        links.append(conversation)
    root = references[0] if references else in_reply_to[0] if in_reply_to else message_id
    sender = _sender(headers)
    time = _time(headers)
    return _Message(
        origin=origin,
        message_id=message_id,
        links=tuple(i for i in links if i != message_id),
        root=root,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        sender=sender,
        subject=_clean(header_text(headers["Subject"])),
        own=sender is not None and sender.casefold() in own,
        time=time,
        ignore=ignore_reason(headers, sender),
        text=_shown(head) if time is None else "",
    )


def _sender(headers: Message) -> str | None:
    sender = sender_of(headers)  # as the IMAP poller reads it
    return _clean(sender) if sender is not None else None


def _thread_index(headers: Message) -> str | None:
    """Outlook's conversation: the first 22 bytes of `Thread-Index` (base64), the same in every
    message of it. A link, never a thread id (that is always a message's id)."""
    value = "".join(header_text(headers["Thread-Index"]).split())
    if not value:
        return None
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _THREAD_INDEX_ROOT:
        return None
    return "thread-index:" + base64.b64encode(raw[:_THREAD_INDEX_ROOT]).decode()


def _time(headers: Message) -> datetime | None:
    """`Date` with its offset; else the newest `Received` hop's date (delivery to the mailbox);
    else the mbox `From_` line's date (UTC, as mbox writers put it). The first in the accepted
    range wins; a date outside it is still given when it is all there is (the boundary says why
    it rejects it)."""
    received = headers.get_all("Received") or []
    candidates = [
        _parse_date(header_text(headers["Date"])),
        _parse_date(header_text(received[0]).rpartition(";")[2]) if received else None,
        _from_line_date(headers.get_unixfrom() or ""),
    ]
    dated = [t for t in candidates if t is not None]
    return next((t for t in dated if in_time_range(t)), dated[0] if dated else None)


def _parse_date(value: str) -> datetime | None:
    """An RFC 5322 date with its offset (named zones such as `PST` and `GMT` too). A date
    without a zone is the sender's unknown local time: not used, except `-0000` (UTC)."""
    if not value.strip():
        return None
    try:
        t = parsedate_to_datetime(value)
        if t.tzinfo is None:
            if not _MINUS_ZERO.search(value):
                return None
            t = t.replace(tzinfo=UTC)
        t.astimezone(UTC)  # a year-1 date with a positive offset cannot be written in UTC
    except Exception:  # the ways a malformed date fails (ValueError, TypeError, IndexError, OverflowError)
        return None
    return t


def _from_line_date(line: str) -> datetime | None:
    """`From sender@example.org Tue Nov 17 21:28:37 2009` (asctime, UTC) -> its time."""
    m = _FROM_LINE_DATE.search(line)
    if m is None or m[1].lower() not in _MONTHS:
        return None
    try:
        return datetime(
            int(m[6]), _MONTHS.index(m[1].lower()) + 1, int(m[2]), int(m[3]), int(m[4]), int(m[5] or 0), tzinfo=UTC
        )
    except ValueError:
        return None


def _stand_in(head: bytes, mailbox: str) -> str:
    """A Message-ID for a message without one, from its header fields: the same in every copy
    and layout (line ends and the mbox From_ line left out)."""
    lines = [line.rstrip(b"\r\n") for line in head.splitlines(keepends=True)]
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    digest = hashlib.sha256(b"\n".join(lines)).hexdigest()[:32]
    return f"<{digest}@{mailbox}.archive.invalid>"


def _clean(text: str) -> str:
    """Lone surrogates (undecodable 8-bit bytes) replaced, so the text encodes as JSON."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _shown(head: bytes) -> str:
    return head.decode("utf-8", "replace")


# -- layouts: where the messages are --------------------------------------------------------------


def _all_heads(paths: list[Path]) -> Iterator[tuple[str, bytes | str]]:
    """(origin, header bytes or why it cannot be read) per message of every PATH in turn; with
    several PATHs each origin names its PATH (`_labels`)."""
    if len(paths) == 1:
        yield from _heads(paths[0])
        return
    for p, label in zip(paths, _labels(paths), strict=True):
        yield from _heads(p, label)


def _labels(paths: list[Path]) -> list[str]:
    """Each PATH's name, or the PATH as given when its name is empty (`.`) or another PATH's
    too (`a/Maildir` and `b/Maildir`): the origins of two PATHs never look alike."""
    names = Counter(p.name for p in paths)
    return [p.name if p.name and names[p.name] == 1 else p.as_posix() for p in paths]


def _heads(path: Path, label: str | None = None) -> Iterator[tuple[str, bytes | str]]:
    """(origin, header bytes) per message, or (origin, why it cannot be read). Under a `label`
    (one of several PATHs) an origin names the PATH: a path below a directory
    (`Maildir/cur/1`), a message of an mbox (`inbox.mbox:mbox:3`), a message file itself
    (`saved.eml`)."""
    heads: Iterator[tuple[str, bytes | str]]
    if path.is_dir():
        heads = _files(path, _message_files(path))
        if label is None:
            yield from heads
        else:
            yield from ((label if o == "." else f"{label}/{o}", h) for o, h in heads)
    elif path.suffix.lower() != ".eml" and _starts_with_from(path):
        heads = _mbox(path)
        yield from heads if label is None else ((f"{label}:{o}", h) for o, h in heads)
    else:
        heads = _files(path.parent, iter([path]))
        yield from heads if label is None else ((label, h) for _, h in heads)


def _message_files(root: Path) -> Iterator[Path | str]:
    """The message files under `root` in a stable order (paths sorted), or why a directory
    cannot be listed: every file in a Maildir's `cur/` and `new/` (at any depth, so Maildir++
    folders and several maildirs side by side), and every other `*.eml` file. A Maildir's
    `tmp/` holds deliveries under way: not read."""
    problems: list[str] = []

    def note(exc: OSError) -> None:
        problems.append(exc.filename or str(root))

    for top, dirs, files in os.walk(root, onerror=note):
        dirs.sort()
        here = Path(top)
        in_maildir = here.name in ("cur", "new", "tmp") and _is_maildir(here.parent)
        if in_maildir and here.name == "tmp":
            continue
        for name in sorted(files):
            if not name.startswith(".") and (in_maildir or name.lower().endswith(".eml")):
                yield here / name
    yield from problems


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _files(root: Path, paths: Iterator[Path | str]) -> Iterator[tuple[str, bytes | str]]:
    for p in paths:
        if isinstance(p, str):
            yield _relative(Path(p), root), "directory cannot be read"
            continue
        origin = _relative(p, root)
        try:
            with p.open("rb") as f:
                yield origin, _read_head(f)
        except OSError as exc:
            yield origin, f"file cannot be read ({type(exc).__name__})"


def _relative(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def _read_head(f: Any) -> bytes:
    """The header (up to the first empty line, at most MAX_HEADER_BYTES), the body not read."""
    lines: list[bytes] = []
    size = 0
    while size < MAX_HEADER_BYTES:
        line = f.readline(MAX_HEADER_BYTES - size)
        if not line or line in _BLANK:
            break
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def _starts_with_from(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False  # read as one message file: its Record says it cannot be read


def _mbox(path: Path) -> Iterator[tuple[str, bytes | str]]:
    """An mbox: a message begins at each line starting `From ` (as the `mailbox` module splits
    it; writers escape such lines in bodies as `>From `). Only the headers are kept."""
    n = 0
    head: list[bytes] = []
    in_header = False
    size = 0
    try:
        with path.open("rb") as f:
            for line in f:
                if line.startswith(b"From "):
                    if n:
                        yield f"mbox:{n}", b"".join(head)
                    n, head, in_header, size = n + 1, [line], True, len(line)
                elif in_header:
                    if line in _BLANK or size >= MAX_HEADER_BYTES:
                        in_header = False
                    else:
                        head.append(line)
                        size += len(line)
    except OSError as exc:
        yield f"mbox:{max(n, 1)}", f"mbox cannot be read further ({type(exc).__name__})"
        return
    if n:
        yield f"mbox:{n}", b"".join(head)
