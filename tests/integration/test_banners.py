"""What the long-running commands say (issue #13, "the newcomer's path"): a banner once they
consume or listen, a status line per `--status-every`, nothing of either with `--quiet`, plain
log lines without terminal codes, /metrics on loopback, no Faust directory left behind, and the
progress of `publish` and `simulate --to-kafka --speed`. Real Kafka, real processes."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import free_port, shared_examples
from tests.integration.dovecot_fixture import PASSWORD, Dovecot, deliver, dovecot
from tests.integration.streaming import AVAILABILITY, cli, environment

__all__ = ["dovecot"]  # the session fixture, used by name below

KEY = "banner-test-key-of-at-least-32-bytes!!"
ESC = "\x1b"
# One ENTERQUEUE line of a native queue_log: a call offered and queued (ingest/sources/queue_log.py).
QUEUE_LOG_LINE = "1714543200|1714543200.1|kundreskontra|NONE|ENTERQUEUE||0701234567|1\n"


@pytest.fixture
def env(kafka_bootstrap: str) -> dict[str, str]:
    return environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:10]}.", AVAILABILITY_PSEUDONYM_KEY=KEY)


def wait_for(condition: Callable[[], bool], what: str, text: Callable[[], str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{text()[-3000:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (Linux /proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:  # little-endian IPv4
                    found.add(".".join(str(b) for b in raw[::-1]))
                else:
                    found.add(raw.hex())
    return found


def stream_args(tmp_path: Path, web_port: int, *extra: str) -> list[str]:
    return [
        *AVAILABILITY, "stream", "--warehouse", str(tmp_path / "wh"), "--web-port", str(web_port),
        "--sql-listen", f"127.0.0.1:{free_port()}", *extra,
    ]  # fmt: skip


def test_the_worker_says_what_it_reads_and_writes_then_what_it_did(tmp_path: Path, env: dict[str, str]) -> None:
    prefix = env["AVAILABILITY_TOPIC_PREFIX"]
    web_port = free_port()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    err = tmp_path / "stream.stderr"
    # stdout a terminal, stderr a file: mode's colour formatter asked stdout, so this is how the
    # escape codes reached `availability stream 2>worker.log`. --loglevel info: the worker's own
    # lines, not Faust's start-up.
    leader, follower = pty.openpty()
    args = stream_args(tmp_path, web_port, "--status-every", "1", "--loglevel", "info")
    with err.open("wb") as handle:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=follower, stderr=handle)
    os.close(follower)
    said = err.read_text
    try:
        wait_for(lambda: "consuming" in said(), "the banner and the assignment", said, timeout=60)
        wait_for(lambda: "since the start:" in said(), "a status line", said, timeout=10)
        # Idle, nothing stored yet: the lag is known from where reading starts (it said "not
        # known yet" until the first batch, which on quiet topics may never come).
        idle = re.compile(r"since the start: 0 events stored, .*; consumer lag 0$", re.M)
        wait_for(lambda: bool(idle.search(said())), "an idle worker's lag 0", said, timeout=15)
        # /metrics listens on loopback only: Faust's own default (web_bind) is every interface.
        assert listening_addresses(web_port) == {"127.0.0.1"}, "bind"
        urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5).close()
        # Something to store: the status line counts it.
        events = tmp_path / "events.jsonl"
        cli(env, "simulate", "--start", "2026-04-01", "--days", "1", "--seed", "3", "--out", str(events))
        published = len(events.read_bytes().splitlines())
        cli(env, "publish", str(events))
        wait_for(lambda: f"since the start: {published} events stored" in said(), "the events counted", said, 60)
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    text = said()
    assert ESC not in text
    banner = text[text.index("availability: stream: started, waiting for its partitions") :]
    topics = f"{prefix}availability.calls, {prefix}availability.agents, {prefix}availability.mail"
    for line in (
        f"  reads    Kafka {env['KAFKA_BOOTSTRAP_SERVERS']}: {topics} (consumer group {prefix}availability-stream)",
        f"  writes   the warehouse {tmp_path / 'wh'}",
        f"  metrics  http://127.0.0.1:{web_port}/metrics (its health too: it answers while the worker runs)",
        "  stop     Ctrl-C or SIGTERM stops it (commits what is stored)",
    ):
        assert line in banner.splitlines(), (line, banner[:2000])
    assert re.search(r"^  SQL      http://127\.0\.0\.1:\d+ \(read-only, user default\)$", banner, re.M)
    assert re.search(
        r"^  key      pseudonyms with the key of fingerprint [0-9a-f]{16}$", banner, re.M
    )  # not the dev key
    # 12 partitions: calls 6 + agents 3 + mail 3 (schemas/topics.py), all this worker's.
    assert (
        f"availability: stream: consuming 12 partitions ({prefix}availability.agents 3, "
        f"{prefix}availability.calls 6, {prefix}availability.mail 3)"
    ) in text
    assert re.search(
        r"^availability: stream: in the last \d+ s: \d+ events stored, 0 rejected, 0 dead letters, 0 batches retried; "
        rf"since the start: {published} events stored, 0 rejected, 0 dead letters, 0 batches retried; consumer lag 0$",
        text,
        re.M,
    ), text[-2000:]
    # Faust's and mode's start-up lines stay out at info (they flooded it), and so do their spinner and "OK".
    assert not re.search(r" INFO (faust|mode|aiokafka)\b", text)
    assert "OK ^" not in text and "starting➢" not in text
    # Faust's data directory (`<app id>-data/`) is not left in the working directory, also after SIGTERM.
    assert list(cwd.iterdir()) == []


def test_a_quiet_worker_says_nothing_but_its_problems(tmp_path: Path, env: dict[str, str]) -> None:
    web_port = free_port()
    err = tmp_path / "stream.stderr"
    with err.open("wb") as handle:
        process = subprocess.Popen(
            stream_args(tmp_path, web_port, "--status-every", "0.5", "--quiet"), env=env, stderr=handle
        )
    try:

        def metrics() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=2).close()
                return True
            except OSError:
                assert process.poll() is None, err.read_text()
                return False

        wait_for(metrics, "/metrics", err.read_text, timeout=60)
        time.sleep(3)  # six status intervals
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.read_text()
    assert "availability: stream:" not in text and "since the start" not in text, text


def test_the_webhook_says_where_it_listens_and_counts_what_it_took(tmp_path: Path, env: dict[str, str]) -> None:
    err = tmp_path / "webhook.stderr"
    args = [*AVAILABILITY, "ingest", "webhook", "--port", "0", "--status-every", "0.5"]
    token = "banner-webhook-token-0123456789abcdef"
    with err.open("wb") as handle:
        process = subprocess.Popen(
            args, env=env | {"AVAILABILITY_WEBHOOK_TOKEN": token}, stdout=subprocess.PIPE, stderr=handle, text=True
        )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ", 1)[1].split()[0]  # still on stdout, for scripts
        event = {
            "specversion": "1.0", "id": "banner-1", "source": "callguide", "type": "call.queued",
            "time": "2026-03-02T09:00:00+01:00", "data": {"call_id": "c-banner", "queue": "kundreskontra"},
        }  # fmt: skip
        headers = {"Content-Type": "application/json"}
        # A sender without the token: 401, counted apart (else it shows as requests taking nothing).
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{url}/events", data=b"{}", headers=headers), timeout=20)
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(
            f"{url}/events", data=json.dumps(event).encode(), headers=headers | {"Authorization": f"Bearer {token}"}
        )
        deadline = time.monotonic() + 30
        while True:  # 503 until Kafka is connected, in the background
            try:
                with urllib.request.urlopen(request, timeout=20) as response:
                    assert response.status == 202
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and time.monotonic() < deadline, exc
                time.sleep(0.2)
        pattern = (
            r"since the start: (\d+) requests, 1 events accepted, 0 refused, (\d+) requests answered 503, "
            r"1 answered 401 \(token missing or wrong\)"
        )
        wait_for(lambda: re.search(pattern, err.read_text()) is not None, "the status line", err.read_text)
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    text = err.read_text()
    requests, unavailable = map(int, re.findall(pattern, text)[-1])
    assert requests == 2 + unavailable  # the one without a token, the 503s while connecting, the one accepted
    for line in (
        f"availability: webhook: listening on {url}",
        f"  reads    POST {url}/events: CloudEvents from CallGuide, with a bearer token (AVAILABILITY_WEBHOOK_TOKEN)",
        f"  metrics  {url}/metrics, health {url}/healthz (503 while Kafka is away)",
        "  stop     Ctrl-C or SIGTERM stops it (requests under way are answered first)",
    ):
        assert line in text.splitlines(), (line, text[:2000])
    assert ESC not in text


def test_the_queue_log_follower_says_where_it_reads_and_counts_lines(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "queue_log"
    log.write_text(QUEUE_LOG_LINE)
    checkpoint = tmp_path / "cp.json"
    args = [
        *AVAILABILITY, "ingest", "queue-log", "--follow", str(log), "--checkpoint", str(checkpoint),
        "--interval", "0.2", "--status-every", "0.5",
    ]  # fmt: skip
    err = tmp_path / "follow.stderr"
    with err.open("wb") as handle:
        process = subprocess.Popen(args, env=env, stderr=handle)
    try:
        # One line, one call: offered and queued (2 events), nothing rejected.
        line = "since the start: 1 lines read, 2 events published, 0 rejected"
        wait_for(lambda: line in err.read_text(), "the status line", err.read_text)
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.read_text()
    assert f"availability: queue-log: following {log}, looking every 0.2 s" in text
    assert f"  reads   {log} from line 1 of queue_log" in text.splitlines()
    assert f"  keeps   its place in {checkpoint}" in text.splitlines()


def test_the_imap_poller_says_what_it_polled(dovecot: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    user = dovecot.new_user()
    conn = dovecot.connect(user)
    received = datetime(2026, 4, 21, 10, tzinfo=UTC)
    deliver(conn, "INBOX", received, {"Message-ID": "<banner@kund.example>", "From": "kund@example.net"})
    conn.logout()
    args = [
        "ingest", "imap", "--mailbox", "kundreskontra", "--host", dovecot.host, "--port", str(dovecot.port),
        "--tls-ca", str(dovecot.ca), "--user", user, "--checkpoint", str(tmp_path / "cp.json"), "--once",
        "--agreements", str(shared_examples() / "agreements.yaml"),
    ]  # fmt: skip
    ran = cli(env | {"AVAILABILITY_IMAP_PASSWORD": PASSWORD}, *args, timeout=60)
    lines = ran.stderr.splitlines()
    assert "availability: imap kundreskontra: polled once" in lines, ran.stderr
    assert (
        f"  reads   {user} at {dovecot.host}:{dovecot.port} (STARTTLS, password): INBOX (received), Sent (replied), Done (closed)"
        in lines
    )
    # One message in the inbox: one mail.received.
    assert "imap kundreskontra: 1 polls, 1 messages read, 1 events published, 0 rejected" in lines, ran.stderr
    assert PASSWORD not in ran.stderr


def test_simulate_at_speed_tells_the_simulated_clock_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    args = [*AVAILABILITY, "simulate", "--start", "2026-04-01", "--days", "1", "--seed", "1", "--to-kafka"]
    err = tmp_path / "simulate.stderr"
    with err.open("wb") as handle:
        process = subprocess.Popen([*args, "--speed", "60"], env=env, stderr=handle)
    clock = r"availability: simulate: simulated 2026-04-01 \d\d:\d\d:\d\d at 60×: \d+ events? published, next in \d+ s"
    try:
        wait_for(lambda: re.search(clock, err.read_text()) is not None, "the simulated clock", err.read_text, 30)
    finally:
        assert stop(process, signal.SIGINT) == 130  # interrupted: it runs a simulated day at 60×
    assert ESC not in err.read_text()


def test_publish_tells_its_progress_and_its_total(tmp_path: Path, env: dict[str, str]) -> None:
    events = tmp_path / "events.jsonl"
    cli(env, "simulate", "--start", "2026-04-01", "--days", "1", "--seed", "2", "--out", str(events))
    count = len(events.read_bytes().splitlines())
    size = events.stat().st_size
    # Not a terminal: a plain line when a status interval has passed (here every batch), then the total.
    ran = cli(env, "publish", str(events), "--status-every", "0.001")
    kb = f"{size / 1000:.1f} kB" if size < 1_000_000 else f"{size / 1e6:.1f} MB"
    assert f"availability: publish: {count} events published, 0 rejected (100% of {kb} read)" in ran.stderr
    assert f"published {count} events to Kafka, 0 rejected" in ran.stderr.splitlines()
