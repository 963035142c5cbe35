"""Tailing a growing log file (Asterisk's queue_log) with a checkpoint that survives rotation.

`Follower.read()` gives the whole lines written since the last read (a partial last line waits
for its newline); `commit(state)` records, atomically, how far the lines given so far were
published, with the translator's state. The checkpoint is a small JSON file: the file's device
and inode, the byte offset and number of the last published line, and a fingerprint (a hash of
the file's first line) that tells the same file from a new one with the same inode or size.

Rotation (logrotate and the like):
- rename and create (`create`): the old file keeps its inode under the rotated name; the follower
  reads the open old file to its end (a last line without newline there is final and is given),
  then the new file from its start;
- copytruncate: the file shrinks below the offset, or its first line changes: the lines written
  after the offset before the copy are in the copy (a sibling whose first line has the
  fingerprint): they are read from there, then the truncated file from its start;
- a restart (a new Follower on the checkpoint): the checkpoint's file is found again, as the file
  itself or, rotated meanwhile, as a sibling named like it (`queue_log.1`, `queue_log-20240601`)
  with the same inode or first line; its rest is read before the current file.
- more than one rotation between two looks (or while stopped): after a rotated file's rest, the
  siblings rotated after it are read whole, oldest first (by mtime, then `.2` before `.1`,
  `-20240601` before `-20240608`), then the file itself; a compressed one among them is counted.

At-least-once: a line is never skipped, and after a crash the lines given but not committed are
given again (the translator's stable ids make that harmless). A rotated file that is gone or
compressed before its rest was read is counted in `lost_rotations` (logrotate's `delaycompress`
keeps the newest rotated file readable), and so is copytruncate's own race (lines written between
its copy and its truncation are in neither file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ingest.atomic_file import write_atomically
from ingest.sources.queue_log import QueueLogTranslator
from ingest.sources.records import Record
from schemas.errors import InputError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_LINE = 64 * 1024  # a longer line is given cut (and is rejected); without a newline, in pieces
FINGERPRINT_BYTES = 4096  # the first line, up to this many bytes, identifies a file
VERSION = 1
# A rotated file with one of these endings cannot be read as lines (logrotate's `compress`).
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lzo", ".Z", ".zip")
_NUMBERED = re.compile(r"\.(\d+)")


class FollowError(InputError):
    """A checkpoint that cannot be read or written: one line saying which file and why (the CLI
    prints an InputError as it is, not as a traceback)."""


@dataclass
class _Open:
    handle: BinaryIO
    name: str  # for origins: the name the file had when opened
    ident: tuple[int, int]  # (st_dev, st_ino)
    offset: int  # bytes given as whole lines
    line: int  # lines given
    fingerprint: str | None  # of the first line, once it is whole


def _fingerprint_of(handle: BinaryIO) -> str | None:
    """The hash of the file's first line (None until it has a newline)."""
    handle.seek(0)
    head = handle.read(FINGERPRINT_BYTES)
    end = head.find(b"\n")
    if end < 0:
        return hashlib.sha256(head).hexdigest() if len(head) >= FINGERPRINT_BYTES else None
    return hashlib.sha256(head[: end + 1]).hexdigest()


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _suffix_rank(base: str, name: str) -> tuple[int, int, str]:
    """Rotation order by name, older first: `.2` before `.1` (logrotate's numbering counts up with
    age), other suffixes (`-20240601`, dateext) in name order; a compression ending is ignored."""
    suffix = name[len(base) :]
    for ext in COMPRESSED:
        if suffix.endswith(ext):
            suffix = suffix[: -len(ext)]
            break
    m = _NUMBERED.fullmatch(suffix)
    return (0, -int(m[1]), "") if m else (1, 0, suffix)


