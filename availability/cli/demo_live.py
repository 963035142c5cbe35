"""`availability demo --live`: a simulated day replayed quickly through the real stream worker,
its wall drawn in the terminal until Ctrl-C (docs/live-wall.md).

The worker runs as a subprocess (`availability stream`) on a fresh warehouse, under topics and a
consumer group of this run's own (a new group never meets an older run's offsets, which would
make the worker refuse the fresh warehouse). It and the publisher share one simulated clock
(`--clock-start/--clock-speed/--clock-anchor`): an event is published when that clock reaches
its time, so the worker's "now", "today" and opening hours are the replayed day's, and no event
is ever ahead of its clock (the live boundary rejects events more than 5 minutes ahead).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from availability.cli.wall import WORDS, Frame, Scraper, show, stopped_by_signals
from availability.wiring import Wiring
from schemas.agreements import Agreements
from schemas.errors import AvailabilityError, InputError

if TYPE_CHECKING:
    from ingest.boundary import Boundary
    from schemas.events import Event

READY_TIMEOUT = 120.0  # seconds for the worker's /metrics to answer
STOP_TIMEOUT = 30.0  # seconds for the worker to stop on SIGTERM before it is killed


class DemoError(AvailabilityError):
    pass


def recent_working_day(agreements: Agreements, today: date) -> date:
    """The latest day before `today` on which the first queue (or mailbox) is open."""
    calendars = [q.calendar for q in agreements.queues.values()] or [m.calendar for m in agreements.mailboxes.values()]
    day = today - timedelta(days=1)
    for _ in range(30):
        if not calendars or calendars[0].intervals_on(day):
            return day
        day -= timedelta(days=1)
    return today - timedelta(days=1)


def check_kafka(bootstrap: str) -> None:
    """One line, before anything starts, when no broker listens at the bootstrap address."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
            return
        except (OSError, ValueError):
            continue
    raise DemoError(f"demo --live needs Kafka at {bootstrap}: run deploy/dev/kafka.sh start")


class Replay(threading.Thread):
    """Publishes the day's events through the ingest boundary, each when the shared clock
    reaches its time (those before the start at once)."""

    def __init__(self, events: list[Event], boundary: Boundary, wiring: Wiring, clock: Callable[[], datetime]) -> None:
        super().__init__(name="demo-replay", daemon=True)
        self.events, self.boundary, self.wiring, self.clock = events, boundary, wiring, clock
        self.published = 0
        self.problem: str | None = None  # shown on the screen
        self.stopping = threading.Event()

    def run(self) -> None:
        from ingest.boundary import Rejection
        from ingest.kafka.publisher import PublishError, RetryingPublisher
        from schemas.events import encode

        def retrying(message: str) -> None:
            self.problem = message

        try:
            with RetryingPublisher(self.wiring.bootstrap, self.wiring.prefix, on_retry=retrying) as publisher:
                i, n = 0, len(self.events)
                while i < n and not self.stopping.is_set():
                    now, due = self.clock(), []
                    while i < n and self.events[i].time <= now:
                        accepted = self.boundary.accept(encode(self.events[i]))
                        if isinstance(accepted, Rejection):
                            self.problem = f"the simulator made an invalid event: {accepted.reason}"
                        else:
                            due.append(accepted)
                        i += 1
                    if due:
                        self.published += publisher.publish(due)
                        self.problem = None
                    else:
                        self.stopping.wait(0.02)
        except PublishError as exc:
            self.problem = str(exc)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)


def _die_with_parent() -> Callable[[], None] | None:
    """For the worker, to run in it before it starts (Linux): SIGTERM when the demo dies, even by
    SIGKILL. The worker has a session of its own (so Ctrl-C reaches only the demo, which stops
    it in order) and would otherwise outlive a killed demo, consuming on. prctl is looked up
    here, in the demo: the child between fork and exec only calls it."""
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # not Linux: the demo's own stop still works
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


