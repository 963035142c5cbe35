"""The webhook at its edges (issue #7, items 13, 16, 18): hostile bytes, slow clients, closed
connections, secrets in URLs, a broker outage's log flood and an honest /healthz.

The in-process tests use a recording publisher (no Kafka). The `serve` tests run the real
`availability ingest webhook` in a subprocess, talk to it with raw sockets on loopback and
read its stderr, as an operator would; they need the shared broker only for 202 answers.
Every loop is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from availability.settings import Settings
from availability.wiring import Wiring
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.webhook import BATCH_TYPE, DEFAULT_MAX_EVENT_BYTES, create_app, create_service_app
from schemas.agreements import Agreements, load_agreements
from schemas.events import MAX_EVENT_BYTES, Event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "edges-test-token"
KEY = b"edges-test-key-of-at-least-32-bytes!"
SINGLE = "application/cloudevents+json"


class Recorder:
    """A publisher that keeps what it is given (always 'connected')."""

    connected = True

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: Iterable[Event], timeout: float = 10.0) -> int:
        batch = list(events)
        self.events.extend(batch)
        return len(batch)


@pytest.fixture(scope="module")
def shipped() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="module")
def boundary(shipped: Agreements) -> Boundary:
    return Boundary(shipped, Pseudonymiser(KEY, shipped))


def event(call_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"edges-{call_id}",
        "source": "callguide",
        "type": "call.queued",
        "time": "2026-03-02T09:00:00+01:00",
        "data": {"call_id": call_id, "queue": "kundreskontra", **extra},
    }


def request(
    body: bytes, *, path: str = "/events", content_type: str = SINGLE, auth: bytes = b"Bearer " + TOKEN.encode()
) -> bytes:
    head = [
        f"POST {path} HTTP/1.1".encode(),
        b"Host: 127.0.0.1",
        b"Content-Type: " + content_type.encode(),
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
    ]
    if auth:
        head.append(b"Authorization: " + auth)
    return b"\r\n".join([*head, b"", body])


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes, read the answer until the server closes: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def in_process(app: Any, scenario: Any) -> Any:
    async def main() -> Any:
        async with TestServer(app) as server:
            assert server.port is not None
            return await asyncio.get_running_loop().run_in_executor(None, scenario, server.port)

    return asyncio.run(main())


# -- item 16: inputs that gave 500 --------------------------------------------------------------


def test_deep_nesting_and_invalid_utf8_are_client_errors_not_500(boundary: Boundary) -> None:
    recorder = Recorder()
    app = create_app(boundary, recorder, token=TOKEN)
    deep = b"[" * 5000 + b"]" * 5000
    deep_object = b'{"a":' * 5000 + b"1" + b"}" * 5000
    nested_item = json.dumps([event("c-ok")]).encode()[:-1] + b"," + deep + b"]"
    latin1_item = json.dumps(event("c-latin")).encode().replace(b"c-latin", b"K\xf6")  # a Latin-1 export
    bad_utf8_batch = b"[" + json.dumps(event("c-fine")).encode() + b"," + latin1_item + b"]"

    def scenario(port: int) -> dict[str, tuple[int, bytes]]:
        return {
            "deep single": exchange(port, request(deep)),
            "deep object": exchange(port, request(deep_object)),
            "deep batch": exchange(port, request(deep, content_type=BATCH_TYPE)),
            "deep item": exchange(port, request(nested_item, content_type=BATCH_TYPE)),
            "latin-1 single": exchange(port, request(latin1_item)),
            "latin-1 item": exchange(port, request(bad_utf8_batch, content_type=BATCH_TYPE)),
        }

    replies = in_process(app, scenario)
    for name, (status, _) in replies.items():
        assert status in (400, 422), (name, replies[name])
    status, body = replies["latin-1 item"]
    assert status == 422
    assert [r["index"] for r in json.loads(body)["rejected"]] == [1]  # the item is named
    assert recorder.events == []  # all or nothing


def test_undecodable_authorization_headers_are_401(boundary: Boundary) -> None:
    app = create_app(boundary, Recorder(), token=TOKEN)
    ok = json.dumps(event("c-auth")).encode()
    headers = {
        "invalid utf-8": b"Bearer \xff\xfe",
        "latin-1": b"Bearer " + TOKEN.encode() + b"\xe5",
        "utf-8": "Bearer tökén".encode(),
        "scheme only": b"Bearer",
        "other scheme": b"Basic \xc3\xa5",
    }

    def scenario(port: int) -> dict[str, int]:
        out = {name: exchange(port, request(ok, auth=value))[0] for name, value in headers.items()}
        out["the token"] = exchange(port, request(ok))[0]
        return out

    replies = in_process(app, scenario)
    assert replies == {**dict.fromkeys(headers, 401), "the token": 202}


def test_the_per_event_limit_is_the_contracts() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == MAX_EVENT_BYTES


# -- the real command in a subprocess -----------------------------------------------------------

SERVE = """
import logging, threading, time
from availability.cli import main
{prelude}
raise SystemExit(main(["ingest", "webhook", "--port", "0"]))
"""

# A stand-in for kafka-python while a broker is away: an ERROR with a traceback per attempt.
FLOOD = """
def flood():
    deadline = time.monotonic() + 20
    while not logging.getLogger().handlers and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # serve() has configured logging by now
    conn = logging.getLogger("kafka.conn")
    for _ in range(1000):
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            conn.error("<BrokerConnection node_id=1 host=127.0.0.1:1>: connect attempt failed", exc_info=True)
    logging.getLogger("edges.test").warning("flood done")
