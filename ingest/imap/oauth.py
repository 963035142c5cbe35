"""OAuth2 for the IMAP poller: Exchange Online app-only tokens (MSAL) and the XOAUTH2 exchange.

Exchange Online takes only OAuth2 for IMAP. A daemon gets its token with the client-credentials
flow from Microsoft Entra ID (application permission `IMAP.AccessAsApp`) and presents it with
`AUTHENTICATE XOAUTH2`, naming the shared mailbox in `user=`. MSAL keeps the token in memory and
hands out the same one until shortly before it expires, so asking for it at every poll is cheap.
No message here ever holds the client secret or a token.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import msal
import requests

from ingest.imap.errors import ImapError, ImapUnavailable

SCOPE = "https://outlook.office365.com/.default"  # Exchange Online, the app's granted permissions
AUTHORITY_HOST = "https://login.microsoftonline.com"  # national clouds have their own
_AADSTS = re.compile(r"AADSTS\d+:[^\r\n]*")
# The useful end of a requests/urllib3 error: "[Errno 111] Connection refused", a certificate
# that does not verify, a timeout (the rest is the pool, the URL and the exception chain).
_NETWORK = re.compile(r"\[Errno -?\d+\][^'\")\]]*|certificate verify failed[^'\")\]]*|timed out")


def xoauth2(user: str, token: str) -> bytes:
    """The XOAUTH2 initial client response: `user=<mailbox>^Aauth=Bearer <token>^A^A` (before base64)."""
    if "\x01" in user or "\x01" in token:  # ^A separates the fields: it cannot be part of one
        raise ImapError("an XOAUTH2 user or token cannot contain the character \\x01")
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


class Xoauth2:
    """imaplib's `authobject` for `AUTHENTICATE XOAUTH2`.

    The server first sends an empty challenge, answered with the initial response. A server that
    refuses the token (Exchange, Gmail, Dovecot) sends a second challenge: base64 JSON such as
    `{"status":"401","schemes":"bearer"}`. The client must answer it with an empty line; only then
    does the server send its tagged NO. `refusal` keeps that challenge's text for the error.
    """

    def __init__(self, user: str, token: str) -> None:
        self._response = xoauth2(user, token)
        self._token = token
        self._answered = 0
        self.refusal: str | None = None

    def __call__(self, challenge: bytes) -> bytes | None:
        self._answered += 1
        if self._answered == 1:
            return self._response
        if self._answered == 2:
            self.refusal = challenge_text(challenge, self._token)
            return b""  # "an empty response": the server then ends the exchange with NO
        return None  # a third challenge is not XOAUTH2: imaplib cancels with `*`


def challenge_text(challenge: bytes, token: str = "") -> str:
    """What a refusal challenge says, in one short line: the JSON's `status` (and `schemes`,
    `scope`) when it is JSON, else its printable text. The token is cut out if echoed."""
    text = challenge.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data:
        parts = [f"{key} {data[key]}" for key in ("status", "schemes", "scope") if key in data]
        text = ", ".join(parts) if parts else json.dumps(data, ensure_ascii=False)
    return one_line(text, token)


def one_line(text: str, *secrets: str) -> str:
    """`text` on one line of at most 300 characters, with `secrets` replaced by `…`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= 300 else text[:299] + "…"


class _Session(requests.Session):
    """requests with a fixed CA and timeout on every request. requests lets REQUESTS_CA_BUNDLE
    override a session's own `verify` (psf/requests#3829); a CA given per request wins."""

    def __init__(self, verify: str | bool, timeout: float) -> None:
        super().__init__()
        self._verify, self._timeout = verify, timeout

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self._verify)
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


