"""`availability demo --live` in a real terminal (a 160x50 tmux pane) against the real broker and
a real stream worker: mid-day its open queues show live numbers; after the replay, with every
queue and mailbox closed for the evening and before local midnight (nothing on the wall can move
then: no event comes, no call waits, business ages stand still while closed, today's counts stay),
each number on the screen equals the worker's own /metrics at that moment, computed by the test
with its own formatting from dashboards/live_wall, and Prometheus's engine evaluating the Grafana
wall's PromQL on that scrape agrees too. Ctrl-C then ends the demo with 0 and stops its worker.
Also `availability wall --once` against a served metrics text.

Needs Kafka (deploy/dev/kafka.sh start), tmux and promtool; without them skipped locally, failed
in CI.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards.live_wall import MailboxRow, QueueRow, Wall, build, parse
from tests.conftest import free_port, unavailable
from tests.integration.streaming import environment
from tests.integration.test_live_wall_promql import promtool_agrees
from tests.unit.test_live_wall import WORKER_1

ROOT = Path(__file__).resolve().parents[2]
PANE = (120, 45)  # a 120-column terminal: the wall must fit it without cutting a cell
DAY = "2026-05-12"  # a Tuesday: phones 08:30-12:00 and 13:00-16:00, mailboxes 08:00-16:30
SPEED = 600  # 10 simulated minutes a second: 07:00-17:00 in a minute, 17:00-24:00 in 42 s
CLOCK = re.compile(r"Simulerad tid (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)")
FINISHED = "Uppspelningen klar"


# -- what the screen must show, formatted here independently of availability/cli/wall.py ------


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.0f} %"


def share(v: float | None, target: float | None) -> str:
    if v is None or target is None:
        return pct(v)
    return f"{pct(v)} {'✓' if v >= target else '✗'}"


def num(v: float | None) -> str:
    return "–" if v is None else str(round(v))


def clock(v: float | None) -> str:
    if v is None:
        return "–"
    h, rest = divmod(int(v), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def flag(v: float | None) -> str:
    return "–" if v is None else "Öppet" if v == 1 else "Stängt"


def queue_cells(r: QueueRow) -> list[str]:
    return [
        r.queue, flag(r.open), num(r.waiting), clock(r.oldest_wait), num(r.agents_ready),
        share(r.sl_30m, r.sl_target), pct(r.sl_next_30m), share(r.sl_today, r.sl_target),
        share(r.ar_30m, r.ar_target), share(r.ar_today, r.ar_target), f"{pct(r.sl_target)}/{pct(r.ar_target)}",
    ]  # fmt: skip


def mailbox_cells(r: MailboxRow) -> list[str]:
    return [
        r.mailbox, flag(r.open), num(r.open_cases), num(r.priority_cases), clock(r.oldest_open), num(r.breached),
        num(r.breaching_within_hour),
    ]  # fmt: skip


def screen_rows(screen: str, ids: set[str], table: str = "queues") -> dict[str, list[str]]:
    """The rows of the queues' or the mailboxes' table (queues and mailboxes share ids) whose
    first cell is one of `ids`, as their cells."""
    queues, _, mailboxes = re.sub(r"\n *Funktionsbrevlådor *\n", "\n\f\n", screen, count=1).partition("\f")
    rows = {}
    for line in (queues if table == "queues" else mailboxes).splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if cells[0] in ids:
                rows[cells[0]] = cells
    return rows


def simulated(screen: str) -> tuple[str, int] | None:
    """The frame's simulated date and its time of day in seconds."""
    m = CLOCK.search(screen)
    return (m.group(1), int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))) if m else None


# -- the terminal -------------------------------------------------------------------------------


class Tmux:
    def __init__(self, tmp: Path, command: str) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            unavailable("tmux is not installed (needed to run demo --live in a real terminal)")
        conf = tmp / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n", encoding="utf-8")
        self.base = [tmux, "-u", "-L", f"demo-live-{os.getpid()}-{time.monotonic_ns()}", "-f", str(conf)]
        self.env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        width, height = PANE
        self.run("new-session", "-d", "-x", str(width), "-y", str(height), "-c", str(ROOT), command)
        self.socket = self.display("#{socket_path}")

    def run(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args], check=True, env=self.env, timeout=30, capture_output=True, text=True, encoding="utf-8"
        ).stdout

    def display(self, fmt: str) -> str:
        return self.run("display-message", "-p", fmt).strip()

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], env=self.env, timeout=30, capture_output=True)
        Path(self.socket).unlink(missing_ok=True)  # tmux 3.3 leaves its socket file behind


