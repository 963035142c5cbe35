"""The IMAP ingestor's checkpoint (ingest/imap/source.py): per folder, the UIDVALIDITY and the last
UID read, and the thread of recent message ids and subjects."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec

from ingest.atomic_file import write_atomically
from ingest.imap.errors import ImapError


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
        try:
            write_atomically(self.path, payload)
        except OSError as exc:
            raise ImapError(f"{self.path}: cannot write the IMAP checkpoint ({exc.strerror})") from None
        self.data = data
