"""Integration tests run against real services; Kafka comes from deploy/dev/kafka.sh.

Without a broker the tests are skipped locally and fail in CI (env CI set), so a CI job
cannot pass by silently testing nothing.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is an error, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker's bootstrap address, once it answered a metadata request."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    host, _, port = servers.split(",")[0].strip().rpartition(":")
    try:
        # A closed port fails here at once; kafka-python alone would retry for its bootstrap timeout.
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=servers.split(","), bootstrap_timeout_ms=10_000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        _unavailable(f"Kafka not running at {servers} ({type(exc).__name__}): deploy/dev/kafka.sh start")
    return servers


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    """Unique per test session, so runs sharing a broker never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:12]}."