STARTED = b"availability: stream: started"  # the worker's banner: Faust runs, /metrics answers


class Worker:
    """`availability stream` in its own session (Ctrl-C in the terminal reaches only the demo,
    which stops the worker with SIGTERM and waits for it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "availability", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )

    def wait_ready(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        from availability.cli.wall import FetchError, fetch

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DemoError(f"the stream worker exited with {self.process.returncode}: {self._last_line()}")
            # Ready when our worker says its /metrics is up (its banner, in its own log) and the URL
            # answers: an answer alone may come from another process on the port (run_live_demo
            # checks the port beforehand, but it can be taken since), whose numbers are not ours.
            if STARTED in self.log.read_bytes():
                try:
                    fetch(url, timeout=1.0)
                    return
                except FetchError:
                    pass
            if time.monotonic() > deadline:
                raise DemoError(f"the stream worker did not answer at {url} in {timeout:.0f} s (see {self.log})")
            time.sleep(0.2)

    def exited(self) -> int | None:
        """The exit code once the worker has ended (on its own, unless `stop` ran)."""
        return self.process.poll()

    def last_line(self) -> str:
        return self._last_line()

    def _last_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return lines[-1].strip()
        return f"see {self.log}"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


def delete_run_topics(bootstrap: str, prefix: str) -> bool:
    """Best effort: this run's topics and consumer groups (all named `prefix…`) are deleted."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    except Exception:
        return False
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
        with contextlib.suppress(Exception):
            groups = [g["group_id"] for g in admin.list_groups() if str(g.get("group_id", "")).startswith(prefix)]
            if groups:
                admin.delete_groups(groups)
        return True
    except Exception:
        return False
    finally:
        admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port(port: int) -> None:
    """One line, before anything starts, when --web-port is taken: another worker there would
    answer the demo's scrapes with its own numbers while the demo's worker failed to bind."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DemoError(
                f"--web-port {port}: 127.0.0.1:{port} is taken ({exc.strerror}); choose another --web-port "
                "or leave it out (a free port)"
            ) from None


def run_live_demo(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.kafka.admin import ensure_topics
    from ingest.simulator import simulate
    from stream_jobs.core.live import shifted_clock

    agreements = wiring.agreements(args.agreements)
    tz = agreements.timezone
    day = args.day or recent_working_day(agreements, datetime.now(tz).date())
    start = datetime.combine(day, args.from_time, tzinfo=tz)
    end = datetime.combine(day, args.until_time, tzinfo=tz) if args.until_time else None
    if end is not None and end <= start:
        raise DemoError(f"--until {args.until_time:%H:%M} must be after --from {args.from_time:%H:%M}")
    check_kafka(wiring.bootstrap)
    if args.web_port:
        check_port(args.web_port)

    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    prefix = f"{wiring.prefix}demo-{stamp}-{os.getpid()}."  # ends in ".": a prefix as settings make it
    run = Wiring(wiring.settings.model_copy(update={"topic_prefix": prefix}), tell=wiring.tell)
    live = Path(args.out) / "live"
    shutil.rmtree(live / "warehouse", ignore_errors=True)  # a fresh warehouse for a fresh group
    try:
        live.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{live}: cannot make the directory ({exc.strerror})") from None

    events = [ev for ev in simulate(agreements, day, 1, args.seed, args.scale) if end is None or ev.time < end]
    try:
        ensure_topics(run.bootstrap, prefix)
    except AvailabilityError:
        raise DemoError(f"demo --live needs Kafka at {wiring.bootstrap}: run deploy/dev/kafka.sh start") from None
    port = args.web_port or free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    anchor = time.time()
    clock = shifted_clock(start, args.speed, anchor=anchor)
    env = {**os.environ, "AVAILABILITY_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": run.bootstrap}
    worker_args = [
        "stream", "--warehouse", str(live / "warehouse"), "--web-port", str(port), "--sql-listen", "off",
        "--clock-start", start.isoformat(), "--clock-speed", repr(args.speed),
        "--clock-anchor", datetime.fromtimestamp(anchor).astimezone().isoformat(),
        *(["--agreements", args.agreements] if args.agreements else []),
    ]  # fmt: skip
    replay = Replay(events, run.boundary(agreements, live=True, clock=clock), run, clock)
    words = WORDS[args.lang]
    logging.getLogger("kafka").setLevel(logging.ERROR)  # its warnings would scribble over the screen
    print(
        f"demo --live: {day} from {start:%H:%M}, {args.speed:g}× real time, {len(events)} events; worker log "
        f"{live / 'worker.log'}",
        file=sys.stderr,
    )
    worker = Worker(worker_args, env, live / "worker.log")
    interrupted = False
    try:
        with stopped_by_signals():
            replay.start()
            worker.wait_ready(url)
            # Timed by the simulated clock (one refresh a real second is `speed` of its seconds): a
            # wall-clock step moves it too, and the history then starts afresh.
            scraper = Scraper([url], lambda: clock().astimezone(tz), args.lang, args.speed)
            status = _status(replay, worker, len(events), end, args, url, words)
            show(scraper, args.lang, 1.0, status, words["simulated"])
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C is how the demo ends
    finally:
        # The clean-up runs to its end: a second Ctrl-C must not leave the worker behind.
        held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            crashed = worker.exited()  # before `stop`: None while it runs
            replay.stop()
            code = worker.stop()
            deleted = delete_run_topics(run.bootstrap, prefix)
        finally:
            for s, handler in held.items():
                signal.signal(s, handler)
    print(
        f"demo --live {'stopped' if interrupted else 'ended'}: {replay.published} of {len(events)} events published; "
        f"the worker exited {code}; its warehouse {live / 'warehouse'}; topics {prefix}* "
        f"{'deleted' if deleted else 'not deleted (delete them by hand)'}",
        file=sys.stderr,
    )
    if crashed is not None:
        print(
            f"availability: the stream worker exited on its own with {crashed} during the demo: {worker.last_line()}",
            file=sys.stderr,
        )
        return 1
    return 0


def _status(
    replay: Replay,
    worker: Worker,
    total: int,
    end: datetime | None,
    args: argparse.Namespace,
    url: str,
    words: dict[str, str],
) -> Callable[[Frame], list[Text]]:
    sv = args.lang == "sv"

    def status(frame: Frame) -> list[Text]:
        code = worker.exited()
        if code is not None:  # it ended on its own: the screen says so instead of retrying in silence
            replay.stopping.set()  # nothing would consume what is published
            said = "Arbetaren avslutades med" if sv else "The stream worker exited with"
            stop = "Ctrl-C avslutar demon" if sv else "Ctrl-C ends the demo"
            return [Text(f"{said} {code}: {worker.last_line()}", "bold red"), Text(f"{url} · {stop}", "dim")]
        day = f"{'Simulerad dag' if sv else 'Simulated day'}, {args.speed:g}× {'verklig tid' if sv else 'real time'}"
        if not replay.is_alive() and replay.problem is None and (end is None or frame.at >= end):
            line = (
                f"Uppspelningen klar: {replay.published} av {total} händelser; arbetarens klocka går vidare "
                "(dagens siffror nollställs vid midnatt)"
                if sv
                else f"replay finished: {replay.published} of {total} events; the worker's clock runs on (today's "
                "figures reset at midnight)"
            )
        else:
            line = (
                f"{'Uppspelning' if sv else 'Replay'}: {replay.published} / {total} {'händelser' if sv else 'events'}"
            )
        lines = [Text(f"{day} · {line}")]
        if replay.problem:
            lines.append(Text(replay.problem, "bold red"))
        lines.append(Text(f"{url} · {words['stop']}", "dim"))
        return lines

    return status
