"""Kafka topics: one definition each, with explicit partitions, keys and retention.

Faust refuses topics whose partition count differs from what it expects, so the counts live
here and `availability topics create` makes the broker match them.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import CALL_CLASSES, MAIL_CLASSES, Event, event_key

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str  # what the message key is, for people reading this
    retention_ms: int

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


# Calls keyed by call id and mail by mailbox/thread, so one entity's events stay in one
# partition (one worker, in order). 30 days lets a new warehouse be rebuilt from the topics.
CALLS = Topic("availability.calls", partitions=6, key="call_id", retention_ms=30 * DAY_MS)
AGENTS = Topic("availability.agents", partitions=3, key="agent", retention_ms=30 * DAY_MS)
MAIL = Topic("availability.mail", partitions=3, key="mailbox/thread_id", retention_ms=90 * DAY_MS)
# Messages a worker could not accept, with the reason and where they were read in headers.
# They can hold personal data that never passed the ingest boundary (the worker replaces raw
# callers and senders by their pseudonyms and drops subjects where it can parse the message,
# but not in bytes it cannot parse), so they are kept a week: long enough to look at a
# rejection after a weekend, not the 90 days of the mail topic.
DEAD_LETTER = Topic("availability.dead-letter", partitions=1, key="original key", retention_ms=7 * DAY_MS)

ALL = (CALLS, AGENTS, MAIL, DEAD_LETTER)
EVENT_TOPICS = (CALLS, AGENTS, MAIL)


def with_prefix(topic: Topic, prefix: str) -> Topic:
    """Tests and parallel environments share a broker under their own prefix."""
    return Topic(prefix + topic.name, topic.partitions, topic.key, topic.retention_ms)


def topic_for(event: Event) -> Topic:
    cls = type(event)
    return CALLS if cls in CALL_CLASSES else MAIL if cls in MAIL_CLASSES else AGENTS


def key_for(event: Event) -> bytes:
    return event_key(event).encode()
