"""Settings in one place: environment variables with the AVAILABILITY_ prefix.

Secrets are SecretStr so they never show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import AvailabilityError

# Only for demos and tests: pseudonyms made with a published key can be reversed by anyone
# who guesses the phone number or address, so the CLI warns when it is in use.
DEVELOPMENT_KEY = "availability-development-key-not-secret"
# An HMAC key shorter than this can be found by trying keys; with a guessable key every
# caller_ref can be reversed by hashing the 10**8 Swedish mobile numbers.
MIN_KEY_BYTES = 32


class SettingsError(AvailabilityError):
    """A setting is present but unusable; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AVAILABILITY_", frozen=True, extra="ignore")

    warehouse: str | None = None  # a directory (embedded chDB) or http(s)://user:pass@host:8123/db
    agreements: str | None = None  # service-agreements YAML; the shipped default when unset
    pseudonym_key: SecretStr = SecretStr(DEVELOPMENT_KEY)  # HMAC key for caller_ref / sender_ref

    # The stream path. KAFKA_BOOTSTRAP_SERVERS (the name deploy/dev/kafka.sh honours) wins.
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "AVAILABILITY_KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic_prefix: str = ""  # e.g. "test-1234." so environments can share a broker (see below)
    webhook_token: SecretStr | None = None  # bearer token the CallGuide webhook must send
    imap_password: SecretStr | None = None  # the function mailbox account's password
    # Exchange Online (`ingest imap --auth oauth2`): the Entra app registration's client secret.
    imap_client_secret: SecretStr | None = None
    grafana_url: str | None = None  # for `availability dashboards provision`
    grafana_token: SecretStr | None = None  # a Grafana service-account token
    managers: str | None = None  # the alerts' managers.yaml: `report send` uses its SMTP relay
    smtp_user: str | None = None  # for an SMTP relay that wants a login (`report send`)
    smtp_password: SecretStr | None = None
    smtp_tls_ca: str | None = None  # a private CA for the SMTP relay's certificate
    # The stream worker's read-only SQL interface (`stream --sql-listen`): the user Grafana and
    # reports log in as; clients of a server URL without a user take these too.
    sql_user: str = "default"
    sql_password: SecretStr | None = None
    # A ClickHouse cluster (a name in the servers' remote_servers): the migrator makes replicated
    # tables on every server and Distributed tables over them (deploy/clickhouse/README.md).
    clickhouse_cluster: str | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _separated_prefix(cls, value: str) -> str:
        """`test` means topics `test.availability.calls` and group `test.availability-stream`,
        not `testavailability.calls`: a "." is added unless the prefix is empty or already ends
        with a separator (".", "-" or "_")."""
        value = value.strip()
        return value if not value or value.endswith((".", "-", "_")) else value + "."

    @property
    def uses_development_key(self) -> bool:
        return self.pseudonym_key.get_secret_value() == DEVELOPMENT_KEY

    def pseudonym_key_bytes(self) -> bytes:
        """The HMAC key for pseudonyms; a key that is set but too short (or empty) is refused."""
        key = self.pseudonym_key.get_secret_value().encode()
        if not self.uses_development_key and len(key) < MIN_KEY_BYTES:
            raise SettingsError(
                f"AVAILABILITY_PSEUDONYM_KEY is too short ({len(key)} bytes); use at least {MIN_KEY_BYTES} "
                "random bytes, e.g. `openssl rand -hex 32`"
            )
        return key