threading.Thread(target=flood, daemon=True).start()
"""


@dataclass
class Served:
    port: int
    process: subprocess.Popen[str]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log()[-3000:]}"
            time.sleep(0.1)


@contextmanager
def served(tmp_path: Path, bootstrap: str, prefix: str, prelude: str = "") -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAILABILITY_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AVAILABILITY_TOPIC_PREFIX": prefix,
        "AVAILABILITY_WEBHOOK_TOKEN": TOKEN,
        "AVAILABILITY_PSEUDONYM_KEY": KEY.decode(),
    }
    stderr = tmp_path / "webhook.stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE.format(prelude=prelude)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "webhook listening on http://127.0.0.1:" in line, line + stderr.read_text()
        yield Served(int(line.split("127.0.0.1:", 1)[1].split()[0]), process, stderr)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()  # type: ignore[union-attr]  # else the garbage collector does, with a ResourceWarning


def wait_until_publishing(port: int, timeout: float = 30.0) -> None:
    """POST until Kafka is connected (the webhook answers 503 until then)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = exchange(port, request(json.dumps(event("c-warmup")).encode()))
        if status == 202:
            return
        assert status == 503 and time.monotonic() < deadline, (status, body)
        time.sleep(0.3)


def test_no_query_string_or_token_reaches_the_log(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    ok = json.dumps(event("c-log")).encode()
    with served(tmp_path, kafka_bootstrap, f"{topic_prefix}edges-log.") as server:
        wait_until_publishing(server.port)
        assert (
            exchange(server.port, b"GET /healthz?token=SECRET-ONE HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
            == 200
        )
        assert exchange(server.port, request(ok, path="/events?access_token=SECRET-TWO&x=1"))[0] == 202
        # Broken requests: aiohttp's parser error quotes the offending line.
        assert exchange(server.port, b"GET /healthz?token=SECRET-THREE HTTP/1.1 junk\r\nHost: x\r\n\r\n")[0] == 400
        assert exchange(server.port, request(ok, auth=b"Bearer SECRET-FOUR\x01"))[0] == 400
        assert exchange(server.port, request(ok, path="/events?token=SECRET-FIVE", auth=b"Bearer wrong"))[0] == 401
        time.sleep(0.5)
    log = server.log()
    assert "SECRET" not in log
    assert "GET /healthz 200" in log and "POST /events 202" in log and "POST /events 401" in log
    assert "Traceback" not in log


def test_clients_closing_connections_write_no_tracebacks(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    ok = json.dumps(event("c-close")).encode()
    with served(tmp_path, kafka_bootstrap, f"{topic_prefix}edges-close.") as server:
        wait_until_publishing(server.port)
        half_body = request(ok + b" " * 1000)[: -1000 - len(ok) // 2]
        for raw, linger in ((half_body, 0.3), (request(ok), 0.0), (request(ok)[:40], 0.1)):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(raw)
                time.sleep(linger)
        time.sleep(2.0)  # a publish in flight finishes
        assert exchange(server.port, request(ok))[0] == 202  # still serving
    log = server.log()
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]


def test_a_broker_outage_does_not_flood_the_log(tmp_path: Path) -> None:
    with socket.socket() as s:  # a closed loopback port: no broker
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    with served(tmp_path, closed, "edges-flood.", prelude=FLOOD) as server:
        server.wait_for_log("flood done")
    log = server.log()
    assert log.count("connect attempt failed") <= 2, log[-3000:]
    assert "Traceback" not in log
    assert log.count("Kafka unavailable") == 1


def _slow_sockets(port: int, count: int, first: bytes) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(first)
        s.setblocking(False)
        out.append(s)
    return out


def test_slow_clients_are_cut_off_in_bounded_time_while_others_are_served(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    n = 50
    ok = json.dumps(event("c-slow")).encode()
    slow_body_head = request(b"x" * 10_000)[:-10_000] + b"["
    with served(tmp_path, kafka_bootstrap, f"{topic_prefix}edges-slow.") as server:
        wait_until_publishing(server.port)
        started = time.monotonic()
        headers = _slow_sockets(server.port, n, b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        bodies = _slow_sockets(server.port, n, slow_body_head)
        assert exchange(server.port, request(ok))[0] == 202  # served while 2n slow clients wait

        open_ = {s: ("header" if s in headers else "body") for s in headers + bodies}
        closed_after: dict[socket.socket, float] = {}
        answers: dict[socket.socket, bytes] = {s: b"" for s in open_}
        deadline = started + 25  # the test's own bound; the webhook must be well within it
        next_drip = time.monotonic()
        # poll, not select: select() refuses descriptors above 1023, and a test process that has
        # run the warehouse tests holds hundreds (chDB keeps /proc files open per engine thread).
        poller, by_fd = select.poll(), {s.fileno(): s for s in open_}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        try:
            while open_ and time.monotonic() < deadline:
                readable = [by_fd[fd] for fd, _ in poller.poll(200) if by_fd[fd] in open_]
                for s in readable:
                    try:
                        chunk = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    answers[s] += chunk
                    if not chunk:
                        closed_after[s] = time.monotonic() - started
                        del open_[s]
                        poller.unregister(s)
                if time.monotonic() >= next_drip:  # one byte a second per client: never finishing
                    for s, kind in list(open_.items()):
                        with suppress(BrokenPipeError, ConnectionResetError, BlockingIOError):
                            s.send(b"X-Slow: 1\r\n"[:1] if kind == "header" else b" ")
                    next_drip = time.monotonic() + 1.0
            assert exchange(server.port, request(ok))[0] == 202  # and after them
        finally:
            for s in headers + bodies:
                s.close()
    assert not open_, f"{len(open_)} slow connections still open after {deadline - started:.0f} s"
    assert max(closed_after.values()) <= 15.0, sorted(closed_after.values())[-5:]
    for s in bodies:
        assert answers[s].startswith(b"HTTP/1.1 408"), answers[s][:100]
    assert "Traceback" not in server.log()


def test_connections_beyond_the_cap_get_503_and_the_rest_are_served(boundary: Boundary) -> None:
    from ingest.webhook import ServerLimits, listening

    app = create_app(boundary, Recorder(), token=TOKEN)

    async def main() -> tuple[bytes, int]:
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with listening(app, sock, ServerLimits(max_connections=3)):
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            for _, w in idle:
                w.close()
            await asyncio.sleep(0.3)
            async with (
                ClientSession() as session,
                session.post(
                    f"http://127.0.0.1:{port}/events",
                    data=json.dumps(event("c-cap")),
                    headers={"Content-Type": SINGLE, "Authorization": f"Bearer {TOKEN}"},
                ) as resp,
            ):
                return refused, resp.status

    refused, status = asyncio.run(main())
    assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After" in refused
    assert status == 202


# -- item 18: /healthz --------------------------------------------------------------------------


def test_healthz_is_503_degraded_while_kafka_is_unreachable(shipped: Agreements) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=closed,  # type: ignore[call-arg]  # the field's alias
        webhook_token=SecretStr(TOKEN),
        pseudonym_key=SecretStr(KEY.decode()),
    )
    wiring = Wiring(settings)
    app = create_service_app(
        wiring.boundary(shipped, live=True), wiring.reconnecting_publisher(), token=TOKEN, publish_timeout=2
    )

    def scenario(port: int) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    assert in_process(app, scenario) == (503, {"status": "degraded", "kafka": "unreachable"})
