"""`availability topics create`: make the broker's topics match schemas/topics.py."""

from __future__ import annotations

import time
from typing import Any

from schemas.errors import AvailabilityError
from schemas.topics import ALL, Topic, with_prefix


class TopicsError(AvailabilityError):
    pass


LOOKS = 20  # at 0.5 s apart: how long a topic another process just made may stay unlisted


def ensure_topics(bootstrap_servers: str, prefix: str = "", replication_factor: int = 1) -> list[str]:
    """Create missing topics; check existing ones have the defined partition count, and set
    their retention to the definition's (a shortened retention reaches existing topics too).

    Returns one line per topic saying what was done. A topic with other partitions is an
    error: Faust refuses it, and repartitioning would move calls between workers.
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers.split(","), request_timeout_ms=10_000, bootstrap_timeout_ms=5_000
        )
    except KafkaError as exc:
        raise TopicsError(f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__})") from None
    try:
        for attempt in range(LOOKS):
            try:
                return _ensure(admin, prefix, replication_factor)
            except TopicAlreadyExistsError:
                # Listed as missing, yet there when created: another process (a second worker,
                # `topics create` just before) made it, and the broker's metadata had not shown it
                # yet (seen to take over 2 s on a loaded machine). Look again: it is then checked
                # like any existing topic.
                if attempt == LOOKS - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")  # the loop returns or raises
    except KafkaError as exc:
        raise TopicsError(f"Kafka at {bootstrap_servers}: {type(exc).__name__}: {exc}") from None
    finally:
        admin.close()


def _ensure(admin: Any, prefix: str, replication_factor: int) -> list[str]:
    """One pass of ensure_topics: list, check, create what is missing."""
    from kafka.admin import NewTopic

    wanted: list[Topic] = [with_prefix(t, prefix) for t in ALL]
    present = set(admin.list_topics()) & {t.name for t in wanted}
    existing = {m["name"]: len(m["partitions"]) for m in admin.describe_topics(sorted(present))} if present else {}
    lines, missing = [], []
    for t in wanted:
        if t.name not in existing:
            missing.append(t)
        elif existing[t.name] != t.partitions:
            raise TopicsError(f"topic {t.name} has {_partitions(existing[t.name])}, the definition says {t.partitions}")
        else:
            lines.append(f"{t.name}: exists, {_partitions(t.partitions)}{_align_retention(admin, t)}")
    if missing:
        admin.create_topics(
            [NewTopic(t.name, t.partitions, replication_factor, topic_configs=t.config()) for t in missing]
        )
        lines += [f"{t.name}: created, {_partitions(t.partitions)}, key {t.key}" for t in missing]
    return lines


def _partitions(n: int) -> str:
    return f"{n} partition" if n == 1 else f"{n} partitions"


def _align_retention(admin: Any, topic: Topic) -> str:
    """Set an existing topic's retention.ms to the definition's (only that key: the others,
    e.g. a max.message.bytes set by an operator, stay); returns what changed, for the line."""
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, topic.name)
    described = admin.describe_configs([resource], config_filter="all")
    current = described.get("topic", {}).get(topic.name, {}).get("retention.ms", {}).get("value")
    wanted = str(topic.retention_ms)
    if current == wanted:
        return ""
    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic.name, configs={"retention.ms": wanted})], incremental=True
    )
    return f", retention changed from {_days(current)} to {_days(wanted)}"


def _days(ms: str | None) -> str:
    if ms is None or not ms.lstrip("-").isdigit():
        return "unknown"
    value = int(ms)
    days = value / 86_400_000
    return "forever" if value < 0 else f"{days:g} day" if days == 1 else f"{days:g} days"
