"""The follower (ingest/sources/follow.py) on a real file in a temp directory: appended to, a
partial line, rotation by rename and create, copytruncate, and restarts from the checkpoint.

Each test writes lines `L1`, `L2`, … and checks that the lines read over the whole story are
each line once, in order (a restart after a commit re-reads nothing; without a commit it re-reads
the uncommitted lines, at-least-once)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ingest.sources.follow import Follower, FollowError, run_follow
from ingest.sources.queue_log import QueueLogTranslator
from ingest.sources.records import Record


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


def test_a_broken_checkpoint_is_an_error(log: Path, cp: Path) -> None:
    cp.parent.mkdir()
    cp.write_text("{not json")
    with pytest.raises(FollowError, match="not a follow checkpoint"):
        Follower(log, cp)


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
