"""Integration tests run against real services; Kafka comes from deploy/dev/kafka.sh.

Without a broker the tests are skipped locally and fail in CI (env CI set; .ci/run sets it),
so a CI job cannot pass by silently testing nothing: tests.conftest.unavailable. Only a
broker that is not there is "unavailable"; a malformed KAFKA_BOOTSTRAP_SERVERS or a
kafka-python that does not import is an error, never a skip.
"""

from __future__ import annotations

import errno
import os
import socket
import uuid

import pytest

from tests.conftest import unavailable

UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH}


def _host_port(servers: str) -> tuple[str, int]:
    """The first bootstrap server as (host, port); a malformed value fails the test with the reason."""
    first = servers.split(",")[0].strip()
    host, colon, port = first.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={servers!r} is malformed: expected host:port[,host:port…]", pytrace=False)
    return host, int(port)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker's bootstrap address, once it answered a metadata request."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    host, port = _host_port(servers)
    # An import error is a broken environment, not a missing broker: it raises.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    hint = "deploy/dev/kafka.sh start"
    try:
        # A closed port fails here at once; kafka-python alone would retry for its bootstrap timeout.
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        # Refused, timed out or unreachable: nothing listens there. Anything else (a host name
        # that does not resolve, say) is a setting to fix, so it raises.
        if not isinstance(exc, ConnectionError | TimeoutError) and exc.errno not in UNREACHABLE:
            raise
        unavailable(f"Kafka not running at {servers} ({type(exc).__name__}: {exc}): {hint}")
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers.split(","), bootstrap_timeout_ms=10_000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except KafkaError as exc:  # NoBrokersAvailable, KafkaTimeoutError, …: the broker does not answer
        unavailable(f"Kafka at {servers} does not answer ({type(exc).__name__}: {exc}): {hint}")
    return servers


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    """Unique per test session, so runs sharing a broker never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:12]}."
