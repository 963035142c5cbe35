"""The IMAP poller never sends the password in clear text unless told to (issue #7, item 10).

A tiny IMAP server on loopback records every byte the client sends, so a test can show that a
refused session did not carry the password. (The TLS sessions themselves are tested against
Dovecot in test_imap.py.)
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from availability.cli import main
from ingest.imap.checkpoint import Checkpoint
from ingest.imap.errors import ImapError, ImapUnavailable
from ingest.imap.poller import ImapPoller

pytestmark = pytest.mark.integration

USER = "kundreskontra@example.se"
PASSWORD = "pässword-never-in-clear"  # non-ASCII: the poller would use AUTHENTICATE PLAIN
MAILBOX = "kundreskontra"
KEY = "edges-imap-key-of-at-least-32-bytes!!"


class FakeImap:
    """Greets with `capabilities`, answers CAPABILITY/LOGOUT, says OK to a login (to see what a
    client would do next) and NO to everything else; STARTTLS gets `starttls` (BAD by default:
    this server cannot do TLS). `received` is everything clients sent."""

    def __init__(self, capabilities: str, starttls: str = "BAD TLS is not available") -> None:
        self.capabilities = capabilities
        self.starttls = starttls
        self.received = b""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.sendall(f"* OK [CAPABILITY {self.capabilities}] fake IMAP ready\r\n".encode())
        reader = conn.makefile("rb")
        while not self._stop.is_set():
            line = reader.readline()
            if not line:
                return
            self.received += line
            tag, _, rest = line.decode("utf-8", "replace").strip().partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                conn.sendall(f"* CAPABILITY {self.capabilities}\r\n{tag} OK done\r\n".encode())
            elif command == "LOGOUT":
                conn.sendall(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                return
            elif command == "STARTTLS":
                conn.sendall(f"{tag} {self.starttls}\r\n".encode())
            elif command == "LOGIN":
                conn.sendall(f"{tag} OK logged in\r\n".encode())
            elif command == "AUTHENTICATE":
                conn.sendall(b"+ \r\n")
                self.received += reader.readline()
                conn.sendall(f"{tag} OK logged in\r\n".encode())
            else:
                conn.sendall(f"{tag} NO not here\r\n".encode())


MakeFake = Callable[..., FakeImap]


@pytest.fixture
def fake_imap() -> Iterator[MakeFake]:
    servers: list[FakeImap] = []

    def make(capabilities: str, starttls: str = "BAD TLS is not available") -> FakeImap:
        server = FakeImap(capabilities, starttls)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def password_sent(server: FakeImap) -> bool:
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    return PASSWORD.encode() in server.received or plain in server.received or b"LOGIN" in server.received


def poller(port: int, tmp_path: Path, **options: object) -> ImapPoller:
    return ImapPoller(
        "127.0.0.1",
        port,
        USER,
        PASSWORD,
        MAILBOX,
        checkpoint=Checkpoint(tmp_path / "cp.json"),
        key=KEY.encode(),
        timeout=5,
        **options,  # type: ignore[arg-type]
    )


def refused(imap: ImapPoller) -> str:
    with pytest.raises(ImapError) as caught:
        imap.poll()
    assert not isinstance(caught.value, ImapUnavailable)  # not retried: a configuration to fix
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_a_server_without_starttls_is_refused_before_the_password(fake_imap: MakeFake, tmp_path: Path) -> None:
    server = fake_imap("IMAP4rev1 AUTH=PLAIN")
    reason = refused(poller(server.port, tmp_path))
    assert "STARTTLS" in reason and "--ssl" in reason
    assert not password_sent(server), server.received


def test_a_failed_starttls_is_refused_before_the_password(fake_imap: MakeFake, tmp_path: Path) -> None:
    server = fake_imap("IMAP4rev1 STARTTLS AUTH=PLAIN")
    reason = refused(poller(server.port, tmp_path))
    assert "STARTTLS" in reason
    assert b"STARTTLS" in server.received
    assert not password_sent(server), server.received


def test_logindisabled_is_respected_even_with_the_plaintext_flag(fake_imap: MakeFake, tmp_path: Path) -> None:
    server = fake_imap("IMAP4rev1 STARTTLS LOGINDISABLED")
    reason = refused(poller(server.port, tmp_path, insecure_plaintext=True))
    assert "LOGINDISABLED" in reason
    assert not password_sent(server), server.received


def test_the_plaintext_flag_sends_the_password_only_when_asked_and_warns(
    fake_imap: MakeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = fake_imap("IMAP4rev1 AUTH=PLAIN")
    with caplog.at_level("WARNING", logger="ingest.imap.source"), pytest.raises(ImapError, match="cannot be opened"):
        poller(server.port, tmp_path, insecure_plaintext=True).poll()  # logs in; the fake has no folders
    assert password_sent(server)
    warning = caplog.text
    assert "--insecure-plaintext" in warning and "clear text" in warning
    with pytest.raises(ImapError, match="contradict"):
        poller(server.port, tmp_path, insecure_plaintext=True, ssl=True)


def test_the_command_refuses_in_one_line_and_sends_no_password(
    fake_imap: MakeFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake_imap("IMAP4rev1 AUTH=PLAIN")
    monkeypatch.setenv("AVAILABILITY_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", KEY)
    args = ["ingest", "imap", "--mailbox", MAILBOX, "--host", "127.0.0.1", "--port", str(server.port)]
    args += ["--user", USER, "--once", "--checkpoint", str(tmp_path / "cp.json")]
    assert main(args) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("availability:")]
    assert len(lines) == 1 and "STARTTLS" in lines[0], err
    assert "Traceback" not in err
    assert not password_sent(server), server.received
    # The flags exist: a CA file that is not there is one line too.
    missing = str(tmp_path / "no-such-ca.pem")
    assert main([*args, "--tls-ca", missing]) == 1
    err = capsys.readouterr().err
    assert "no-such-ca.pem" in err and "Traceback" not in err
    assert main([*args, "--ssl", "--insecure-plaintext"]) == 1
    assert "contradict" in capsys.readouterr().err
    assert not password_sent(server)
