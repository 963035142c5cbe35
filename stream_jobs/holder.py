"""Who holds an embedded warehouse directory, and what to use instead.

The embedded engine belongs to one process: chDB locks `<dir>/status` (flock) while a process has
it open and writes that process's id there. A second process would get chDB's raw "Cannot lock
file … Another server instance" on stderr and an unhelpful exception; `held_by` looks first, so
the user gets one line naming the holder and what to do. The stream worker also writes
`holder.json` beside the lock: its command, the URL of its read-only SQL interface and its
control socket (how `rederive` reaches it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

HOLDER_FILE = "holder.json"
CONTROL_SOCKET = "control.sock"


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str  # as started, e.g. "availability stream --warehouse /var/lib/availability/warehouse"
    since: str  # when it opened the warehouse (the engine's "Started at", local time)
    sql_url: str | None = None  # the worker's read-only ClickHouse HTTP interface
    control: str | None = None  # the worker's control socket

    def line(self, shown: str) -> str:
        """One line: who holds it and what to use instead."""
        who = f"--warehouse {shown}: held by `{self.command}` (pid {self.pid}, since {self.since})"
        if self.sql_url is None:
            return f"{who}; an embedded warehouse belongs to one process: wait until it ends"
        return (
            f"{who}, which owns it while it runs: read it through the worker with --warehouse {self.sql_url} "
            "(user and password: AVAILABILITY_SQL_USER, AVAILABILITY_SQL_PASSWORD); send it events through Kafka "
            "(`availability publish`); `availability rederive` goes through it; or stop it first"
        )


def held_by(directory: Path) -> Holder | None:
    """The other process holding the engine in `directory`, or None if none does."""
    status = directory / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None  # never opened, or not a warehouse
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # the engine's exclusive lock: held
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    text = status.read_text(encoding="utf-8", errors="replace")
    pid_found = re.search(r"^PID: (\d+)", text, re.MULTILINE)
    since_found = re.search(r"^Started at: (.+)$", text, re.MULTILINE)
    pid = int(pid_found.group(1)) if pid_found else 0
    if pid == os.getpid():
        return None  # this process's own engine: another handle to it is fine
    since = since_found.group(1).strip() if since_found else "?"
    info = _holder_file(directory, pid)
    if info is not None:
        return Holder(pid, info.get("command") or _command(pid), since, info.get("sql_url"), info.get("control"))
    return Holder(pid, _command(pid), since)


def announce(directory: Path, command: str, sql_url: str | None, control: str | None) -> Path:
    """Write this process's holder file (owner-only, replaced atomically); returns its path."""
    path = directory / HOLDER_FILE
    record = asdict(Holder(os.getpid(), command, "", sql_url, control))
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(temporary, path)
    return path


def withdraw(path: Path) -> None:
    """Remove the holder file if it is still this process's."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def _holder_file(directory: Path, pid: int) -> dict[str, str] | None:
    """The holder file, if the process that holds the lock wrote it (a stale one is ignored)."""
    try:
        info = json.loads((directory / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("pid") == pid else None


def _command(pid: int) -> str:
    """The holder's command line from /proc, from its `availability` on (else the program)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "another process"
    args = [a for a in args if a]
    if not args:
        return "another process"
    names = [Path(a).name for a in args]
    start = names.index("availability") if "availability" in names else 0
    text = " ".join(["availability", *args[start + 1 :]] if start or names[0] == "availability" else args)
    return text if len(text) <= 100 else text[:97] + "..."
