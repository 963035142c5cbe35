"""A real Dovecot IMAP server on 127.0.0.1 for the IMAP poller's tests (Debian `dovecot-imapd`).

One server per test session; each test takes its own account (a fresh, empty mailbox with
INBOX, Sent and Done). It serves TLS as a production server does: IMAP with STARTTLS on
`port` and implicit TLS (IMAPS) on `tls_port`, with a self-signed certificate for 127.0.0.1
made for the session by the `openssl` command (`ca` is its PEM file, what the poller gets as
`tls_ca`). Dovecot treats loopback as a secure network, so a login without TLS on `port` is
still possible: the tests of `insecure_plaintext` use that.

OAuth2 (XOAUTH2, OAUTHBEARER) works too, as Exchange Online wants it: a second passdb (Dovecot's
`oauth2` driver) takes the tokens that `entra`, a stand-in for Microsoft Entra ID in this
process, issued. Entra is the one service of the product that cannot run here, so the stand-in
serves what MSAL's client-credentials flow asks for (the tenant's OpenID configuration and its
token endpoint) over TLS with the same certificate, and the RFC 7662 introspection Dovecot asks
at each XOAUTH2 login: a token is active while not expired and belongs to the one mailbox its app
was granted (as `Add-MailboxPermission` grants an app a shared mailbox). Password logins go on
working: each passdb is limited to its own mechanisms. As root, Dovecot refuses to run
mail processes as uid 0, so the mail store belongs to the `dovecot` system user the package
creates; as another user everything runs as that user.
"""

from __future__ import annotations

import base64
import grp
import imaplib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import unavailable

DOVECOT = Path("/usr/sbin/dovecot")
PASSWORD = "not-a-secret"
# All accounts exist from the start: Dovecot notices a changed passwd-file by its mtime, which
# misses a second change within the same second.
ACCOUNTS = 30

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
{users}
first_valid_uid = {uid}
mail_location = maildir:{base}/mail/%u
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {base}/users
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {base}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/home/%u
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
  mailbox Done {{
    auto = create
  }}
}}
"""

# Dovecot's oauth2 passdb: every XOAUTH2 token is checked with the stand-in's introspection
# endpoint (RFC 7662 POST, with the basic-auth credentials a resource server has there).
OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = https://dovecot:{secret}@127.0.0.1:{port}/introspect
username_attribute = username
active_attribute = active
active_value = true
tls_ca_cert_file = {base}/cert.pem
timeout_msecs = 5000
"""
SCOPE = "https://outlook.office365.com/.default"  # what Exchange Online tokens are asked for


@dataclass
class App:
    """An app registration: what `--client-id` and AVAILABILITY_IMAP_CLIENT_SECRET are."""

    client_id: str
    secret: str
    mailbox: str  # the one account its tokens may sign in to


