"""The README test needs the broker the integration tests use."""

from tests.integration.conftest import kafka_bootstrap

__all__ = ["kafka_bootstrap"]
