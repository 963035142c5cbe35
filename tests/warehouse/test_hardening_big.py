"""Hardening (issue #7): `availability process` as a real subprocess over a ~100 MB file that
mixes a simulated week with every kind of bad line (item 3, 17 and the "done when" of the issue),
and Ctrl-C during a run (item 7) leaving a load the report names (item 6).

The file is generated once per session; both tests use it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from ingest.simulator import simulate
from schemas.agreements import load_agreements
from schemas.events import encode
from stream_jobs.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
KEY = "hardening-test-key-0123456789abcdef"  # 35 bytes: a real key, so no development-key warning
START, DAYS, SCALE, SEED = date(2026, 3, 2), 4, 20, 11
MB = 1024 * 1024


def envelope(type_: str, time: str, data: dict, id_: str) -> dict:
    return {"specversion": "1.0", "id": id_, "source": "callguide", "type": type_, "time": time, "data": data}


def dumps(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def bad_lines() -> list[tuple[str, bytes]]:
    """(kind, line) for every kind of bad line of the issue; each with its own call or thread."""
    mail = {"mailbox": "kundreskontra", "message_id": "<m@x>", "thread_id": "<t@x>", "sender": "a@example.se"}
    subject = "Fråga om ärende för Östra Ågatan – faktura €"
    out: list[tuple[str, bytes]] = []
    for i, megabytes in enumerate((3, 4, 5, 6, 5, 4, 6, 5, 3, 6, 5)):  # ~52 MB of huge lines
        caller = "+4670" + "1" * (megabytes * MB)
        out.append(
            (
                "huge",
                dumps(
                    envelope(
                        "call.offered",
                        "2026-03-03T10:00:00+01:00",
                        {"call_id": f"huge{i}", "entrance": "x", "caller": caller},
                        f"huge{i}",
                    )
                ),
            )
        )
    out += [
        ("malformed", b'{"specversion": "1.0", "id": "trunc", "source": "callguide", "type": "call.queued", "ti'),
        ("malformed", b"{this is not json"),
        ("malformed", b'{"a": 1,}'),
        ("malformed", b"null"),
        ("malformed", b"\x00\x01\x02"),
    ]
    for i, encoding in enumerate(("latin-1", "cp1252")):
        data = mail | {
            "thread_id": f"<enc{i}@x>",
            "message_id": f"<enc{i}@x>",
            "subject": subject if encoding == "cp1252" else subject[:26],
        }
        line = json.dumps(envelope("mail.received", "2026-03-03T10:00:00+01:00", data, f"enc{i}"), ensure_ascii=False)
        out.append(("encoding", line.encode(encoding)))
    out.append(("nested", b'{"a":' * 10_000 + b"1" + b"}" * 10_000))  # 60 001 bytes: under the size limit
    out.append(("nested", b"[" * 30_000 + b"]" * 30_000))
    for i, t in enumerate(("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2950-06-01T10:00:00Z")):
        out.append(
            ("date", dumps(envelope("call.queued", t, {"call_id": f"date{i}", "queue": "kundreskontra"}, f"date{i}")))
        )
    out.append(
        (
            "old mail",
            dumps(envelope("mail.received", "1989-06-01T10:00:00+02:00", mail | {"thread_id": "<old@x>"}, "old")),
        )
    )
    out.append(
        (
            "unknown queue",
            dumps(envelope("call.queued", "2026-03-03T10:00:00+01:00", {"call_id": "uq", "queue": "okand_ko"}, "uq")),
        )
    )
    return out


@dataclass(frozen=True)
class Mixed:
    path: Path
    valid: int  # simulated events written
    bad: dict[int, str]  # line number -> kind
    huge_sizes: dict[int, int]  # line number -> size of the huge lines


@pytest.fixture(scope="session")
def mixed_file(tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    path = tmp_path_factory.mktemp("mixed") / "mixed.jsonl"
    bad = bad_lines()
    every = 4000  # a bad line after every 4000 simulated lines, then the rest at the end
    number, valid = 0, 0
    planted: dict[int, str] = {}
    huge: dict[int, int] = {}
    with path.open("wb") as out:
        for event in simulate(load_agreements(), START, DAYS, SEED, SCALE):
            out.write(encode(event) + b"\n")
            number += 1
            valid += 1
            if valid % every == 0 and bad:
                kind, line = bad.pop(0)
                out.write(line + (b"\r\n" if number % 2 else b"\n"))  # CRLF on some
                number += 1
                planted[number] = kind
                if kind == "huge":
                    huge[number] = len(line)
                if valid % (3 * every) == 0:
                    out.write(b"\n")  # a blank line: neither stored nor rejected, but counted
                    number += 1
        for kind, line in bad:
            out.write(line + b"\n")
            number += 1
            planted[number] = kind
    assert 90 * MB < path.stat().st_size < 130 * MB
    assert set(planted.values()) == {"huge", "malformed", "encoding", "nested", "date", "old mail", "unknown queue"}
    return Mixed(path, valid, planted, huge)


# The command's own peak RSS. Linux keeps a process's high-water mark across fork and exec, so a
# child of this pytest process (grown large by the in-process warehouse tests before it) would read
# as large as pytest itself. A small launcher runs the command as its own child and writes that
# child's peak (RUSAGE_CHILDREN of the launcher: its only child) to a file.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)"
)


def availability(*args: str) -> list[str]:
    return [sys.executable, "-m", "availability", *args]


def env() -> dict[str, str]:
    return {**os.environ, "AVAILABILITY_PSEUDONYM_KEY": KEY, "PYTHONPATH": str(ROOT)}


def test_process_over_a_100_mb_mixed_file_stores_every_valid_line_and_names_every_bad_one(mixed_file, tmp_path):
    warehouse, rejects = tmp_path / "w", tmp_path / "rejects.jsonl"
    out, err_file = tmp_path / "stdout", tmp_path / "stderr"
    peak_file = tmp_path / "peak-rss-kb"
    with out.open("wb") as stdout, err_file.open("wb") as stderr:  # files: a pipe could fill and block
        proc = subprocess.Popen(
            [sys.executable, "-c", PEAK_RSS, str(peak_file),
             *availability("process", str(mixed_file.path), "--warehouse", str(warehouse), "--rejects", str(rejects))],
            env=env(),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # a timeout stops the launcher and the command together
        )  # fmt: skip
    started = time.monotonic()
    try:
        code = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("process took more than 300 s")
    elapsed = time.monotonic() - started
    err = err_file.read_text(errors="replace")
    assert code == 2, err
    n_bad = len(mixed_file.bad)
    assert f"processed {mixed_file.valid + n_bad} events: {mixed_file.valid} accepted, {n_bad} rejected" in err
    assert "Traceback" not in err

    records = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == sorted(mixed_file.bad)  # exactly the planted lines
    assert all(r["file"] == str(mixed_file.path) and r["reason"] for r in records)
    for r in records:
        if r["line"] in mixed_file.huge_sizes:
            assert r["reason"].startswith(f"line is {mixed_file.huge_sizes[r['line']]} bytes"), r["reason"]
            assert len(r["event"]) <= 1024  # only its head is kept

    with Warehouse.open(str(warehouse)) as wh:
        assert wh.query("SELECT count() FROM events FINAL") == [(mixed_file.valid,)]
        assert wh.query("SELECT count() FROM events WHERE key LIKE 'huge%' OR key LIKE 'date%' OR key = 'uq'") == [(0,)]

    peak_mb = int(peak_file.read_text()) / 1024  # kilobytes on Linux
    assert peak_mb < 1024, f"peak RSS {peak_mb:.0f} MB"
    print(f"\nprocess over {mixed_file.path.stat().st_size / MB:.0f} MB: {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB")


def _input_position(pid: int, path: Path) -> int | None:
    """How far the process has read the input file (Linux /proc), or None if it is not open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        for fd in fds.iterdir():
            if os.readlink(fd) == str(path.resolve()):
                for line in (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().splitlines():
                    if line.startswith("pos:"):
                        return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux /proc to see the replay started")
@pytest.mark.parametrize("started_as", ["background job of a script", "foreground"])
def test_ctrl_c_stops_process_with_130_and_the_report_names_the_unfinished_load(mixed_file, tmp_path, started_as):
    """A shell starts a script's background jobs (`availability process … &`) with SIGINT
    ignored; Python then keeps ignoring it, and `kill -INT` let the run finish with exit 0 (the
    issue). In the foreground Ctrl-C already worked; both must stop with 130."""
    warehouse = tmp_path / "w"
    proc = subprocess.Popen(
        availability("process", str(mixed_file.path), "--warehouse", str(warehouse), "--rejects", str(tmp_path / "r")),
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint if started_as.startswith("background") else None,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (_input_position(proc.pid, mixed_file.path) or 0) > 0:
                break  # the replay is under way: the warehouse is open
            time.sleep(0.05)
        assert proc.poll() is None, "process ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().splitlines()[-1] == "availability: interrupted"
    assert time.monotonic() - sent < 30

    report = subprocess.run(
        availability("report", "--month", "2026-03", "--warehouse", str(warehouse), "--format", "json"),
        env=env(),
        capture_output=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr.decode()
    (load,) = json.loads(report.stdout)["incomplete_loads"]
    assert load["files"] == [str(mixed_file.path)]
    assert "did not finish" in report.stderr.decode()