@dataclass
class Entra:
    """A stand-in for Microsoft Entra ID (one tenant) and its introspection endpoint, on loopback TLS."""

    tenant: str
    url: str  # the authority host: `--authority`
    introspection_secret: str
    lifetime: int = 3599  # seconds, as Entra's expires_in
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, tuple[App, float]] = field(default_factory=dict)  # token -> app, expiry (monotonic)
    token_requests: int = 0
    introspections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, mailbox: str) -> App:
        """A new app registration, granted FullAccess to `mailbox` (an account of the fixture)."""
        app = App(str(uuid.uuid4()), secrets.token_urlsafe(24), mailbox)
        with self.lock:
            self.apps[app.client_id] = app
        return app

    def expire(self, app: App) -> list[str]:
        """Expire the app's tokens now (MSAL still thinks them valid): what Dovecot sees of a token
        that has expired or was revoked. Returns them, for the tests that check they never leak."""
        with self.lock:
            mine = [token for token, (owner, _) in self.tokens.items() if owner is app]
            for token in mine:
                self.tokens[token] = (app, 0.0)
        return mine

    # -- the endpoints ----------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> tuple[int, dict[str, object]]:
        if tenant != self.tenant:  # Entra's answer for a tenant that does not exist
            return 400, {
                "error": "invalid_tenant",
                "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have "
                "the correct tenant ID and are signing into the correct cloud.\r\nTrace ID: 0\r\nCorrelation ID: 0",
                "error_codes": [90002],
            }
        base = f"{self.url}/{tenant}"
        return 200, {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        """The client-credentials grant, with Entra's errors (code and text) for what can go wrong."""
        with self.lock:
            self.token_requests += 1
            app = self.apps.get(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: not this grant type"}
        if app is None:
            return 400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{self.tenant}'.\r\nTrace ID: 0",
            }
        if not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'.\r\nTrace ID: 0\r\nCorrelation ID: 0",
                "error_codes": [7000215],
            }
        if form.get("scope") != SCOPE:
            return 400, {"error": "invalid_scope", "error_description": f"AADSTS1002012: scope {form.get('scope')}"}
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (app, time.monotonic() + self.lifetime)
        return 200, {"token_type": "Bearer", "expires_in": self.lifetime, "ext_expires_in": self.lifetime,
                     "access_token": token}  # fmt: skip

    def introspect(self, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        expected = "Basic " + base64.b64encode(f"dovecot:{self.introspection_secret}".encode()).decode()
        if not secrets.compare_digest(authorization, expected):
            return 401, {"error": "invalid_client"}
        with self.lock:
            self.introspections += 1
            found = self.tokens.get(form.get("token", ""))
        if found is None or found[1] <= time.monotonic():
            return 200, {"active": False}
        app, _ = found
        return 200, {"active": True, "username": app.mailbox, "client_id": app.client_id, "scope": SCOPE}


class _Handler(BaseHTTPRequestHandler):
    server: _EntraServer

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self._reply(*self.server.entra.openid_configuration(parts[0]))
        else:
            self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
        parts = self.path.split("?")[0].strip("/").split("/")
        entra = self.server.entra
        if parts == ["introspect"]:
            self._reply(*entra.introspect(self.headers.get("Authorization", ""), form))
        elif len(parts) == 4 and parts[0] == entra.tenant and parts[1:] == ["oauth2", "v2.0", "token"]:
            self._reply(*entra.token(form))
        else:
            self._reply(404, {"error": "not_found"})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests read the counters


class _EntraServer(ThreadingHTTPServer):
    daemon_threads = True
    entra: Entra


def _start_entra(base: Path) -> tuple[_EntraServer, threading.Thread]:
    """The stand-in on a free loopback port, TLS with the fixture's certificate."""
    server = _EntraServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(base / "cert.pem", base / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    server.entra = Entra(str(uuid.uuid4()), f"https://127.0.0.1:{port}", secrets.token_urlsafe(16))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, thread


@dataclass
class Dovecot:
    host: str
    port: int  # IMAP with STARTTLS
    tls_port: int  # IMAPS
    base: Path
    ca: Path  # the server's self-signed certificate (also the Entra stand-in's)
    entra: Entra
    used: int = 0

    def new_user(self) -> str:
        """An account not used before: a fresh, empty mailbox."""
        self.used += 1
        if self.used > ACCOUNTS:
            raise RuntimeError(f"the Dovecot fixture has {ACCOUNTS} accounts; raise ACCOUNTS")
        return f"fm{self.used:02d}"

    def connect(self, user: str) -> imaplib.IMAP4:
        """A session to set up a test's mailbox (IMAPS, the certificate verified)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        conn = imaplib.IMAP4_SSL(self.host, self.tls_port, ssl_context=context, timeout=10)
        conn.login(user, PASSWORD)
        return conn

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def deliver(conn: imaplib.IMAP4, folder: str, arrived: datetime, headers: dict[str, str], body: str = "Hej!") -> None:
    """APPEND a message with a chosen INTERNALDATE (arrival, or saving in the sent folder)."""
    lines = [f"{name}: {value}" for name, value in headers.items()]
    raw = "\r\n".join([*lines, "MIME-Version: 1.0", "", body, ""]).encode()
    status, data = conn.append(folder, None, imaplib.Time2Internaldate(arrived), raw)
    assert status == "OK", data


def move(conn: imaplib.IMAP4, source: str, value: str, target: str, header: str = "Message-ID") -> None:
    """Move the message whose `header` contains `value`, as a person (or a mail client rule)
    does: UID MOVE (RFC 6851)."""
    conn.select(source)
    status, found = conn.uid("SEARCH", "HEADER", header, value)
    assert status == "OK" and found[0] and len(found[0].split()) == 1, f"no single {header} {value} in {source}"
    status, data = conn.uid("MOVE", found[0].decode(), target)
    assert status == "OK", data
    conn.unselect()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _certificate(base: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost (EC P-256, valid two days)."""
    if shutil.which("openssl") is None:
        pytest.fail("the Dovecot fixture needs the openssl command for its TLS certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem"), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    (base / "key.pem").chmod(0o600)
    return base / "cert.pem"


def _wait_for(port: int, process: subprocess.Popen[bytes], base: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    logs = "".join(p.read_text(errors="replace") for p in (base / "dovecot.out", base / "dovecot.log") if p.exists())
    raise RuntimeError(f"Dovecot did not answer on 127.0.0.1:{port}:\n{logs[-2000:]}")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not DOVECOT.exists():
        unavailable(f"dovecot-imapd not installed ({DOVECOT}): apt-get install dovecot-imapd")
    # Not under pytest's tmp dir: that is private to the current user, and Dovecot's mail and
    # auth processes (another user when run as root) must be able to reach their files.
    base = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    base.chmod(0o711)
    (base / "users").write_text("".join(f"fm{i:02d}:{{PLAIN}}{PASSWORD}\n" for i in range(1, ACCOUNTS + 1)))
    (base / "users").chmod(0o644)
    (base / "mail").mkdir()
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("dovecot")
        uid, gid = mail_user.pw_uid, mail_user.pw_gid
        os.chown(base / "mail", uid, gid)
        users = ""  # the package's dovenull (login) and dovecot (auth) users
    else:
        uid, gid = os.getuid(), os.getgid()
        me, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        users = f"default_login_user = {me}\ndefault_internal_user = {me}\ndefault_internal_group = {group}\n"
    port = tls_port = _free_port()
    while tls_port == port:
        tls_port = _free_port()
    ca = _certificate(base)
    entra_server, entra_thread = _start_entra(base)
    entra = entra_server.entra
    (base / "oauth2.conf.ext").write_text(
        OAUTH2_CONFIG.format(base=base, port=entra_server.server_address[1], secret=entra.introspection_secret)
    )
    (base / "oauth2.conf.ext").chmod(0o644)  # Dovecot's auth process reads it (another user as root)
    config = base / "dovecot.conf"
    config.write_text(
        CONFIG.format(base=base, port=port, tls_port=tls_port, uid=uid, gid=gid, users=users), encoding="utf-8"
    )
    # Errors before the log file is open (a bad config) go to stdout/stderr: keep them too.
    with (base / "dovecot.out").open("wb") as out:
        process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process, base)
        yield Dovecot("127.0.0.1", port, tls_port, base, ca, entra)
    finally:
        entra_server.shutdown()
        entra_server.server_close()
        entra_thread.join(timeout=5)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
