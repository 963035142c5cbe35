"""The XOAUTH2 initial response and the refusal challenge (ingest/imap/oauth.py, poller `_authenticate`).

The dialogue tests use a scripted IMAP server on loopback that answers as Exchange Online does
when it refuses a token without SASL-IR: a base64 JSON challenge, which the client must answer
with an empty line before the tagged NO.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.imap.checkpoint import Checkpoint
from ingest.imap.errors import ImapError
from ingest.imap.oauth import EntraToken, Xoauth2, challenge_text, xoauth2
from ingest.imap.poller import ImapPoller

TOKEN = "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"  # the access token of Microsoft's example
USER = "test@contoso.onmicrosoft.com"


def test_the_initial_response_is_microsofts_example() -> None:
    # Microsoft's page "Authenticate an IMAP, POP or SMTP connection using OAuth" (SASL XOAUTH2)
    # gives this exact base64 for this user and token (there printed on two lines).
    expected = (
        "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVy"
        "IEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
    )
    assert base64.b64encode(xoauth2(USER, TOKEN)).decode() == expected
    assert xoauth2(USER, TOKEN) == b"user=test@contoso.onmicrosoft.com\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"


def test_a_separator_inside_a_field_is_refused() -> None:
    with pytest.raises(ImapError, match="cannot contain"):
        xoauth2("a\x01b@example.se", TOKEN)
    with pytest.raises(ImapError, match="cannot contain"):
        xoauth2(USER, "tok\x01en")


def test_the_exchange_answers_a_refusal_with_an_empty_line() -> None:
    exchange = Xoauth2(USER, TOKEN)
    assert exchange(b"") == xoauth2(USER, TOKEN)  # the first, empty challenge: the initial response
    assert exchange.refusal is None
    assert exchange(b'{"status":"401","schemes":"bearer","scope":"mail"}') == b""  # then an empty line
    assert exchange.refusal == "status 401, schemes bearer, scope mail"
    assert exchange(b"more") is None  # a third challenge is not XOAUTH2: imaplib cancels with "*"


@pytest.mark.parametrize(
    ("challenge", "text"),
    [
        # Gmail's documented refusal: the keys in this order, whatever order they came in.
        (b'{"scope":"https://mail.google.com/","schemes":"Bearer","status":"400"}',
         "status 400, schemes Bearer, scope https://mail.google.com/"),
        (b'{"error":"invalid_token"}', '{"error": "invalid_token"}'),  # JSON without those keys: as JSON
        (b"not json\r\nsecond line", "not json second line"),  # one line
        (b"\xff\xfe", "\ufffd\ufffd"),  # not UTF-8: replaced, no exception
        (b'{"status":"401","token":"' + TOKEN.encode() + b'"}', "status 401"),
        (b"echo " + TOKEN.encode(), "echo …"),  # a server echoing the token: cut out
        (b"x" * 400, "x" * 299 + "…"),  # at most 300 characters
    ],
)  # fmt: skip
def test_challenge_text(challenge: bytes, text: str) -> None:
    assert challenge_text(challenge, TOKEN) == text


TOKENS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=", min_size=8)


@given(challenge=st.binary(max_size=2000), token=TOKENS)
def test_any_challenge_is_one_short_line_without_the_token(challenge: bytes, token: str) -> None:
    for raw in (challenge, challenge + token.encode(), json.dumps({"status": token}).encode()):
        text = challenge_text(raw, token)
        assert "\n" not in text and "\r" not in text and len(text) <= 300
        assert token not in text


def test_the_token_provider_never_shows_its_secret() -> None:
    token = EntraToken("contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555", "s3cret-value")
    assert "s3cret-value" not in repr(token)
    assert token.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    with pytest.raises(ImapError, match="tenant and client id"):
        EntraToken(" ", "", "s")
    with pytest.raises(ImapError, match="client secret"):
        EntraToken("t", "c", "")
    with pytest.raises(ImapError, match="https://"):
        EntraToken("t", "c", "s", authority_host="http://login.example")


# -- the dialogue, against a scripted server ---------------------------------------------------


class ScriptedImap:
    """Answers one connection: CAPABILITY, AUTHENTICATE (refusing with `challenge` then NO, or
    accepting), EXAMINE (no such folder), LOGOUT. Records every line it receives."""

    def __init__(self, capabilities: str, accept: bool, challenge: bytes | None) -> None:
        self.capabilities, self.accept, self.challenge = capabilities, accept, challenge
        self.received: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        with conn, conn.makefile("rwb") as f:

            def say(*lines: bytes) -> None:
                f.write(b"".join(line + b"\r\n" for line in lines))
                f.flush()

            def hear() -> bytes:
                line = f.readline()
                self.received.append(line)
                return line

            say(b"* OK scripted IMAP ready")
            while line := hear():
                tag, command = line.split()[0], line.split()[1].upper()
                if command == b"CAPABILITY":
                    say(b"* CAPABILITY IMAP4rev1 " + self.capabilities.encode(), tag + b" OK CAPABILITY completed.")
                elif command == b"AUTHENTICATE":
                    say(b"+ ")
                    hear()  # the initial response
                    if self.accept:
                        say(tag + b" OK AUTHENTICATE completed.")
                        continue
                    if self.challenge is not None:
                        say(b"+ " + base64.b64encode(self.challenge))
                        hear()  # must be empty
                    say(tag + b" NO AUTHENTICATE failed.")
                elif command == b"LOGOUT":
                    say(b"* BYE", tag + b" OK LOGOUT completed.")
                    return
                else:
                    say(tag + b" NO [NONEXISTENT] no such folder")


@pytest.fixture
def scripted() -> Iterator[list[ScriptedImap]]:
    servers: list[ScriptedImap] = []
    yield servers
    for server in servers:
        server.listener.close()
        server.thread.join(timeout=5)


def poll(server: ScriptedImap, tmp_path: Path) -> None:
    # Loopback without TLS so the script can be plain text; the TLS rules are the same as with a password.
    ImapPoller(
        "127.0.0.1", server.port, USER, "", "kundreskontra", insecure_plaintext=True,
        checkpoint=Checkpoint(tmp_path / "cp.json"), timeout=10, token=lambda: TOKEN,
    ).poll()  # fmt: skip


def test_exchanges_refusal_with_a_challenge(scripted: list[ScriptedImap], tmp_path: Path) -> None:
    challenge = b'{"status":"401","schemes":"bearer"}'
    server = ScriptedImap("AUTH=PLAIN AUTH=XOAUTH2", accept=False, challenge=challenge)
    scripted.append(server)
    with pytest.raises(ImapError) as caught:
        poll(server, tmp_path)
    assert str(caught.value) == (
        f"IMAP at 127.0.0.1:{server.port} refused the OAuth2 token of '{USER}' "
        "(AUTHENTICATE failed.; status 401, schemes bearer)"
    )
    server.thread.join(timeout=5)
    # CAPABILITY, AUTHENTICATE XOAUTH2, the initial response, the empty answer to the challenge, LOGOUT.
    assert server.received[1].split()[1:] == [b"AUTHENTICATE", b"XOAUTH2"]
    assert base64.b64decode(server.received[2]) == xoauth2(USER, TOKEN)
    assert server.received[3] == b"\r\n"  # the empty line Exchange waits for
    assert server.received[4].split()[1] == b"LOGOUT"


def test_a_refusal_without_a_challenge_and_a_success(scripted: list[ScriptedImap], tmp_path: Path) -> None:
    # Exchange's documented failure with the response sent at once: just the NO.
    refusing = ScriptedImap("AUTH=XOAUTH2", accept=False, challenge=None)
    scripted.append(refusing)
    with pytest.raises(ImapError, match=r"refused the OAuth2 token of '[^']+' \(AUTHENTICATE failed\.\)$"):
        poll(refusing, tmp_path)
    accepting = ScriptedImap("AUTH=XOAUTH2", accept=True, challenge=None)
    scripted.append(accepting)
    with pytest.raises(ImapError, match="folder 'INBOX' cannot be opened"):  # signed in, then EXAMINE
        poll(accepting, tmp_path)


def test_a_server_without_xoauth2_never_sees_the_token(scripted: list[ScriptedImap], tmp_path: Path) -> None:
    server = ScriptedImap("AUTH=PLAIN", accept=True, challenge=None)
    scripted.append(server)
    with pytest.raises(ImapError, match=r"does not offer OAuth2 sign-in \(no AUTH=XOAUTH2 capability\)$"):
        poll(server, tmp_path)
    server.thread.join(timeout=5)
    assert not any(b"AUTHENTICATE" in line or TOKEN.encode() in line for line in server.received)
