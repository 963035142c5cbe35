"""Canonical events -> Kafka (kafka-python): acks=all, idempotent, batched.

`publish()` returns only when the broker has acknowledged every event, so a caller (the
webhook, `availability publish`) can promise that what it accepted is stored.
`RetryingPublisher` keeps trying while the broker is away (a restart, a failover), for the
producers that must not give up at the first failure (`publish`, `simulate --to-kafka`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from schemas.errors import AvailabilityError
from schemas.events import Event, encode
from schemas.topics import Topic, key_for, topic_for, with_prefix


class PublishError(AvailabilityError):
    """The broker did not acknowledge; nothing can be promised. Retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MessageTooLarge(PublishError):
    """The broker (or the producer's own limit) refuses a message for its size: retrying the
    same message cannot help."""


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
        self,
        topic: Topic,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        timeout: float = 30.0,
    ) -> None:
        """One message as it is (the dead-letter topic); a None value is a tombstone."""
        self._send_all([(self.topic(topic), key, value, list(headers))], timeout=timeout)

    def _send_all(self, sends: Sequence[tuple[str, bytes | None, bytes | None, Any]], timeout: float) -> int:
        from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

        try:
            futures = [self._producer.send(t, key=k, value=v, headers=h) for t, k, v, h in sends]
            self._producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=timeout)
        except (MessageSizeTooLargeError, RecordListTooLargeError):
            raise MessageTooLarge(f"Kafka at {self.bootstrap_servers} refused a message as too large") from None
        except KafkaError as exc:
            raise PublishError(
                f"Kafka at {self.bootstrap_servers} did not acknowledge ({type(exc).__name__})"
            ) from None
        return len(futures)

    def close(self, timeout: float = 10.0) -> None:
        from kafka.errors import KafkaError

        try:
            self._producer.close(timeout=timeout)
        except KafkaError:
            # Records still pending with the broker away make kafka-python's close() raise at its
            # flush and leave the producer open; its __del__ would then raise again and print a
            # traceback. Stop its sender thread and mark it closed: the records expire on their own.
            with contextlib.suppress(Exception):
                self._producer._sender.force_close()
            self._producer._closed = True

    def __enter__(self) -> KafkaPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RetryingPublisher:
    """Publishes until the broker acknowledged: after a failure it waits, makes a new producer
    and sends the same events again, for up to `give_up_after` seconds without any success.
    A repeat is harmless: an event's `source` + `id` is its identity, and the Deriver keeps one.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "",
        *,
        give_up_after: float = 300.0,
        on_retry: Callable[[str], None] | None = None,
        connect: Callable[[], KafkaPublisher] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.give_up_after = give_up_after
        self.on_retry = on_retry or (lambda _: None)
        self._connect = connect or (lambda: KafkaPublisher(bootstrap_servers, topic_prefix))
        self._current: KafkaPublisher | None = None
        self.retries = 0

    def publish(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        deadline = time.monotonic() + self.give_up_after
        pause = 0.5
        while True:
            try:
                if self._current is None:
                    self._current = self._connect()
                return self._current.publish(events)
            except MessageTooLarge:
                raise
            except PublishError as exc:
                if time.monotonic() + pause > deadline:
                    raise PublishError(f"{exc}; gave up after {self.give_up_after:.0f} s of retrying") from None
                self.retries += 1
                self.on_retry(f"{exc}; retrying in {pause:g} s")
                self._discard()
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _discard(self) -> None:
        publisher, self._current = self._current, None
        if publisher is not None:
            publisher.close(timeout=1.0)  # what it still holds is sent again by the next one

    def close(self) -> None:
        self._discard()

    def __enter__(self) -> RetryingPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def partition_of(key: str, topic: Topic) -> int:
    """The partition the default partitioner (murmur2, as the Java client) gives a key."""
    from kafka.partitioner.default import murmur2  # not at import: the CLI starts without kafka-python

    return int((murmur2(key.encode()) & 0x7FFFFFFF) % topic.partitions)
