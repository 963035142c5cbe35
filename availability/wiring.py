"""Settings and agreements become the pieces every command runs: the ingest boundary and its
pseudonymiser, the warehouse and its Deriver, Kafka publishers, the IMAP poller.

With the CLI's option defaults, the only place that reads Settings: the layers below take plain
values (a key, a bootstrap address, a password), so they can be tested and reused without the
environment. One `Wiring` serves one command, and says each warning once. The pieces are
imported when a command asks for them, so `availability --version` or `report` does not load
Kafka's client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from availability.settings import Settings
from schemas.errors import InputError

if TYPE_CHECKING:
    from ingest.boundary import Boundary
    from ingest.imap.poller import ImapPoller
    from ingest.kafka.publisher import KafkaPublisher, RetryingPublisher
    from ingest.kafka.reconnecting import ReconnectingPublisher
    from ingest.pseudonymise import Pseudonymiser
    from schemas.agreements import Agreements
    from stream_jobs.core.deriver import Deriver
    from stream_jobs.warehouse import Warehouse

DEVELOPMENT_KEY_WARNING = (
    "warning: AVAILABILITY_PSEUDONYM_KEY is not set; pseudonyms use the public development key "
    "(fine for demos, not for real callers)"
)


def say(text: str) -> None:
    """One line on stderr, as every message of the command."""
    print(f"availability: {text}", file=sys.stderr)


class Wiring:
    def __init__(self, settings: Settings, *, tell: Callable[[str], None] = say) -> None:
        self.settings = settings
        self.tell = tell
        self._warned: set[str] = set()

    def warn_once(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self.tell(text)

    # -- the contracts ----------------------------------------------------------------------

    def agreements(self, path: str | None) -> Agreements:
        """The service agreements: `path`, else the shipped ones."""
        from schemas.agreements import load_agreements

        return load_agreements(path)

    def pseudonymiser(self, agreements: Agreements) -> Pseudonymiser:
        """Keyed hashes with the settings' key (refused when too short), warning once when it
        is the public development key."""
        from ingest.pseudonymise import Pseudonymiser

        key = self.settings.pseudonym_key_bytes()
        if self.settings.uses_development_key:
            self.warn_once(DEVELOPMENT_KEY_WARNING)
        return Pseudonymiser(key, agreements)

    def boundary(
        self, agreements: Agreements, *, live: bool = False, clock: Callable[[], datetime] | None = None
    ) -> Boundary:
        """The ingest boundary. `live` for sources that run as events happen (the webhook, IMAP,
        the worker): an event more than MAX_FUTURE ahead of `clock` (default: the wall clock) is
        rejected (spec/events.md)."""
        from ingest.boundary import Boundary, now_utc

        return Boundary(agreements, self.pseudonymiser(agreements), live=live, clock=clock or now_utc)

    # -- the warehouse ----------------------------------------------------------------------

    @staticmethod
    def warehouse_target(target: str | None) -> str:
        """The --warehouse given, or the one line saying how to give it."""
        if not target:
            raise InputError("no warehouse given: use --warehouse DIR|URL or set AVAILABILITY_WAREHOUSE")
        return target

    @contextmanager
    def warehouse(self, target: str | None, *, create: bool = True) -> Iterator[Warehouse]:
        """The warehouse at `target`; with `create=False` (a report) one must already be there."""
        from stream_jobs.warehouse import Warehouse

        target = self.server_login(self.warehouse_target(target))
        with Warehouse.open(target, create=create, cluster=self.settings.clickhouse_cluster) as wh:
            yield wh

    def server_login(self, target: str) -> str:
        """A server URL without a user gets AVAILABILITY_SQL_USER and AVAILABILITY_SQL_PASSWORD, so
        `--warehouse http://127.0.0.1:8123` reaches a worker's SQL interface as its holder line says."""
        url = urlsplit(target)
        password = self.settings.sql_password
        if url.scheme not in ("http", "https") or "@" in url.netloc or password is None:
            return target
        login = f"{quote(self.settings.sql_user, safe='')}:{quote(password.get_secret_value(), safe='')}@"
        return urlunsplit(url._replace(netloc=login + url.netloc))

    def deriver(self, warehouse: Warehouse, agreements: Agreements, *, track_changes: bool = False) -> Deriver:
        from stream_jobs.core.deriver import Deriver

        return Deriver(warehouse, agreements, track_changes=track_changes)

    # -- Kafka ------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap_servers

    @property
    def prefix(self) -> str:
        given = (os.environ.get("AVAILABILITY_TOPIC_PREFIX") or "").strip()
        if given and given != self.settings.topic_prefix and "prefix" not in self._warned:
            # Versions before 2026-11-29 glued the prefix on; say so once, so an upgraded
            # deployment does not silently move to new topics and a new consumer group.
            self._warned.add("prefix")
            self.tell(
                f"note: AVAILABILITY_TOPIC_PREFIX={given} names the topics {self.settings.topic_prefix}availability.* "
                f"(versions before 2026-11-29: {given}availability.*); set it to '{self.settings.topic_prefix}' to "
                "silence this (docs/operations.md#upgrading)"
            )
        return self.settings.topic_prefix

    def publisher(self) -> KafkaPublisher:
        from ingest.kafka.publisher import KafkaPublisher

        return KafkaPublisher(self.bootstrap, self.prefix)

    def retrying_publisher(self) -> RetryingPublisher:
        """Keeps trying while the broker is away (a restart), saying so on stderr."""
        from ingest.kafka.publisher import RetryingPublisher

        return RetryingPublisher(self.bootstrap, self.prefix, on_retry=self.tell)

    def reconnecting_publisher(self) -> ReconnectingPublisher:
        """Connects in the background, for a server that must answer while Kafka is away."""
        from ingest.kafka.reconnecting import ReconnectingPublisher

        return ReconnectingPublisher(self.bootstrap, self.prefix)

    def webhook_token(self) -> str | None:
        token = self.settings.webhook_token
        return token.get_secret_value() if token is not None else None

    def grafana_token(self) -> str | None:
        token = self.settings.grafana_token
        return token.get_secret_value() if token is not None else None

    # -- IMAP -------------------------------------------------------------------------------

    def imap_poller(
        self,
        agreements: Agreements,
        mailbox_id: str,
        host: str,
        port: int | None,
        user: str,
        *,
        ssl: bool = False,
        insecure_plaintext: bool = False,
        tls_ca: str | Path | None = None,
        inbox: str = "INBOX",
        sent: str = "Sent",
        done: str | None = "Done",
        checkpoint: str | Path | None = None,
        timeout: float = 30.0,
        auth: str = "password",
        tenant: str | None = None,
        client_id: str | None = None,
        authority: str | None = None,
        authority_ca: str | Path | None = None,
    ) -> ImapPoller:
        """The poller of one function mailbox of the agreements, with the settings' password and
        key (docs/imap.md). TLS always, unless `insecure_plaintext`. `auth="oauth2"`: XOAUTH2
        with tokens of the Entra app `client_id` in `tenant` (Exchange Online), its secret from
        the settings; `authority` is the Entra host (default login.microsoftonline.com), with
        `authority_ca` for a private CA in front of it."""
        from ingest.imap.checkpoint import Checkpoint
        from ingest.imap.errors import ImapError
        from ingest.imap.oauth import AUTHORITY_HOST, EntraToken
        from ingest.imap.poller import ImapPoller
        from ingest.imap.source import default_checkpoint

        if mailbox_id not in agreements.mailboxes:
            known = ", ".join(agreements.mailboxes) or "none"
            raise ImapError(f"unknown mailbox '{mailbox_id}' (the agreements define: {known})")
        token: EntraToken | None = None
        password = ""
        if auth == "oauth2":
            if not tenant or not client_id:
                raise ImapError("--auth oauth2 needs --tenant and --client-id (the Entra app registration)")
            secret = self.settings.imap_client_secret
            if secret is None or not secret.get_secret_value():
                raise ImapError("no OAuth2 client secret: set AVAILABILITY_IMAP_CLIENT_SECRET")
            token = EntraToken(
                tenant,
                client_id,
                secret.get_secret_value(),
                authority_host=authority or AUTHORITY_HOST,
                ca=authority_ca,
                timeout=timeout,
            )
        elif auth == "password":
            if self.settings.imap_password is None:
                raise ImapError("no IMAP password: set AVAILABILITY_IMAP_PASSWORD")
            password = self.settings.imap_password.get_secret_value()
        else:
            raise ImapError(f"unknown IMAP sign-in '{auth}' (password or oauth2)")
        return ImapPoller(
            host,
            port if port is not None else (993 if ssl else 143),
            user,
            password,
            mailbox_id,
            inbox=inbox,
            sent=sent,
            done=done,
            ssl=ssl,
            insecure_plaintext=insecure_plaintext,
            tls_ca=tls_ca,
            checkpoint=Checkpoint(checkpoint if checkpoint is not None else default_checkpoint(mailbox_id)),
            key=self.settings.pseudonym_key_bytes(),
            timeout=timeout,
            token=token,
        )
