"""Kafka that may come and go: the webhook's publisher, connected and reconnected in the background.

`serve` (ingest/webhook.py) publishes through it, so the webhook starts while Kafka is down,
answers 503 until Kafka is back and reconnects by itself.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from functools import partial

from ingest.kafka.publisher import KafkaPublisher, PublishError
from schemas.events import Event

log = logging.getLogger("availability.webhook")


class ReconnectingPublisher:
    """A `KafkaPublisher` that is created in the background and recreated after a failure.

    - Kafka down at start: `KafkaPublisher()` would block ~30 s (kafka-python's bootstrap
      timeout) and then raise, so a background thread waits until a bootstrap server accepts
      TCP connections (probing every `probe_interval` s) and only then creates the producer.
    - Kafka gone later: the failing producer is dropped (closed in the background), so later
      requests fail fast with PublishError instead of each waiting out the publish timeout
      behind the records stuck in the old producer; the background thread reconnects when a
      broker answers again.
    - While connected, the background thread checks every `health_interval` s that a bootstrap
      server still accepts TCP connections; after two failed checks in a row the producer is
      dropped as after a failure. So `connected` (the webhook's /healthz) turns false within a
      few seconds of an outage, also when no request is sent meanwhile.

    `publish` waits at most `connect_wait` s for a connection, then raises PublishError.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "",
        *,
        retry_after: int = 5,
        connect_wait: float = 1.0,
        probe_interval: float = 1.0,
        health_interval: float = 2.0,
        connect: Callable[[], KafkaPublisher] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.retry_after = retry_after
        self.connect_wait = connect_wait
        self.probe_interval = probe_interval
        self.health_interval = health_interval
        self._connect = connect or partial(KafkaPublisher, bootstrap_servers, topic_prefix)
        self._state = threading.Condition()
        self._current: KafkaPublisher | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """A producer is connected and a broker accepted a connection at the last check."""
        return self._current is not None

    def start(self) -> None:
        """Start connecting in the background (idempotent; `publish` starts it too)."""
        with self._state:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="webhook-kafka-connect", daemon=True)
                self._thread.start()

    def publish(self, events: Iterable[Event], timeout: float = 30.0) -> int:
        self.start()
        with self._state:
            self._state.wait_for(lambda: self._current is not None or self._closed, timeout=self.connect_wait)
            publisher = self._current
        if publisher is None:
            raise PublishError(f"not connected to Kafka at {self.bootstrap_servers}", self.retry_after)
        try:
            return publisher.publish(events, timeout=timeout)
        except PublishError as exc:
            self._discard(publisher)
            raise PublishError(str(exc), self.retry_after) from None

    def close(self) -> None:
        with self._state:
            self._closed = True
            publisher, self._current = self._current, None
            self._state.notify_all()
        if publisher is not None:
            _close_quietly(publisher, attempts=1)

    def _discard(self, publisher: KafkaPublisher, why: str = "after a failure") -> None:
        with self._state:
            if self._current is not publisher:
                return  # another thread already dropped it
            self._current = None
            self._state.notify_all()
        log.warning("dropping the Kafka producer %s; reconnecting in the background", why)
        # close() flushes first, which fails while the broker is away; the records in it
        # expire after the producer's delivery timeout (30 s), then it closes.
        threading.Thread(target=_close_quietly, args=(publisher,), name="webhook-kafka-close", daemon=True).start()

    def _run(self) -> None:
        down_logged = False
        failed_checks = 0
        while True:
            with self._state:
                self._state.wait_for(lambda: self._current is None or self._closed, timeout=self.health_interval)
                if self._closed:
                    return
                current = self._current
            if current is not None:  # connected: is a broker still there?
                failed_checks = 0 if self._reachable() else failed_checks + 1
                if failed_checks >= 2:
                    failed_checks = 0
                    self._discard(current, f"(no broker of {self.bootstrap_servers} accepts connections)")
                continue
            try:
                if not self._reachable():
                    raise PublishError(f"no broker of {self.bootstrap_servers} accepts connections")
                publisher = self._connect()
            except PublishError as exc:
                if not down_logged:
                    log.warning("Kafka unavailable (%s); retrying every %.0f s", exc, self.probe_interval)
                    down_logged = True
                with self._state:
                    self._state.wait_for(lambda: self._closed, timeout=self.probe_interval)
                continue
            with self._state:
                closed = self._closed
                if not closed:
                    self._current = publisher
                    self._state.notify_all()
            if closed:
                _close_quietly(publisher, attempts=1)
                return
            log.info("connected to Kafka at %s", self.bootstrap_servers)
            down_logged = False

    def _reachable(self) -> bool:
        for server in self.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            with contextlib.suppress(OSError, ValueError), socket.create_connection((host.strip("[]"), int(port)), 1.0):
                return True
        return False


def _close_quietly(publisher: KafkaPublisher, attempts: int = 5) -> None:
    for attempt in range(1, attempts + 1):
        try:
            publisher.close()
            return
        except Exception as exc:  # kafka-python raises from its flush while the broker is away
            if attempt == attempts:
                log.warning("could not close a Kafka producer cleanly (%s)", type(exc).__name__)