class EntraToken:
    """A client-credentials token for Exchange Online from Microsoft Entra ID, via MSAL.

    Calling it returns an access token. The first call discovers the tenant's endpoints and asks
    for a token; later calls get MSAL's cached token until about five minutes before it expires,
    then a new one. A refusal (wrong secret, unknown app or tenant) is an ImapError naming the
    tenant and client id and Entra's AADSTS code and text; an unreachable or failing endpoint is
    ImapUnavailable (retried at the next poll). `ca` verifies the authority's TLS certificate
    against that PEM file instead of the system's CAs (a private CA, a TLS-inspecting proxy).
    """

    def __init__(
        self,
        tenant: str,
        client_id: str,
        client_secret: str,
        *,
        authority_host: str = AUTHORITY_HOST,
        ca: str | Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        missing = [name for name, value in (("tenant", tenant), ("client id", client_id)) if not value.strip()]
        if missing:
            raise ImapError(f"OAuth2 needs the {' and '.join(missing)} of the app registration")
        if not client_secret:
            raise ImapError("OAuth2 needs the app registration's client secret")
        if not authority_host.startswith("https://"):
            raise ImapError(f"the OAuth2 authority must be an https:// URL (got '{authority_host}')")
        if ca is not None and not Path(ca).is_file():
            raise ImapError(f"cannot use the authority CA {ca} (no such file)")
        self.tenant, self.client_id = tenant.strip(), client_id.strip()
        self.authority = f"{authority_host.rstrip('/')}/{self.tenant}"
        self._secret = client_secret
        self._verify: str | bool = str(ca) if ca is not None else True
        self._timeout = timeout
        self._app: Any = None
        self._lock = threading.Lock()  # MSAL's app is made once, even if two polls overlap
        self.source = ""  # where the last token came from: "cache" or "identity_provider"

    def __repr__(self) -> str:  # never the secret
        return f"EntraToken(tenant={self.tenant!r}, client_id={self.client_id!r}, authority={self.authority!r})"

    def __call__(self) -> str:
        try:
            result = self._application().acquire_token_for_client(scopes=[SCOPE])
        except OSError as exc:  # requests' errors are OSErrors: no connection, a timeout, HTTP 5xx
            raise self._network_error("the token endpoint failed", exc) from None
        except ValueError as exc:  # an answer that is not JSON
            raise ImapUnavailable(
                f"{self._who()}: the token endpoint answered nonsense ({self._reason(exc)})"
            ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            self.source = str(result.get("token_source", ""))
            return token
        error = result.get("error", "no access_token") if isinstance(result, dict) else "no answer"
        description = result.get("error_description", "") if isinstance(result, dict) else ""
        raise ImapError(f"{self._who()} refused a token: {error}: {self._reason(description) or 'no description'}")

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self.client_id,
                        client_credential=self._secret,
                        authority=self.authority,
                        # Entra's own hosts are known to MSAL and never looked up; another host
                        # (a test's stand-in, a proxy) is used as given instead of being checked
                        # with login.microsoftonline.com.
                        instance_discovery=False,
                        http_client=_Session(self._verify, self._timeout),
                    )
                except OSError as exc:
                    raise self._network_error("cannot reach the authority", exc) from None
                except ValueError as exc:  # the tenant's OpenID configuration is not there
                    # MSAL's own message is generic advice; the HTTP answer (Entra's AADSTS) is its cause.
                    why = self._reason(exc.__context__ if isinstance(exc.__context__, ValueError) else exc)
                    raise ImapError(f"{self._who()}: no OpenID configuration for the tenant ({why})") from None
            return self._app

    def _network_error(self, what: str, exc: OSError) -> ImapError:
        """A certificate that does not verify is a configuration to fix (not retried, like the
        IMAP server's); anything else on the way may pass by the next poll."""
        if isinstance(exc, requests.exceptions.SSLError):
            return ImapError(
                f"{self._who()}: the authority's TLS certificate is not trusted ({self._reason(exc)}); "
                "for a private CA give its certificate with --authority-ca FILE"
            )
        return ImapUnavailable(f"{self._who()}: {what} ({self._reason(exc)})")

    def _who(self) -> str:
        return f"Entra ID at {self.authority} (client id '{self.client_id}')"

    def _reason(self, problem: object) -> str:
        """One line, the AADSTS code and text when Entra gave one (not its trace and correlation ids)."""
        text = str(problem) if not isinstance(problem, OSError) or not problem.strerror else problem.strerror
        found = _AADSTS.search(text) or _NETWORK.search(text)
        return one_line(found.group(0) if found else text, self._secret)
