"""A real Dovecot IMAP server on 127.0.0.1 for the IMAP poller's tests (Debian `dovecot-imapd`).

One server per test session; each test takes its own account (a fresh, empty mailbox with
INBOX, Sent and Done). It serves TLS as a production server does: IMAP with STARTTLS on
`port` and implicit TLS (IMAPS) on `tls_port`, with a self-signed certificate for 127.0.0.1
made for the session by the `openssl` command (`ca` is its PEM file, what the poller gets as
`tls_ca`). Dovecot treats loopback as a secure network, so a login without TLS on `port` is
still possible: the tests of `insecure_plaintext` use that. As root, Dovecot refuses to run
mail processes as uid 0, so the mail store belongs to the `dovecot` system user the package
creates; as another user everything runs as that user.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
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
auth_mechanisms = plain login
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
  args = scheme=PLAIN username_format=%u {base}/users
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


@dataclass
class Dovecot:
    host: str
    port: int  # IMAP with STARTTLS
    tls_port: int  # IMAPS
    base: Path
    ca: Path  # the server's self-signed certificate
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
    config = base / "dovecot.conf"
    config.write_text(
        CONFIG.format(base=base, port=port, tls_port=tls_port, uid=uid, gid=gid, users=users), encoding="utf-8"
    )
    # Errors before the log file is open (a bad config) go to stdout/stderr: keep them too.
    with (base / "dovecot.out").open("wb") as out:
        process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process, base)
        yield Dovecot("127.0.0.1", port, tls_port, base, ca)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
