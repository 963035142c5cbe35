"""JSONL files -> batches of accepted events and rejected lines, streamed (flat memory)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from availability.errors import InputError
from ingest.boundary import Boundary
from schemas.events import Event


@dataclass(frozen=True)
class Rejected:
    file: str
    line: int  # 1-based
    reason: str
    raw: bytes


@dataclass
class Batch:
    events: list[Event]
    rejected: list[Rejected]
    bytes_read: int  # cumulative, for progress


def read_batches(path: Path, boundary: Boundary, batch_size: int = 20_000) -> Iterator[Batch]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    events: list[Event] = []
    rejected: list[Rejected] = []
    done = 0
    with handle:
        if handle.peek(3)[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark
            done += len(handle.read(3))
        for number, line in enumerate(handle, start=1):
            done += len(line)
            if line.strip():
                result = boundary.accept(line)
                if isinstance(result, str):
                    rejected.append(Rejected(str(path), number, result, line.rstrip(b"\r\n")))
                else:
                    events.append(result)
            if len(events) + len(rejected) >= batch_size:
                yield Batch(events, rejected, done)
                events, rejected = [], []
    yield Batch(events, rejected, done)
