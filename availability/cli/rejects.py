"""Rejected lines of `process` and `publish`, and rejected records of `import`: to a private JSONL
file, or one line each on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.errors import InputError

if TYPE_CHECKING:
    from ingest.jsonl import RejectedLine

EXIT_REJECTED = 2  # `process` and `publish` when some lines were rejected (spec/cli.md)


class RejectsWriter:
    """Rejected lines to a JSONL file (with the original line), or one line each on stderr.

    The file holds raw personal data (callers, senders, subjects), so it is the owner's only
    (0600), also when it existed before. It is checked before any work starts: never one of the
    input files (opening it would empty it), and its directory must exist."""

    def __init__(self, path: str | None, inputs: Sequence[Path] = ()) -> None:
        self.path = path
        self.handle = _open_rejects(path, inputs) if path else None

    def __call__(self, r: RejectedLine) -> None:
        if self.handle is not None:
            event = r.raw.decode("utf-8", "backslashreplace")  # Latin-1 bytes stay visible (\xe5)
            record = {"file": r.file, "line": r.line, "reason": r.reason, "event": event}
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            print(f"{r.origin}: rejected: {r.reason}", file=sys.stderr)  # origin: FILE:LINE

    def record(self, origin: str, reason: str, text: str) -> None:
        """A rejected record of a source (`import`): where it was read, why, and the record."""
        if self.handle is not None:
            self.handle.write(
                json.dumps({"origin": origin, "reason": reason, "record": text}, ensure_ascii=False) + "\n"
            )
        else:
            print(f"{origin}: rejected: {reason}", file=sys.stderr)

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        if self.handle is not None:
            self.handle.close()


def _open_rejects(name: str, inputs: Sequence[Path]) -> Any:
    path = Path(name)
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"--rejects {name}: cannot write (no such directory {parent})")
    for source in inputs:
        try:
            same = path.exists() and os.path.samefile(path, source)
        except OSError:
            same = False
        if same:
            raise InputError(f"--rejects {name}: is the input file {source}; name another file")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InputError(f"--rejects {name}: cannot write ({exc.strerror})") from None
    with contextlib.suppress(OSError):  # not ours to change: the open() above still succeeded
        os.fchmod(fd, 0o600)  # a file made earlier (or by a wider umask) becomes private too
    return os.fdopen(fd, "w", encoding="utf-8")
