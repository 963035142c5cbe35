"""OAuth2 (XOAUTH2) sign-in of the IMAP poller, as for Exchange Online, against a real Dovecot.

Dovecot checks each token with its `oauth2` passdb; the tokens come from MSAL's real
client-credentials flow against the fixture's stand-in for Microsoft Entra ID (loopback, TLS),
the one service that cannot run here (tests/integration/dovecot_fixture.py). Everything else is
the product's own code: EntraToken (MSAL), ImapPoller, the wiring and `availability ingest imap`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from availability.settings import Settings
from availability.wiring import Wiring
from ingest.imap.checkpoint import Checkpoint
from ingest.imap.errors import ImapError, ImapUnavailable
from ingest.imap.oauth import EntraToken
from ingest.imap.poller import ImapPoller
from schemas.agreements import load_agreements
from schemas.events import MailEvent, MailReceived, MailReplied
from schemas.topics import MAIL, with_prefix
from tests.conftest import shared_examples
from tests.integration.dovecot_fixture import App, Dovecot, deliver, dovecot
from tests.integration.streaming import cli, environment

__all__ = ["dovecot"]  # the session fixture, used by name below

pytestmark = pytest.mark.integration

CEST = timezone(timedelta(hours=2))
KEY = "imap-test-key-of-at-least-32-bytes!!"
MAILBOX = "kundreskontra"
B1 = {"Message-ID": "<b1@kund2.example>", "From": "kund2@example.net", "Subject": "Avbetalningsplan"}
RB = {"Message-ID": "<rb@kommun.example>", "From": "kundreskontra@kommun.example", "Subject": "SV: Avbetalningsplan",
      "References": "<b1@kund2.example>"}  # fmt: skip
D1 = {"Message-ID": "<d1@kund4.example>", "From": "kund4@example.se", "Subject": "Makulering av faktura"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 4, day, hour, minute, tzinfo=CEST)


def entra_token(server: Dovecot, app: App, secret: str | None = None, tenant: str | None = None) -> EntraToken:
    """The product's token provider, pointed at the stand-in (its certificate is the fixture's CA)."""
    return EntraToken(
        tenant or server.entra.tenant,
        app.client_id,
        app.secret if secret is None else secret,
        authority_host=server.entra.url,
        ca=server.ca,
        timeout=10,
    )


def oauth_poller(server: Dovecot, user: str, token: object, checkpoint: Path, now: datetime) -> ImapPoller:
    """Implicit TLS (as outlook.office365.com:993), the certificate verified, no password at all."""
    return ImapPoller(
        server.host, server.tls_port, user, "", MAILBOX, ssl=True, tls_ca=server.ca,
        checkpoint=Checkpoint(checkpoint), clock=lambda: now, timeout=10, token=token,  # type: ignore[arg-type]
    )  # fmt: skip


def brief(events: list[MailEvent]) -> list[tuple[str, datetime, str]]:
    return [(type(ev).__name__, ev.time, ev.data.thread_id) for ev in events]


def xoauth2_logins(server: Dovecot, user: str) -> list[str]:
    return [line for line in server.log().splitlines() if "Login:" in line and f"user=<{user}>" in line]


def test_polls_a_mailbox_with_an_msal_token(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    app = dovecot.entra.register(user)
    conn = dovecot.connect(user)  # the password account still works beside OAuth2
    deliver(conn, "INBOX", at(21, 10), B1)
    deliver(conn, "Sent", at(21, 13), RB)
    token = entra_token(dovecot, app)
    requests_before = dovecot.entra.token_requests

    first = oauth_poller(dovecot, user, token, tmp_path / "cp.json", now=at(21, 14))
    events = first.poll()
    first.commit()
    # B1 arrived 10:00 and opened thread <b1>; the reply at 13:00 references it: same thread.
    assert brief(events) == [
        ("MailReceived", at(21, 10), "<b1@kund2.example>"),
        ("MailReplied", at(21, 13), "<b1@kund2.example>"),
    ]
    assert token.source == "identity_provider"  # MSAL asked the token endpoint ...
    assert dovecot.entra.token_requests == requests_before + 1

    deliver(conn, "INBOX", at(27, 14), D1)
    conn.logout()
    second = oauth_poller(dovecot, user, token, tmp_path / "cp.json", now=at(27, 15))
    later = second.poll()
    # Only the new message: the checkpoint works as with a password.
    assert brief(later) == [("MailReceived", at(27, 14), "<d1@kund4.example>")]
    assert isinstance(later[0], MailReceived) and isinstance(events[1], MailReplied)
    # ... and the second poll took MSAL's cached token (valid ~1 h): no second token request.
    assert token.source == "cache" and dovecot.entra.token_requests == requests_before + 1
    logins = xoauth2_logins(dovecot, user)
    assert sum("method=XOAUTH2" in line for line in logins) == 2, logins  # the two polls
    assert all("TLS" in line for line in logins), logins

    # STARTTLS (port 143) takes the token just as well.
    starttls = ImapPoller(
        dovecot.host, dovecot.port, user, "", MAILBOX, tls_ca=dovecot.ca,
        checkpoint=Checkpoint(tmp_path / "starttls.json"), clock=lambda: at(27, 15), token=token,
    ).poll()  # fmt: skip
    assert len(starttls) == 3


def test_a_refused_token_is_one_clear_line(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    app = dovecot.entra.register(user)
    token = entra_token(dovecot, app)
    oauth_poller(dovecot, user, token, tmp_path / "cp.json", now=at(21, 14)).poll()  # signs in: a token is cached

    # The token expires (or is revoked) while MSAL still holds it: Dovecot's introspection says
    # inactive, Dovecot refuses. Not retried (a configuration problem), no token in the message.
    issued = dovecot.entra.expire(app)
    assert len(issued) == 1
    with pytest.raises(ImapError) as caught:
        oauth_poller(dovecot, user, token, tmp_path / "cp.json", now=at(21, 15)).poll()
    message = str(caught.value)
    assert not isinstance(caught.value, ImapUnavailable)
    # Dovecot refuses XOAUTH2 as Exchange and Gmail do: a base64 JSON challenge
    # {"status":"401","schemes":"bearer","scope":"mail"}, which the poller answers with an empty
    # line, then the tagged NO. Both are in the message: it is Dovecot's reason, word for word.
    assert message == (
        f"IMAP at {dovecot.host}:{dovecot.tls_port} refused the OAuth2 token of '{user}' "
        "([AUTHENTICATIONFAILED] Authentication failed.; status 401, schemes bearer, scope mail)"
    )
    assert "\n" not in message and issued[0] not in message

    # A token that was never issued, and a token of an app granted another mailbox (no
    # Add-MailboxPermission for this one): refused the same way.
    with pytest.raises(ImapError, match=f"refused the OAuth2 token of '{user}'"):
        oauth_poller(dovecot, user, lambda: "not-a-token", tmp_path / "cp.json", now=at(21, 15)).poll()
    other = dovecot.new_user()
    with pytest.raises(ImapError, match=f"refused the OAuth2 token of '{other}'"):
        oauth_poller(dovecot, other, entra_token(dovecot, dovecot.entra.register(user)), tmp_path / "o.json",
                     now=at(21, 15)).poll()  # fmt: skip


def test_entra_refusals_name_tenant_and_client_never_the_secret(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    app = dovecot.entra.register(user)
    entra = dovecot.entra
    wrong = "wrong-secret-value-0123456789"
    with pytest.raises(ImapError) as caught:
        oauth_poller(dovecot, user, entra_token(dovecot, app, secret=wrong), tmp_path / "cp.json", at(21, 14)).poll()
    message = str(caught.value)
    assert not isinstance(caught.value, ImapUnavailable)
    # Entra's code and first line, not its trace and correlation ids (the stand-in sends them).
    assert message == (
        f"Entra ID at {entra.url}/{entra.tenant} (client id '{app.client_id}') refused a token: invalid_client: "
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client "
        f"secret value, not the client secret ID, for a secret added to app '{app.client_id}'."
    )
    assert wrong not in message and app.secret not in message
    assert xoauth2_logins(dovecot, user) == []  # no IMAP sign-in was even tried

    with pytest.raises(
        ImapError, match=r"\(client id '[^']+'\): no OpenID configuration for the tenant \(AADSTS90002: Tenant 'nope'"
    ):
        oauth_poller(dovecot, user, entra_token(dovecot, app, tenant="nope"), tmp_path / "cp.json", at(21, 14)).poll()

    # An authority nobody answers at: unavailable, retried at the next poll.
    closed = EntraToken(entra.tenant, app.client_id, app.secret, authority_host="https://127.0.0.1:1", timeout=5)
    with pytest.raises(ImapUnavailable, match=r"cannot reach the authority \(\[Errno 111\] Connection refused\)"):
        oauth_poller(dovecot, user, closed, tmp_path / "cp.json", at(21, 14)).poll()
    # The system's CAs do not know the stand-in's certificate: refused, not trusted and not retried.
    untrusted = EntraToken(entra.tenant, app.client_id, app.secret, authority_host=entra.url, timeout=5)
    with pytest.raises(
        ImapError, match=r"certificate is not trusted \(certificate verify failed.*--authority-ca"
    ) as bad:
        untrusted()
    assert not isinstance(bad.value, ImapUnavailable)


def test_the_wiring_needs_tenant_client_and_secret(dovecot: Dovecot) -> None:
    agreements = load_agreements(shared_examples() / "agreements.yaml")
    args = (agreements, MAILBOX, dovecot.host, dovecot.tls_port, "fm99")
    with pytest.raises(ImapError, match=r"^--auth oauth2 needs --tenant and --client-id"):
        Wiring(Settings()).imap_poller(*args, auth="oauth2", tenant="t")
    with pytest.raises(ImapError, match=r"^no OAuth2 client secret: set AVAILABILITY_IMAP_CLIENT_SECRET$"):
        Wiring(Settings(imap_client_secret=None)).imap_poller(*args, auth="oauth2", tenant="t", client_id="c")


def test_the_command_publishes_with_oauth2(
    dovecot: Dovecot, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    user = dovecot.new_user()
    app = dovecot.entra.register(user)
    conn = dovecot.connect(user)
    deliver(conn, "INBOX", at(21, 10), B1)
    deliver(conn, "Sent", at(21, 13), RB)
    conn.logout()
    prefix = f"{topic_prefix}oauth."
    agreements = str(shared_examples() / "agreements.yaml")
    args = [
        "ingest", "imap", "--mailbox", MAILBOX, "--host", dovecot.host, "--port", str(dovecot.tls_port), "--ssl",
        "--tls-ca", str(dovecot.ca), "--user", user, "--auth", "oauth2", "--tenant", dovecot.entra.tenant,
        "--client-id", app.client_id, "--authority", dovecot.entra.url, "--authority-ca", str(dovecot.ca),
        "--agreements", agreements, "--checkpoint", str(tmp_path / "cp.json"), "--once",
    ]  # fmt: skip
    # The secret only in the environment: nothing in the command line (`ps`) names it.
    env = environment(kafka_bootstrap, prefix, AVAILABILITY_PSEUDONYM_KEY=KEY)
    ran = cli(env | {"AVAILABILITY_IMAP_CLIENT_SECRET": app.secret}, *args, timeout=60)
    assert "2 events published" in ran.stderr, ran.stderr
    assert app.secret not in ran.stderr + ran.stdout
    records = _read(kafka_bootstrap, with_prefix(MAIL, prefix).name, count=2)
    assert [json.loads(r)["type"] for r in records] == ["mail.received", "mail.replied"]
    assert all(b"kund2@example.net" not in r for r in records)  # pseudonymised by the boundary

    # A wrong secret: exit 1, one line naming the client id, not the secret.
    failed = cli(env | {"AVAILABILITY_IMAP_CLIENT_SECRET": "wrong-secret-0123456789"}, *args, check=False, timeout=60)
    lines = [line for line in failed.stderr.splitlines() if line.startswith("availability:")]
    assert failed.returncode == 1 and len(lines) == 1, failed.stderr
    assert "AADSTS7000215" in lines[0] and app.client_id in lines[0] and dovecot.entra.tenant in lines[0]
    assert "wrong-secret-0123456789" not in failed.stderr and "Traceback" not in failed.stderr
    # No secret at all: said before anything is contacted.
    missing = cli(env, *args, check=False, timeout=60)
    assert missing.returncode == 1 and "set AVAILABILITY_IMAP_CLIENT_SECRET" in missing.stderr


def _read(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """The first `count` records of the topic, in order (one mailbox thread: one partition)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=int(timeout * 1000)
    )
    try:
        values: list[bytes] = []
        for record in consumer:
            values.append(record.value)
            if len(values) == count:
                break
        return values
    finally:
        consumer.close()
