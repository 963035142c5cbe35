"""JSONL files -> batches of accepted events and rejected lines, streamed (flat memory).

The file is read in chunks of `chunk_bytes`, never a line at a time: a line longer than an event
may be (MAX_EVENT_BYTES) is rejected with its number and size without ever being held whole,
so memory does not follow the longest line. A batch closes at `batch_size` lines or
`batch_bytes` bytes, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ingest.boundary import Boundary, Rejection
from schemas.errors import InputError
from schemas.events import MAX_EVENT_BYTES, Event

CHUNK_BYTES = 1024 * 1024
BATCH_BYTES = 16 * 1024 * 1024
KEPT_BYTES = 1024  # of a line too long to read: its head, for the rejects file
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True, init=False, kw_only=True)  # kw_only: fields after `origin=""`
class RejectedLine(Rejection):
    """A line of a JSONL file that was rejected: a Rejection whose origin is "FILE:LINE", with
    the line itself (without its line end; only the head of a line too long to read) for the
    rejects file."""

    file: str
    line: int  # 1-based
    raw: bytes

    def __init__(self, file: str, line: int, reason: str, raw: bytes) -> None:
        # In the order of a rejects record; the origin is formatted here, for a rejected line only.
        set_ = object.__setattr__  # frozen
        set_(self, "reason", reason)
        set_(self, "origin", f"{file}:{line}")
        set_(self, "file", file)
        set_(self, "line", line)
        set_(self, "raw", raw)


@dataclass
class Batch:
    events: list[Event]
    rejected: list[RejectedLine]
    bytes_read: int  # cumulative, for progress
    file: str = ""
    lines: list[int] = field(default_factory=list)  # the line number of each event
    raws: list[bytes] = field(default_factory=list)  # the line each event came from
    _index: dict[int, int] | None = field(default=None, repr=False, compare=False)

    def reject(self, event: Event, reason: str) -> RejectedLine:
        """One of this batch's events, rejected later (it could not be derived), as its line."""
        if self._index is None:
            self._index = {id(e): i for i, e in enumerate(self.events)}
        i = self._index[id(event)]
        return RejectedLine(self.file, self.lines[i], reason, self.raws[i].rstrip(b"\r\n"))


def read_batches(
    path: Path,
    boundary: Boundary,
    batch_size: int = 20_000,
    *,
    batch_bytes: int = BATCH_BYTES,
    max_line_bytes: int = MAX_EVENT_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[Batch]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    name = str(path)
    accept = boundary.accept
    with handle:
        lines = _Lines(handle, max_line_bytes, chunk_bytes)
        batch = Batch([], [], 0, name)
        events, rejected, numbers, raws = batch.events, batch.rejected, batch.lines, batch.raws
        held = 0
        for number, line, size in lines:
            if size > max_line_bytes:
                reason = f"line is {size} bytes, more than the {max_line_bytes} bytes an event may have"
                rejected.append(RejectedLine(name, number, reason, line[:KEPT_BYTES]))
            elif not line or line.isspace():
                continue
            else:
                if line.endswith(b"\r"):  # CRLF: the event is the line without its end, as with LF
                    line = line[:-1]
                try:
                    result = accept(line)
                except Exception as exc:  # the boundary never raises; if it does, this line only
                    result = Rejection(f"could not be read ({type(exc).__name__}: {str(exc)[:200]})")
                if isinstance(result, Rejection):
                    rejected.append(RejectedLine(name, number, result.reason, line.rstrip(b"\r\n")))
                else:
                    events.append(result)
                    numbers.append(number)
                    raws.append(line)
            held += len(line)
            if len(events) + len(rejected) >= batch_size or held >= batch_bytes:
                batch.bytes_read = lines.consumed
                yield batch
                batch = Batch([], [], 0, name)
                events, rejected, numbers, raws = batch.events, batch.rejected, batch.lines, batch.raws
                held = 0
        batch.bytes_read = lines.consumed
        yield batch


class _Lines:
    """The lines of a binary file as (number, line, size), read `chunk_bytes` at a time.

    `line` has no "\\n" (the "\\r" of a CRLF stays); `size` is its length without the line end.
    A line longer than `limit` comes as its first KEPT_BYTES with its full size, and no more of
    it is ever held. `consumed` counts the bytes of the lines given so far, line ends and a
    byte-order mark included."""

    def __init__(self, handle: BinaryIO, limit: int, chunk_bytes: int) -> None:
        self.handle, self.limit, self.chunk_bytes = handle, limit, chunk_bytes
        self.consumed = 0

    def _chunks(self) -> Iterator[bytes]:
        first = self.handle.read(max(self.chunk_bytes, len(_BOM)))
        if first.startswith(_BOM):
            self.consumed, first = len(_BOM), first[len(_BOM) :]
        yield first
        while chunk := self.handle.read(self.chunk_bytes):
            yield chunk

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        keep = self.limit + 1  # a line at the limit, with the CR of a CRLF
        number = 0
        carry, carry_size, carry_cr = b"", 0, False  # the line so far (at most `keep` bytes of it)
        for chunk in self._chunks():
            pieces = chunk.split(b"\n")
            last = pieces.pop()  # the start of a line that goes on in the next chunk
            for piece in pieces:
                number += 1
                if carry_size:
                    size = carry_size + len(piece)
                    line = carry + piece if size <= keep else (carry + piece[:KEPT_BYTES])[:KEPT_BYTES]
                    cr = piece.endswith(b"\r") if piece else carry_cr
                    carry, carry_size = b"", 0
                else:
                    line, size = piece, len(piece)
                    cr = piece.endswith(b"\r")
                self.consumed += size + 1
                yield number, line, size - cr
            if last:
                carry_size += len(last)
                carry_cr = last.endswith(b"\r")
                if carry_size <= keep:
                    carry += last
                elif len(carry) < KEPT_BYTES:
                    carry = (carry + last[:KEPT_BYTES])[:KEPT_BYTES]
        if carry_size:
            self.consumed += carry_size
            yield number + 1, carry, carry_size - carry_cr
