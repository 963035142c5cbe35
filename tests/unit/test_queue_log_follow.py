"""The follower (ingest/sources/follow.py) on a real file in a temp directory: appended to, a
partial line, rotation by rename and create, copytruncate, and restarts from the checkpoint.

Each test writes lines `L1`, `L2`, … and checks that the lines read over the whole story are
each line once, in order (a restart after a commit re-reads nothing; without a commit it re-reads
the uncommitted lines, at-least-once)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.sources import follow
from ingest.sources.follow import FollowError, run_follow
from ingest.sources.queue_log import QueueLogTranslator
from ingest.sources.records import Record
from schemas.errors import AvailabilityError, InputError

_made: list[follow.Follower] = []


class Follower(follow.Follower):
    """The real follower, each one closed at the end of the test that made it (`closes_followers`):
    most tests here drop a follower that still holds its file open, as a crash would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _made.append(self)


@pytest.fixture(autouse=True)
def closes_followers() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def append(path: Path, *lines: str, end: str = "\n") -> None:
    with path.open("a") as f:
        f.write("".join(f"{x}\n" for x in lines[:-1]) + (f"{lines[-1]}{end}" if lines else ""))


def texts(batch: list[tuple[str, str]]) -> list[str]:
    return [line for line, _ in batch]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "queue_log"


@pytest.fixture
def cp(tmp_path: Path) -> Path:
    return tmp_path / "state" / "follow.json"


def test_appended_lines_and_a_partial_line(log: Path, cp: Path) -> None:
    append(log, "L1", "L2")
    f = Follower(log, cp)
    assert f.read() == [("L1", "queue_log:1"), ("L2", "queue_log:2")]
    assert f.read() == []
    append(log, "L3", "L", end="")  # "L" has no newline yet: it waits
    assert texts(f.read()) == ["L3"]
    append(log, "4")
    assert f.read() == [("L4", "queue_log:4")]


def test_restart_from_the_checkpoint(log: Path, cp: Path) -> None:
    append(log, "L1", "L2")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1", "L2"]
    f.commit({"k": 1})
    append(log, "L3")
    assert texts(f.read()) == ["L3"]  # read, never committed (a crash before publishing)
    f.close()
    saved = json.loads(cp.read_text())
    assert (saved["offset"], saved["line"], saved["state"]) == (6, 2, {"k": 1})  # "L1\nL2\n"
    g = Follower(log, cp)
    assert g.state == {"k": 1}
    assert g.read() == [("L3", "queue_log:3")]  # at-least-once: the uncommitted line again
    g.commit()
    assert Follower(log, cp).read() == []


