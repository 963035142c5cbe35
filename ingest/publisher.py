"""Canonical events -> Kafka (kafka-python): acks=all, idempotent, batched.

`publish()` returns only when the broker has acknowledged every event, so a caller (the
webhook, `availability publish`) can promise that what it accepted is stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from availability.errors import AvailabilityError
from schemas.events import Event, encode
from schemas.topics import Topic, key_for, topic_for, with_prefix


class PublishError(AvailabilityError):
    """The broker did not acknowledge; nothing can be promised. Retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KafkaPublisher:
    def __init__(self, bootstrap_servers: str, topic_prefix: str = "", *, max_block_ms: int = 5000) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers.split(","),
                acks="all",
                enable_idempotence=True,  # broker de-duplicates producer retries
                linger_ms=5,
                batch_size=256 * 1024,
                max_block_ms=max_block_ms,  # fail fast when the broker is away (webhook: 503)
                bootstrap_timeout_ms=max_block_ms,  # the constructor connects, and would wait 30 s
                request_timeout_ms=10_000,
                delivery_timeout_ms=30_000,
            )
        except KafkaError as exc:
            raise PublishError(f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__})") from None

    def topic(self, topic: Topic) -> str:
        return with_prefix(topic, self.topic_prefix).name

    def publish(self, events: Iterable[Event], timeout: float = 30.0) -> int:
        """Send and wait for the broker's acknowledgement of all; returns the count."""
        sends = [(self.topic(topic_for(ev)), key_for(ev), encode(ev), None) for ev in events]
        return self._send_all(sends, timeout)

    def publish_raw(
        self, topic: Topic, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """One message as it is (the dead-letter topic keeps rejected input unchanged)."""
        self._send_all([(self.topic(topic), key, value, list(headers))], timeout=30.0)

    def _send_all(self, sends: Sequence[tuple[str, bytes | None, bytes, Any]], timeout: float) -> int:
        from kafka.errors import KafkaError

        try:
            futures = [self._producer.send(t, key=k, value=v, headers=h) for t, k, v, h in sends]
            self._producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(
                f"Kafka at {self.bootstrap_servers} did not acknowledge ({type(exc).__name__})"
            ) from None
        return len(futures)

    def close(self) -> None:
        from kafka.errors import KafkaError

        # Records still pending with the broker away make close() raise; they expire on their own.
        with contextlib.suppress(KafkaError):
            self._producer.close(timeout=10)

    def __enter__(self) -> KafkaPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