def wait_for(tmux: Tmux, condition: object, what: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = tmux.screen()
        if callable(condition) and condition(screen):
            return screen
        if tmux.display("#{pane_dead}") == "1" or time.monotonic() > deadline:
            raise AssertionError(f"no screen with {what}; the last:\n{screen}")
        time.sleep(0.25)


def demo_live(port: int, out: Path, *extra: str) -> list[str]:
    """`availability demo --live` of DAY at SPEED, its worker's /metrics on `port`."""
    return [
        sys.executable, "-m", "availability", "demo", "--live", "--day", DAY, "--speed", str(SPEED),
        "--web-port", str(port), "--out", str(out), *extra,
    ]  # fmt: skip


def worker_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:PORT: the stream worker the demo started (found by its
    socket, since Faust renames the worker's process title and the demo's own command line
    names the port too)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # local address, LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
            except OSError:
                continue
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def topics_of(bootstrap: str, prefix: str) -> list[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        return [t for t in admin.list_topics() if t.startswith(prefix)]
    finally:
        admin.close()


# -- the tests ----------------------------------------------------------------------------------


def test_demo_live_shows_the_workers_numbers_and_stops_cleanly_on_ctrl_c(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    prefix = f"{topic_prefix}live-{time.monotonic_ns()}."
    # Not COLUMNS or LINES (pytest-xdist's workers have 80x24): the demo must find the pane's size.
    env = {
        k: v
        for k, v in environment(kafka_bootstrap, prefix, PYTHONIOENCODING="utf-8").items()
        if k not in ("COLUMNS", "LINES")
    }
    stderr = tmp_path / "stderr.txt"
    demo = demo_live(port, tmp_path / "demo", "--from", "07:00", "--until", "17:00")
    variables = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    # tmux does not reliably keep a dead pane's exit status: bash writes it. Its trap lets it
    # outlive the Ctrl-C that goes to the whole foreground group (the demo gets it as usual).
    exit_file = tmp_path / "exit-status"
    script = f'trap : INT; "$@" 2>{shlex.quote(str(stderr))}; echo "$?" >{shlex.quote(str(exit_file))}'
    command = f"exec bash -c {shlex.quote(script)} demo env -i {variables} {shlex.join(demo)}"
    tmux = Tmux(tmp_path, command)
    pid: int | None = None
    try:
        # Mid-morning: every queue is open and shows its waiting calls, longest wait and ready agents.
        def morning(screen: str) -> bool:
            at = simulated(screen)
            return at is not None and 9 * 3600 + 30 * 60 <= at[1] <= 11 * 3600 + 30 * 60

        screen = wait_for(tmux, morning, "a simulated time between 09:30 and 11:30", timeout=150)
        pid = worker_pid(port)
        assert pid is not None and alive(pid)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        queues = [r.queue for r in build(parse(metrics)).queues]
        rows = screen_rows(screen, set(queues))
        assert list(rows) == queues, screen  # every queue of the agreements, in their order
        for cells in rows.values():
            assert cells[1] == "Öppet", cells
            assert re.fullmatch(r"\d+", cells[2]) and re.fullmatch(r"\d+:\d\d", cells[3]), cells
            assert re.fullmatch(r"\d+", cells[4]), cells  # agents ready: a number while open
        assert sum(bool(re.fullmatch(r"\d+ % [✓✗]", c[7])) for c in rows.values()) >= 3, screen  # SL today
        # The outlook: an expected service level (no ✓/✗: not a promise kept or broken) where open.
        assert sum(bool(re.fullmatch(r"\d+ %", c[6])) for c in rows.values()) >= 3, screen

        # The evening: the replay ended at 17:00; from 17:10 (30 minutes after the mailboxes
        # closed at 16:30 and over an hour after the phones) to midnight nothing on the wall moves.
        def evening(screen: str) -> bool:
            at = simulated(screen)
            return FINISHED in screen and at is not None and at[1] >= 17 * 3600 + 10 * 60

        screen = wait_for(tmux, evening, "the finished replay after 17:10", timeout=120)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        after = tmux.screen()
        at = simulated(after)
        assert at is not None and at == (DAY, at[1]) and at[1] < 23 * 3600, after  # still that day
        samples = parse(metrics)
        wall: Wall = build(samples)
        # The test's scrape has no history, so its 30-minute figures are "no value"; the screen's
        # (with 30 simulated minutes of history) must be too: no contact ended after 16:40.
        expected_q = {r.queue: queue_cells(r) for r in wall.queues}
        expected_m = {r.mailbox: mailbox_cells(r) for r in wall.mailboxes}
        assert screen_rows(screen, set(expected_q)) == expected_q, screen
        assert screen_rows(screen, set(expected_m), "mailboxes") == expected_m, screen
        # Not a wall of zeros: several queues have a service level today, mailboxes have cases.
        assert sum(r.sl_today is not None for r in wall.queues) >= 3
        assert all(not r.is_open for r in wall.queues) and all(not r.is_open for r in wall.mailboxes)
        assert sum(r.open_cases or 0 for r in wall.mailboxes) > 0
        # Prometheus's engine, evaluating the Grafana wall's PromQL on this scrape (held for 30
        # minutes), gives the same.
        promtool_agrees([samples] * 31, tmp_path)

        tmux.run("send-keys", "C-c")
        deadline = time.monotonic() + 90
        while not exit_file.exists():
            assert time.monotonic() < deadline, tmux.screen()
            time.sleep(0.25)
        time.sleep(0.1)  # its one line written
        log = stderr.read_text(encoding="utf-8")
        assert exit_file.read_text().strip() == "0", f"{exit_file.read_text()!r}\n{log}\n{tmux.screen()}"
        assert "Traceback" not in log, log
        assert re.search(r"demo --live stopped: \d+ of \d+ events published; the worker exited 0;", log), log
        assert "deleted" in log, log
        assert not alive(pid) and worker_pid(port) is None  # the worker is gone, nothing else holds the port
        assert topics_of(kafka_bootstrap, prefix) == []  # the run's topics are deleted
    finally:
        tmux.close()
        if pid is not None and alive(pid):  # a failure half-way leaves no worker behind
            os.kill(pid, 9)


@pytest.fixture
def served_metrics() -> Iterator[str]:
    """tests/unit/test_live_wall.py's first worker's text, served over HTTP as a worker does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = WORKER_1.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wall_once_prints_one_frame_of_a_running_worker(served_metrics: str) -> None:
    # No COLUMNS: printed to a pipe, the wall must still fit its cells (rich alone would assume 80).
    env = {**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "PYTHONIOENCODING": "utf-8"}
    run = [sys.executable, "-m", "availability", "wall", "--metrics-url", served_metrics, "--once"]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = screen_rows(result.stdout, {"a", "b", "c"}) | screen_rows(result.stdout, {"m"}, "mailboxes")
    # Worker 1 alone: a has 6 in SL of 6 + 1 late + 1 abandoned = 75 % (target 80 %: ✗); answered
    # 7 / 8 = 88 % (target 90 %: ✗); 2 waiting, the longest 45.5 s, 1 agent ready. b is closed.
    assert rows["a"] == ["a", "Öppet", "2", "0:45", "1", "–", "–", "75 % ✗", "–", "88 % ✗", "80 %/90 %"]
    assert rows["b"][:2] == ["b", "Stängt"] and rows["b"][4] == "–"
    assert rows["c"][4] == "0" and rows["c"][7] == "–"
    assert rows["m"] == ["m", "Öppet", "4", "1", "1:00:00", "1", "2"]

    stopped = subprocess.run(
        [sys.executable, "-m", "availability", "wall", "--metrics-url", f"http://127.0.0.1:{free_port()}", "--once"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert "kan inte hämta" in stopped.stdout and "Connection refused" in stopped.stdout


def test_one_unreachable_worker_does_not_freeze_the_others(served_metrics: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    run = [sys.executable, "-m", "availability", "wall", "--metrics-url", served_metrics, "--metrics-url", dead]
    result = subprocess.run([*run, "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr  # a worker did not answer
    assert f"kan inte hämta {dead}: Connection refused" in result.stdout
    # The one that answered is shown, as Grafana would: worker 1's a, as in the test above.
    rows = screen_rows(result.stdout, {"a"})
    assert rows["a"] == ["a", "Öppet", "2", "0:45", "1", "–", "–", "75 % ✗", "–", "88 % ✗", "80 %/90 %"]


def test_the_wall_survives_a_clock_stepped_back(served_metrics: str) -> None:
    from datetime import datetime, timedelta

    from availability.cli.wall import Scraper

    times = iter([datetime(2026, 5, 12, 10, 0), datetime(2026, 5, 12, 10, 0, 2), datetime(2026, 5, 12, 9, 0, 4)])
    # The history timed by the clock itself (as demo --live does with its simulated one): the step
    # back an hour starts it afresh instead of raising.
    scraper = Scraper([f"{served_metrics}/metrics"], lambda: next(times))
    assert [scraper.scrape().wall is not None for _ in range(3)] == [True, True, True]
    assert scraper.last is not None and scraper.last.wall is not None and scraper.last.wall.window_seconds == 0
    # `wall`'s way: shown by the wall clock, timed by a monotonic one: the same step changes
    # neither the history nor its 4 seconds.
    shown = iter([datetime(2026, 5, 12, 10, 0) - timedelta(hours=h) for h in (0, 0, 1)])
    ticks = iter([100.0, 102.0, 104.0])
    scraper = Scraper([f"{served_metrics}/metrics"], lambda: next(shown), timer=lambda: next(ticks))
    frames = [scraper.scrape() for _ in range(3)]
    assert frames[-1].wall is not None and frames[-1].wall.window_seconds == 4
    assert frames[-1].at == datetime(2026, 5, 12, 9, 0)  # the screen shows the wall clock's time


def test_demo_live_refuses_a_taken_web_port(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    """Another worker on --web-port would answer the demo's scrapes with its numbers while the
    demo's own worker failed to bind: one line before anything starts."""
    import socket

    env = environment(kafka_bootstrap, f"{topic_prefix}taken-{time.monotonic_ns()}.", PYTHONIOENCODING="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = [sys.executable, "-m", "availability", "demo", "--live", "--web-port", str(port)]
        result = subprocess.run(
            [*demo, "--out", str(tmp_path / "demo")], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"availability: --web-port {port}: 127.0.0.1:{port} is taken (Address already in use); choose another "
        "--web-port or leave it out (a free port)"
    ]
    assert not (tmp_path / "demo").exists()  # nothing was made, no worker started
    assert topics_of(kafka_bootstrap, env["AVAILABILITY_TOPIC_PREFIX"]) == []


def test_wait_ready_is_not_fooled_by_another_process_answering(served_metrics: str, tmp_path: Path) -> None:
    from availability.cli.demo_live import DemoError, Worker

    # A "worker" that exits at once (`availability --version`) while another server answers at the
    # URL: the answer is not its own, so the demo must not show it as the worker's numbers.
    worker = Worker(["--version"], dict(os.environ), tmp_path / "worker.log")
    try:
        with pytest.raises(DemoError, match="the stream worker exited with 0"):
            worker.wait_ready(f"{served_metrics}/metrics", timeout=10)
    finally:
        worker.stop()  # already ended: only reaped


def test_a_worker_that_dies_mid_demo_is_said_on_screen_and_exits_1(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    import signal

    port = free_port()
    env = environment(kafka_bootstrap, f"{topic_prefix}dies-{time.monotonic_ns()}.", PYTHONIOENCODING="utf-8")
    demo = demo_live(port, tmp_path / "demo")
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as o, err.open("wb") as e:
        process = subprocess.Popen(demo, env=env, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
    pid = None
    try:
        deadline = time.monotonic() + 120
        while "Simulerad tid" not in out.read_text(encoding="utf-8"):  # the worker answers: frames come
            assert time.monotonic() < deadline and process.poll() is None, err.read_text() + out.read_text()
            time.sleep(0.2)
        pid = worker_pid(port)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "Arbetaren avslutades med -9" not in out.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline and process.poll() is None, out.read_text()[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # as Ctrl-C
        assert process.wait(timeout=60) == 1
        log = err.read_text(encoding="utf-8")
        assert "Traceback" not in log, log
        assert log.splitlines()[-1].startswith(
            "availability: the stream worker exited on its own with -9 during the demo: "
        ), log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_demo_takes_its_worker_with_it(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    """The worker runs in a session of its own, so Ctrl-C reaches only the demo, which stops it in
    order. A demo killed outright (kill -9) cannot: the kernel's parent-death signal (SIGTERM)
    stops the worker instead of leaving it consuming on its own."""
    import signal

    port = free_port()
    env = environment(kafka_bootstrap, f"{topic_prefix}killed-{time.monotonic_ns()}.", PYTHONIOENCODING="utf-8")
    demo = demo_live(port, tmp_path / "demo")
    with (tmp_path / "out.txt").open("wb") as out:
        process = subprocess.Popen(demo, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        pid = None
        while pid is None or not alive(pid):
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "out.txt").read_text()
            time.sleep(0.2)
            pid = worker_pid(port)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 45  # SIGTERM: the worker commits, leaves the group and exits
        while alive(pid):
            assert time.monotonic() < deadline, f"the worker {pid} outlived its killed demo"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        leftover = worker_pid(port)
        if leftover is not None and alive(leftover):
            os.kill(leftover, signal.SIGKILL)