class Follower:
    """Whole new lines of `path`, across rotations, with a checkpoint at `checkpoint_path`."""

    def __init__(self, path: str | Path, checkpoint_path: str | Path, poll_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.checkpoint_path = Path(checkpoint_path)
        self.poll_seconds = poll_seconds
        self.lost_rotations = 0
        self.state: dict[str, Any] = {}  # the translator state saved with the last commit
        self._current: _Open | None = None
        self._then_path = False  # reading a rotated file: newer rotated ones, then `path`, come next
        self._done: set[tuple[int, int]] = set()  # rotated files read (or counted lost) since the last switch
        self._missing_told = False  # the warning that `path` does not exist is given once
        self._check_writable()
        self._resume(self._load())

    # -- checkpoint ---------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        """Fail now, before anything is published, if the checkpoint could not be written later."""
        where = self.checkpoint_path
        if where.is_dir():
            raise FollowError(f"{where}: the checkpoint is a directory; give a file name")
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise FollowError(f"{where}: the checkpoint's directory {where.parent} is not a directory") from None
        except OSError as exc:
            raise FollowError(f"{where}: cannot create the checkpoint's directory ({_why(exc)})") from None
        try:
            fd, probe = tempfile.mkstemp(dir=where.parent, prefix=f".{where.name}.", suffix=".probe")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise FollowError(f"{where}: cannot write in the checkpoint's directory ({_why(exc)})") from None

    def _load(self) -> dict[str, Any] | None:
        try:
            raw = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FollowError(f"{self.checkpoint_path}: cannot read the checkpoint ({_why(exc)})") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError
            int(data["dev"]), int(data["ino"]), int(data["offset"]), int(data["line"])
        except (ValueError, KeyError, TypeError):
            raise FollowError(
                f"{self.checkpoint_path}: not a follow checkpoint (move it away to read the file from its start)"
            ) from None
        self.state = data.get("state") or {}
        try:  # a damaged translator state is told here, with the file's name, before anything is read
            QueueLogTranslator(None, self.state)
        except InputError as exc:
            raise FollowError(f"{self.checkpoint_path}: {exc}") from None
        return data

    def commit(self, state: Mapping[str, Any] | None = None) -> None:
        """Record that every line given so far was published (atomically: temp file, fsync, rename)."""
        cur = self._current
        if state is not None:
            self.state = dict(state)
        data = {
            "version": VERSION,
            "path": str(self.path),
            "dev": cur.ident[0] if cur else 0,
            "ino": cur.ident[1] if cur else 0,
            "offset": cur.offset if cur else 0,
            "line": cur.line if cur else 0,
            "fingerprint": cur.fingerprint if cur else None,
            "state": self.state,
        }
        try:
            write_atomically(self.checkpoint_path, json.dumps(data, separators=(",", ":")).encode())
        except OSError as exc:
            raise FollowError(f"{self.checkpoint_path}: cannot write the checkpoint ({_why(exc)})") from None

    # -- opening --------------------------------------------------------------------------------------

    def _open(self, path: Path, offset: int = 0, line: int = 0) -> _Open | None:
        try:
            handle = path.open("rb")
        except OSError:
            return None
        return _Open(handle, path.name, _ident(os.fstat(handle.fileno())), offset, line, _fingerprint_of(handle))

    def _open_path(self) -> _Open | None:
        """The followed file; missing, it is waited for (Asterisk creates it at its first event),
        with one warning until it appears."""
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            if not self._missing_told:
                self._missing_told = True
                if isinstance(exc, FileNotFoundError):
                    log.warning("%s does not exist yet; waiting for it", self.path)
                else:
                    log.warning("%s cannot be opened (%s); trying again", self.path, _why(exc))
            return None
        self._missing_told = False
        st = os.fstat(handle.fileno())
        return _Open(handle, self.path.name, _ident(st), 0, 0, _fingerprint_of(handle))

    def _siblings(self) -> list[Path]:
        """Files beside `path` named like it (its rotated selves), never the checkpoint."""
        try:
            return [
                p
                for p in self.path.parent.iterdir()
                if p.name.startswith(self.path.name)
                and p != self.path
                and p.absolute() != self.checkpoint_path.absolute()
                and p.is_file()
            ]
        except OSError:
            return []

    def _after(self, done: _Open) -> _Open | None:
        """The oldest rotated file newer than `done` (a rotated file read to its end) not read yet;
        None when `path` comes next. Looked up again after each file, so a rotation during the
        catch-up is seen too. A compressed one cannot be read: counted and skipped."""
        self._done.add(done.ident)
        try:
            st = os.fstat(done.handle.fileno())
        except (OSError, ValueError):
            return None
        base, ref_mtime = self.path.name, st.st_mtime
        ref_rank = _suffix_rank(base, done.name)
        try:
            live = _ident(os.stat(self.path))
        except OSError:
            live = (-1, -1)
        newer: list[tuple[float, tuple[int, int, str], Path, os.stat_result]] = []
        for p in self._siblings():
            try:
                pst = os.stat(p)
            except OSError:
                continue
            ident, rank = _ident(pst), _suffix_rank(base, p.name)
            if ident == done.ident:
                ref_rank = rank  # its current name: renamed again since it was opened
                continue
            if ident in self._done or ident == live:
                continue
            newer.append((pst.st_mtime, rank, p, pst))
        newer.sort(key=lambda n: (n[0], n[1]))
        for mtime, rank, p, pst in newer:
            if p.name.endswith(COMPRESSED):
                # Compressing gives the file a new mtime: its name tells its age, if comparable.
                is_newer = rank > ref_rank if rank[0] == ref_rank[0] else mtime > ref_mtime
                if is_newer:
                    self._done.add(_ident(pst))
                    self._lost(f"{p.name}, rotated after the file being read, is compressed")
                continue
            if (mtime, rank) > (ref_mtime, ref_rank):
                f = self._open(p)
                if f is not None:
                    return f
        return None

    def _resume(self, cp: dict[str, Any] | None) -> None:
        """Open where the checkpoint left off: the file itself, or its rotated self, then the file."""
        if cp is None:
            self._current = self._open_path()
            return
        ident, offset, line, fp = (
            (int(cp["dev"]), int(cp["ino"])),
            int(cp["offset"]),
            int(cp["line"]),
            cp.get("fingerprint"),
        )
        here = self._open_path()
        if here is not None and here.ident == ident and self._same_start(here, fp, offset):
            here.offset, here.line = offset, line
            self._current = here
            return
        rotated = self._find_rotated(ident, fp, offset)
        if rotated is not None:
            rotated.offset, rotated.line = offset, line
            if here is not None:
                here.handle.close()
            self._current, self._then_path = rotated, True
            return
        if offset > 0:
            self._lost("the checkpoint's file was rotated and is not found beside it")
        self._current = here

    @staticmethod
    def _same_start(f: _Open, fingerprint: str | None, offset: int) -> bool:
        """`f` still holds the bytes up to `offset` that were read from it (not truncated, not refilled)."""
        size = os.fstat(f.handle.fileno()).st_size
        if size < offset:
            return False
        return fingerprint is None or f.fingerprint == fingerprint

    def _find_rotated(self, ident: tuple[int, int], fingerprint: str | None, offset: int) -> _Open | None:
        """A sibling named like the file (`queue_log.1`): the same inode (renamed) or, for a copy
        (copytruncate), the same first line and at least `offset` bytes."""
        try:
            siblings = sorted(
                p for p in self.path.parent.iterdir() if p.name.startswith(self.path.name) and p != self.path
            )
        except OSError:
            return None
        by_copy: _Open | None = None
        for p in siblings:
            if not p.is_file():
                continue
            f = self._open(p)
            if f is None:
                continue
            if f.ident == ident:
                if by_copy is not None:
                    by_copy.handle.close()
                return f
            if by_copy is None and fingerprint is not None and self._same_start(f, fingerprint, offset):
                by_copy = f
            else:
                f.handle.close()
        return by_copy

    def _lost(self, why: str) -> None:
        self.lost_rotations += 1
        log.warning("%s: %s; lines written to it after the checkpoint were not read", self.path, why)

    # -- reading --------------------------------------------------------------------------------------

    def read(self, max_lines: int = 10_000) -> list[tuple[str, str]]:
        """The whole lines written since the last read, with their origins (`queue_log:12`)."""
        out: list[tuple[str, str]] = []
        while len(out) < max_lines:
            cur = self._current
            if cur is None:
                self._current = self._open_path()
                if self._current is None:
                    return out
                continue
            if not self._then_path and self._truncated(cur):
                continue  # before reading on: bytes past the offset may be another file's by now
            self._read_lines(cur, out, max_lines, final=self._then_path)
            if len(out) >= max_lines:
                break
            if self._then_path:  # a rotated file is read: on to a newer rotated one, or the file
                following = self._after(cur)
                cur.handle.close()
                if following is not None:
                    self._current = following
                else:
                    self._current, self._then_path = self._open_path(), False
                    self._done.clear()
                continue
            if not self._renamed(cur):
                break
        return out

    def _truncated(self, cur: _Open) -> bool:
        """Was the open file truncated in place (copytruncate)? Then switch to the copy's rest."""
        size = os.fstat(cur.handle.fileno()).st_size
        if size >= cur.offset and (cur.fingerprint is None or _fingerprint_of(cur.handle) == cur.fingerprint):
            return False
        copy = self._find_rotated((-1, -1), cur.fingerprint, cur.offset)
        cur.handle.close()
        if copy is not None:
            copy.offset, copy.line = cur.offset, cur.line
            self._current, self._then_path = copy, True
        else:
            self._lost("the file was truncated and its copy is not found beside it")
            self._current = self._open_path()
        return True

    def _renamed(self, cur: _Open) -> bool:
        """At the end of the open file: was it renamed away, with a new file in its place?"""
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # gone for the moment: keep the open file, look again at the next read
        # Until the new file has a line, the writer may not have reopened its log yet (logrotate
        # creates the file before its postrotate tells Asterisk): keep reading the old one.
        if _ident(st) == cur.ident or st.st_size == 0:
            return False
        self._then_path = True
        return True

    @staticmethod
    def _read_lines(cur: _Open, out: list[tuple[str, str]], max_lines: int, final: bool) -> None:
        """Whole lines of `cur` from its offset; with `final`, a last line without newline too."""
        while len(out) < max_lines:
            cur.handle.seek(cur.offset)
            data = cur.handle.read(CHUNK)
            if not data:
                return
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) < MAX_LINE and not final:
                    return  # a partial line: it waits for its newline
                end = min(len(data), MAX_LINE) - 1
            taken = 0
            for raw in data[: end + 1].split(b"\n"):
                if len(out) >= max_lines or taken > end:
                    break
                cur.line += 1
                # A line longer than MAX_LINE is given cut (it is rejected either way).
                out.append((raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"), f"{cur.name}:{cur.line}"))
                taken += len(raw) + 1
            cur.offset += min(taken, end + 1)
            if cur.fingerprint is None and cur.offset > 0:
                cur.fingerprint = _fingerprint_of(cur.handle)

    @property
    def position(self) -> tuple[str, int] | None:
        """The file being read (its name when opened) and the lines of it given so far."""
        cur = self._current
        return (cur.name, cur.line) if cur is not None else None

    def close(self) -> None:
        if self._current is not None:
            self._current.handle.close()
            self._current = None


@dataclass
class FollowStats:
    lines: int = 0
    records: int = 0
    events: int = 0
    batches: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, records: list[Record]) -> None:
        self.records += len(records)
        for r in records:
            self.events += len(r.events)
            if r.ignored:
                self.ignored[r.ignored] += 1
            if r.rejected:
                self.rejected[r.rejected] += 1


def run_follow(
    follower: Follower,
    translator: QueueLogTranslator,
    accept_and_publish: Callable[[list[Record]], None],
    *,
    stop: Callable[[], bool],
    once: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    stats: FollowStats | None = None,
) -> FollowStats:
    """Read, translate, publish, commit, until `stop()` (or, with `once`, until nothing is new).

    The checkpoint moves only after `accept_and_publish` returned, so a failure (it raises) leaves
    the batch to be read again by the next run. Held records stay in the translator's state in
    the checkpoint: a follower is not flushed when it stops. Build the translator with
    `QueueLogTranslator(options, follower.state)` to continue where the last run left off.
    `stats` is kept up to date as it runs (a status line reads it)."""
    stats = stats if stats is not None else FollowStats()
    while not stop():
        batch = follower.read()
        if batch:
            records: list[Record] = []
            for line, origin in batch:
                records += translator.feed(line, origin)
            if records:
                accept_and_publish(records)
            follower.commit(translator.snapshot())
            stats.lines += len(batch)
            stats.batches += 1
            stats.add(records)
            continue
        if once:
            break
        waited = 0.0
        while waited < follower.poll_seconds and not stop():
            step = min(0.1, follower.poll_seconds - waited)
            sleep(step)
            waited += step
    return stats