def test_rename_and_create_while_running(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1"]
    append(log, "L2")
    log.rename(log.with_name("queue_log.1"))
    log.touch()  # logrotate's `create`: an empty new file
    append(log.with_name("queue_log.1"), "L3")  # Asterisk still writes the old file until it reopens
    assert texts(f.read()) == ["L2", "L3"]  # the new file is empty: keep reading the old one
    append(log.with_name("queue_log.1"), "L4", end="")  # a last line the writer never finished
    append(log, "L5")
    assert f.read() == [("L4", "queue_log:4"), ("L5", "queue_log:1")]
    f.commit()
    assert Follower(log, cp).read() == []


def test_rename_and_create_while_stopped(log: Path, cp: Path) -> None:
    append(log, "L1", "L2")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1", "L2"]
    f.commit()
    f.close()
    append(log, "L3")
    log.rename(log.with_name("queue_log.1"))
    append(log, "L4")
    g = Follower(log, cp)
    assert g.read() == [("L3", "queue_log.1:3"), ("L4", "queue_log:1")]
    assert g.lost_rotations == 0


def rotate(log: Path, *lines: str) -> None:
    """logrotate `create` with numbered names: queue_log.N -> .N+1, …, queue_log -> .1, a new queue_log."""
    olds = [p for p in log.parent.glob(f"{log.name}.*") if p.suffix[1:].isdigit()]
    for p in sorted(olds, key=lambda p: -int(p.suffix[1:])):
        p.rename(log.with_name(f"{log.name}.{int(p.suffix[1:]) + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))
    append(log, *lines)


def age(log: Path, mtimes: dict[str, int]) -> None:
    for name, t in mtimes.items():
        os.utime(log.with_name(name), (t, t))


@pytest.mark.parametrize("same_mtime", [False, True])
def test_two_rotations_while_stopped(log: Path, cp: Path, same_mtime: bool) -> None:
    """queue_log -> .1 -> .2 while down: the checkpoint's file (.2) rest, then the whole middle
    file (.1), then the new file; an older rotated file (.3) is not read again."""
    append(log, "OLD")
    rotate(log, "L1")  # "OLD" is now queue_log.1, read long ago
    f = Follower(log, cp)
    f.read()  # the checkpoint starts here, in the file with L1; "OLD" is not this follower's
    f.commit()
    f.close()
    append(log, "L2")
    rotate(log, "L3")
    rotate(log, "L4")
    # Real rotations are hours apart; with equal mtimes (a fast test box) the suffix decides.
    t = 1_700_000_000
    age(log, {n: t for n in ("queue_log.3", "queue_log.2", "queue_log.1", "queue_log")} if same_mtime else
        {"queue_log.3": t, "queue_log.2": t + 100, "queue_log.1": t + 200, "queue_log": t + 300})  # fmt: skip
    g = Follower(log, cp)
    # L2: the rest of the checkpoint's file (its line 2), L3: the middle file, L4: the new file.
    assert g.read() == [("L2", "queue_log.2:2"), ("L3", "queue_log.1:1"), ("L4", "queue_log:1")]
    assert g.lost_rotations == 0
    g.commit()
    assert Follower(log, cp).read() == []


def test_two_rotations_while_running_and_one_during_the_catch_up(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1"]
    append(log, "L2")
    rotate(log, "L3")
    rotate(log, "L4")  # two rotations between two looks
    assert f.read(max_lines=2) == [("L2", "queue_log:2"), ("L3", "queue_log.1:1")]
    f.commit()  # the checkpoint is in the middle file, now queue_log.1
    rotate(log, "L5")  # and a third before the next look: L4's file is queue_log.1 now
    # The origin is the name a file had when opened: L4's was queue_log.1 by then.
    assert f.read() == [("L4", "queue_log.1:1"), ("L5", "queue_log:1")]
    f.close()
    # A restart from the commit in the middle file (now queue_log.2) reads the same lines again.
    g = Follower(log, cp)
    assert g.read() == [("L4", "queue_log.1:1"), ("L5", "queue_log:1")]
    assert g.lost_rotations == 0


def test_a_compressed_middle_file_is_counted(log: Path, cp: Path, caplog: pytest.LogCaptureFixture) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    f.read()
    f.commit()
    f.close()
    append(log, "L2")
    rotate(log, "L3")
    rotate(log, "L4")
    log.with_name("queue_log.3.gz").write_bytes(b"\x1f\x8b old")  # older: not counted
    log.with_name("queue_log.1").rename(log.with_name("queue_log.1.gz"))  # L3's file, compressed
    t = 1_700_000_000  # compressing gives the file a new mtime: its name tells its age
    age(log, {"queue_log.3.gz": t + 400, "queue_log.2": t, "queue_log.1.gz": t + 400, "queue_log": t + 300})
    with caplog.at_level(logging.WARNING, "ingest.sources.follow"):
        g = Follower(log, cp)
        assert texts(g.read()) == ["L2", "L4"]  # L3 is in the compressed file: lost, and said
    assert g.lost_rotations == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{log}: queue_log.1.gz, rotated after the file being read, is compressed;"
        " lines written to it after the checkpoint were not read"
    ]


def test_a_checkpoint_beside_the_log_is_not_read_as_a_rotated_file(tmp_path: Path) -> None:
    log, cp = tmp_path / "queue_log", tmp_path / "queue_log.checkpoint.json"
    append(log, "L1")
    f = Follower(log, cp)
    f.read()
    f.commit()
    f.close()
    append(log, "L2")
    rotate(log, "L3")
    assert texts(Follower(log, cp).read()) == ["L2", "L3"]


def test_a_missing_file_is_waited_for(log: Path, cp: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "ingest.sources.follow"):
        f = Follower(log, cp)
        assert f.read() == [] and f.read() == []
        append(log, "L1")  # Asterisk creates it at its first event
        assert f.read() == [("L1", "queue_log:1")]
    # One warning, not one per look.
    assert [r.getMessage() for r in caplog.records] == [f"{log} does not exist yet; waiting for it"]


def test_copytruncate_while_running(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1"]
    f.commit()
    append(log, "L2")
    shutil.copyfile(log, log.with_name("queue_log.1"))
    os.truncate(log, 0)
    append(log, "L3")
    assert texts(f.read()) == ["L2", "L3"]


def test_copytruncate_regrown_past_the_offset(log: Path, cp: Path) -> None:
    """Truncated and written again beyond the old offset before the next look: the first line tells."""
    append(log, "L1")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1"]
    shutil.copyfile(log, log.with_name("queue_log.1"))
    os.truncate(log, 0)
    append(log, "L2-longer", "L3")
    assert texts(f.read()) == ["L2-longer", "L3"]


def test_copytruncate_while_stopped(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    assert texts(f.read()) == ["L1"]
    f.commit()
    f.close()
    append(log, "L2")
    shutil.copyfile(log, log.with_name("queue_log.1"))
    os.truncate(log, 0)
    append(log, "L3")
    assert texts(Follower(log, cp).read()) == ["L2", "L3"]


def test_a_rotated_file_that_is_gone_is_counted(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    f.read()
    f.commit()
    f.close()
    append(log, "L2")
    log.unlink()  # rotated and compressed away before the follower came back
    append(log, "L3")
    g = Follower(log, cp)
    assert texts(g.read()) == ["L3"]
    assert g.lost_rotations == 1


def one_line_error(log: Path, cp: Path) -> str:
    """The message the CLI prints for Follower(log, cp): an InputError, so one line, not a traceback."""
    with pytest.raises(FollowError) as caught:
        Follower(log, cp)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, AvailabilityError)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{cp}: ")
    return message


def test_a_broken_checkpoint_is_an_error(log: Path, cp: Path) -> None:
    cp.parent.mkdir()
    cp.write_text("{not json")
    assert "not a follow checkpoint" in one_line_error(log, cp)


def test_a_directory_as_checkpoint_is_an_error(log: Path, cp: Path) -> None:
    cp.mkdir(parents=True)
    assert one_line_error(log, cp) == f"{cp}: the checkpoint is a directory; give a file name"


def test_a_checkpoint_whose_directory_cannot_be_made_is_an_error(log: Path, tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")  # a file where the directory should be
    cp = tmp_path / "state" / "follow.json"
    assert one_line_error(log, cp) == f"{cp}: the checkpoint's directory {cp.parent} is not a directory"


def test_a_checkpoint_directory_not_writable_is_an_error(log: Path, cp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Told at start, before anything is published (chmod would not stop root: the probe fails instead)."""

    def refuse(**_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ingest.sources.follow.tempfile.mkstemp", refuse)
    message = one_line_error(log, cp)
    assert message == f"{cp}: cannot write in the checkpoint's directory (Permission denied)"


def test_a_damaged_state_in_the_checkpoint_is_an_error(log: Path, cp: Path) -> None:
    append(log, "L1")
    f = Follower(log, cp)
    f.read()
    f.commit({"offered": ["c1"]})
    f.close()
    saved = json.loads(cp.read_text())
    saved["state"]["offered"] = {"c1": None}  # an object, not a list
    cp.write_text(json.dumps(saved))
    assert one_line_error(log, cp).endswith("checkpoint state unreadable (offered: not as a snapshot writes it)")


def test_run_follow_publishes_then_commits(log: Path, cp: Path) -> None:
    append(
        log,
        "1700000000|NONE|NONE|NONE|QUEUESTART|",
        "1700000010|c1|q|NONE|ENTERQUEUE||0701234567|1",
        "1700000020|c1|q|SIP/7|CONNECT|10|c1m|9",
        "1700000030|c9|q2|NONE|ENTERQUEUE||7|1",  # held: agent 7 may be transferring c1
    )
    published: list[Record] = []
    f = Follower(log, cp, poll_seconds=0.01)
    stats = run_follow(f, QueueLogTranslator(None, f.state), published.extend, stop=lambda: False, once=True)
    assert (stats.lines, stats.records, stats.events) == (4, 3, 4)
    assert stats.ignored == {"QUEUESTART: a system event": 1}
    f.close()
    # A restart: the held entry is in the checkpoint's state, so the transfer still ties it to c1.
    append(log, "1700000031|c9|q|SIP/7|ATTENDEDTRANSFER|APP|Queue|10|11|1")
    g = Follower(log, cp, poll_seconds=0.01)
    run_follow(g, QueueLogTranslator(None, g.state), published.extend, stop=lambda: False, once=True)
    queued = [e["data"] for r in published for e in r.events if e["type"] == "call.queued"]
    assert queued == [{"call_id": "c1", "queue": "q"}, {"call_id": "c1", "queue": "q2"}]
    assert sorted(r.origin for r in published) == [f"queue_log:{n}" for n in range(1, 6)]


def test_run_follow_does_not_commit_a_failed_publish(log: Path, cp: Path) -> None:
    append(log, "1700000010|c1|q|NONE|ENTERQUEUE||0701234567|1")

    def fail(records: list[Record]) -> None:
        raise ConnectionError("broker down")

    f = Follower(log, cp)
    with pytest.raises(ConnectionError):
        run_follow(f, QueueLogTranslator(), fail, stop=lambda: False, once=True)
    assert not cp.exists()
    assert texts(Follower(log, cp).read()) == ["1700000010|c1|q|NONE|ENTERQUEUE||0701234567|1"]


def test_run_follow_stops_when_told(log: Path, cp: Path) -> None:
    append(log, "1700000000|NONE|NONE|NONE|QUEUESTART|")
    calls = iter([False, False, False, True])
    sleeps: list[float] = []
    stats = run_follow(
        Follower(log, cp, 0.05),
        QueueLogTranslator(),
        lambda r: None,
        stop=lambda: next(calls, True),
        sleep=sleeps.append,
    )
    assert stats.lines == 1 and sleeps  # it read, then waited for more until stopped
