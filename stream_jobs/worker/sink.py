"""The one batching sink of the stream path: Kafka messages -> the Deriver -> ClickHouse.

Kafka-agnostic, and it writes to the Deriver's store (the warehouse; a `MemoryStore` in unit
tests), so it is tested without a broker or ClickHouse. `write()` returns only when the warehouse
acknowledged the batch (and the dead-letter topic, or the fallback file, every rejected
message), so the caller commits the batch's offsets after it, never before. A crash in
between leaves them uncommitted and Kafka delivers them again; the Deriver makes the repeat
harmless. That is the whole crash-safety argument: nothing lost, nothing twice.

No message can stop the worker. Each one that cannot be stored is isolated and kept with its
reason: a tombstone, anything the live ingest boundary rejects (bad bytes, bad JSON, a time
outside the accepted range or in the future), an event whose derivation failed (the Deriver's
`BatchResult.failed`), and an event the warehouse itself refuses (found by storing the batch in
halves). The rest of the batch is stored and its offsets are committed past the poison.
Only when the warehouse does not answer at all (or a dead letter can be neither published nor
written down) does `write()` raise `SinkUnavailable`: then nothing may be committed, and the
caller tries the same batch again later.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from ingest.boundary import Boundary, Rejection, claimed_source
from ingest.kafka.publisher import MessageTooLarge
from ingest.pseudonymise import Pseudonymiser
from schemas.events import MAX_EVENT_BYTES, PSEUDONYM_PATTERN, TOKEN_PATTERN, Event
from stream_jobs.core.deriver import BatchResult, Deriver
from stream_jobs.core.store import Store
from stream_jobs.worker.source_health import SourceHealth

log = logging.getLogger(__name__)
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN).fullmatch
_TOKEN = re.compile(TOKEN_PATTERN).fullmatch
# One line per dead letter, from every worker: limited like the client libraries' repeats (the
# first of a kind, then a summary a minute), since a flood of poison would flood the log too.
DEAD_LETTER_LOGGER = "stream_jobs.dead_letters"
dead_log = logging.getLogger(DEAD_LETTER_LOGGER)

# A dead-letter copy keeps at most this much of a value (a rejected event is at most
# MAX_EVENT_BYTES when valid, so this is enough to see what it was) ...
DEAD_LETTER_MAX_BYTES = MAX_EVENT_BYTES
# ... and this much when the broker refuses even that (a topic with a smaller max.message.bytes).
DEAD_LETTER_SHORT_BYTES = 1024
MAX_REASON_CHARS = 1000  # a reason is one line for a person; it never needs more
# After a dead-letter publish failed (broker away), the next ones go straight to the fallback
# file for this long instead of each waiting out a publish timeout.
DEAD_LETTER_PAUSE = 30.0


class Message(NamedTuple):
    value: bytes | None  # None: a tombstone
    key: bytes | None
    published: float  # the Kafka timestamp, epoch seconds
    topic: str = ""  # where it was read (for the dead-letter headers and the stored positions)
    partition: int = -1
    offset: int = -1


class SinkUnavailable(Exception):
    """The warehouse does not answer (or a dead letter could not be kept anywhere): commit
    nothing of the batch and write it again later."""


# (value, key, headers) -> returns once the dead-letter topic acknowledged it; raises
# MessageTooLarge when the broker refuses it for its size, anything else when it is away.
PublishDeadLetter = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], None]


@dataclass
class SinkStats:
    processed: int = 0
    rejected: int = 0
    batches: int = 0
    # (events stored, rejected, seconds the batch took, per message: seconds since it was published)
    observers: list[Callable[[int, int, float, list[float]], None]] = field(default_factory=list)


class DeadLetters:
    """Keeps rejected messages: on the dead-letter topic, redacted and size-limited, with the
    reason and where the message was read in headers; when that topic cannot take it, in a
    local JSONL file (mode 0600) that an operator replays or reads. Never raises but
    `SinkUnavailable`, when even the file cannot be written."""

    def __init__(self, publish: PublishDeadLetter, fallback: Path, pseudonymiser: Pseudonymiser | None) -> None:
        self.publish = publish
        self.fallback = fallback
        self.pseudonymiser = pseudonymiser
        self.published = 0
        self.truncated = 0
        self.fallbacks = 0  # dead letters written to the fallback file
        self._paused_until = 0.0

    def send(self, message: Message, reason: str) -> None:
        reason = _one_line(reason)[:MAX_REASON_CHARS]
        value, redacted = redact(message.value, self.pseudonymiser)
        headers = [
            ("reason", reason.encode()),
            ("topic", message.topic.encode()),
            ("partition", str(message.partition).encode()),
            ("offset", str(message.offset).encode()),
        ]
        if redacted:
            headers.append(("redacted", ",".join(redacted).encode()))
        key = message.key
        if key is not None and len(key) > DEAD_LETTER_SHORT_BYTES:
            headers.append(("original-key-size", str(len(key)).encode()))
            key = key[:DEAD_LETTER_SHORT_BYTES]
        size = len(message.value) if message.value is not None else 0
        error = "paused after an earlier failure"
        if time.monotonic() >= self._paused_until:
            for limit in (DEAD_LETTER_MAX_BYTES, DEAD_LETTER_SHORT_BYTES):
                copy, extra = value, []
                if value is not None and len(value) > limit:
                    copy, extra = value[:limit], [("original-size", str(size).encode())]
                try:
                    self.publish(copy, key, headers + extra)
                except MessageTooLarge as exc:
                    error = str(exc)
                    continue  # once more, shorter
                except Exception as exc:
                    error = f"{type(exc).__name__}: {_one_line(str(exc))}"
                    self._paused_until = time.monotonic() + DEAD_LETTER_PAUSE
                    break
                self.published += 1
                self.truncated += bool(extra)
                return
        self._write_fallback(message, key, value, size, reason, redacted, error)

    def _write_fallback(
        self,
        message: Message,
        key: bytes | None,
        value: bytes | None,
        size: int,
        reason: str,
        redacted: list[str],
        error: str,
    ) -> None:
        kept = value[:DEAD_LETTER_MAX_BYTES] if value is not None else None
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            **_text("key", key),
            **_text("value", kept),
            "original_size": size,
            "redacted": redacted,
            "dead_letter_error": error,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        try:
            self.fallback.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.fallback, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)  # raw personal data may be in it: owner only, also if it existed
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkUnavailable(
                f"a rejected message could neither go to the dead-letter topic ({error}) nor to {self.fallback} "
                f"({exc.strerror})"
            ) from None
        self.fallbacks += 1
        dead_log.error(
            "dead-letter topic unavailable (%s): message %s[%s]@%s kept in %s instead",
            error, message.topic, message.partition, message.offset, self.fallback,
        )  # fmt: skip


class WarehouseSink:
    def __init__(
        self,
        boundary: Boundary,
        deriver: Deriver,
        dead_letters: DeadLetters,
        *,
        record_positions: bool = True,
    ) -> None:
        self.boundary = boundary
        self.deriver = deriver
        self.dead_letters = dead_letters
        self.record_positions = record_positions
        self.stats = SinkStats()
        self.isolated = 0  # events the warehouse refused, found by storing in halves
        self.health: SourceHealth | None = None  # per-source counts on /metrics
        # Called with each stored batch and the Deriver's result (the live metrics).
        self.on_stored: list[Callable[[Sequence[Event], BatchResult], None]] = []

    @property
    def store(self) -> Store:
        """Where the Deriver stores (the warehouse): the sink flushes it, records the positions in
        it and asks it what a failed write means."""
        return self.deriver.store

    def write(self, messages: Sequence[Message]) -> None:
        """Validate, store and derive a batch; returns when it is all acknowledged.

        Raises SinkUnavailable if the warehouse does not answer: then nothing of the batch may
        be committed. Anything else wrong with a message is that message's problem only.
        """
        started = time.monotonic()
        if self.record_positions:
            self._record_positions(messages)  # on the warehouse's writer, beside the work below
        accepted: list[tuple[Event, Message]] = []
        rejected: list[tuple[Message, str]] = []
        accept = self.boundary.accept_published
        for m in messages:
            try:
                outcome = accept(m.value)  # a tombstone (None) too: the boundary names it
            except Exception as exc:  # the boundary never raises; if it did, that message is the poison
                outcome = Rejection(f"could not be checked ({type(exc).__name__}: {_one_line(str(exc))})")
            if isinstance(outcome, Rejection):  # where it was read goes with the dead letter (its headers)
                rejected.append((m, outcome.reason))
            else:
                accepted.append((outcome, m))
        stored, failed = self._store(accepted)  # its flush also waits for the positions
        # The live metrics count what is stored now: if keeping a dead letter fails below, the
        # batch comes again, and the Deriver (which holds it already) shows no change to count.
        for events, result in stored:
            for hook in self.on_stored:
                try:
                    hook(events, result)
                except Exception as exc:  # the live metrics are secondary to storing; never stop for them
                    log.error("a stored batch could not update the live metrics (%s: %s)", type(exc).__name__, exc)
        rejected += failed
        sources = [claimed_source(m.value) for m, _ in rejected]  # each rejected message parsed once
        if rejected:  # source health; stored before the dead letters, so a failure here sends none twice
            self.store.record_rejects(
                (source, f"{m.topic}/{m.partition}/{m.offset}", reason)
                for source, (m, reason) in zip(sources, rejected, strict=True)
            )
            self._flush()  # the positions too
        if self.health is not None:
            self.health.observe(
                [e for events, _ in stored for e in events],
                [(source, reason) for source, (_, reason) in zip(sources, rejected, strict=True)],
            )
        for m, reason in rejected:
            self.dead_letters.send(m, reason)
        if rejected:
            log.warning("%d of %d messages rejected (first: %s)", len(rejected), len(messages), rejected[0][1])
        if not accepted and not rejected and self.record_positions:
            self._flush()  # nothing stored or rejected: the positions alone
        stored_at = time.time()  # the rows are queryable from here on
        processed = sum(len(events) for events, _ in stored)
        self.stats.processed += processed
        self.stats.rejected += len(rejected)
        self.stats.batches += 1
        elapsed = time.monotonic() - started
        latencies = [stored_at - m.published for m in messages]
        for observe in self.stats.observers:
            observe(processed, len(rejected), elapsed, latencies)

    def _store(
        self, pairs: list[tuple[Event, Message]]
    ) -> tuple[list[tuple[list[Event], BatchResult]], list[tuple[Message, str]]]:
        """Store the events; returns (stored sub-batches with their results, failed messages)."""
        if not pairs:
            return [], []
        events = [e for e, _ in pairs]
        try:
            result = self.deriver.apply(events)
            self.store.flush()
        except Exception as exc:
            return self._isolate(pairs, exc)
        failed_events = result.failed  # entities whose derivation raised: not stored, kept as dead letters
        if not failed_events:
            return [(events, result)], []
        by_identity = {id(e): m for e, m in pairs}
        by_id = {(e.source, e.id): m for e, m in pairs}
        failed = []
        for event, reason in failed_events:
            m = by_identity.get(id(event)) or by_id.get((event.source, event.id))
            if m is not None:
                failed.append((m, reason))
        gone = {id(m) for m, _ in failed}
        return [([e for e, m in pairs if id(m) not in gone], result)], failed

    def _isolate(
        self, pairs: list[tuple[Event, Message]], exc: Exception
    ) -> tuple[list[tuple[list[Event], BatchResult]], list[tuple[Message, str]]]:
        """The warehouse refused the batch: unreachable (raise, retry later) or something in it
        (store it in halves until the one event it refuses is found, and dead-letter that)."""
        store = self.store
        problem = store.describe(exc)[:MAX_REASON_CHARS]
        # Memory may hold events (and contact counts) of writes that did not land: whatever comes
        # next, a retry or the halves, reloads what the store really holds when touched again.
        self.deriver.forget()
        if not store.answers():
            raise SinkUnavailable(f"the warehouse does not answer ({problem})") from None
        if not store.refused_for_data(exc):
            # Refusing for its own state (too many parts, memory, a read-only replica): the batch
            # waits, uncommitted; valid events must never become dead letters for that.
            raise SinkUnavailable(f"the warehouse does not take the batch now ({problem})") from None
        if len(pairs) == 1:
            self.isolated += 1
            return [], [(pairs[0][1], f"the warehouse refused it ({problem})")]
        log.warning("the warehouse refused a batch of %d events (%s); storing it in halves", len(pairs), problem)
        middle = len(pairs) // 2
        stored_a, failed_a = self._store(pairs[:middle])
        stored_b, failed_b = self._store(pairs[middle:])
        return stored_a + stored_b, failed_a + failed_b

    def _record_positions(self, messages: Sequence[Message]) -> None:
        """Note in the warehouse the offsets whose messages it now holds (a worker started on a
        warehouse that lacks what its consumer group committed can then say so). Written with the
        batch and acknowledged with it, always before the batch is committed; if the batch then
        fails, the positions are ahead of what is stored, which is harmless: nothing was committed,
        so the batch comes again."""
        positions: dict[tuple[str, int], int] = {}
        for m in messages:
            if m.topic:
                tp = (m.topic, m.partition)
                if m.offset >= positions.get(tp, 0):
                    positions[tp] = m.offset + 1
        if positions:
            self.store.record_positions((t, p, o) for (t, p), o in sorted(positions.items()))

    def _flush(self) -> None:
        store = self.store
        try:
            store.flush()
        except Exception as exc:
            problem = store.describe(exc)[:MAX_REASON_CHARS]
            raise SinkUnavailable(f"the warehouse does not answer ({problem})") from None


def redact(value: bytes | None, pseudonymiser: Pseudonymiser | None) -> tuple[bytes | None, list[str]]:
    """The dead-letter copy of a value: when it is a JSON object (also after replacing invalid
    UTF-8), raw `data.caller` and `data.sender` become their pseudonyms (`caller_ref`,
    `sender_ref`), and `data.subject` and the envelope's `subject` are removed. Returns the
    copy and what was done; a value that is not a JSON object is kept as it is."""
    if value is None:
        return None, []
    done: list[str] = []
    try:
        parsed = msgspec.json.decode(value)
    except Exception:
        try:
            parsed = msgspec.json.decode(value.decode("utf-8", "replace").encode())
            done.append("invalid UTF-8 replaced")
        except Exception:
            return value, []
    if not isinstance(parsed, dict):
        return value, []
    data = parsed.get("data")
    if isinstance(data, dict):
        for raw, ref in (("caller", "caller_ref"), ("sender", "sender_ref")):
            if raw in data:
                original = data.pop(raw)
                if isinstance(original, str) and original and pseudonymiser is not None:
                    data[ref] = (
                        pseudonymiser.caller_ref(original) if raw == "caller" else pseudonymiser.sender_ref(original)
                    )
                    done.append(f"data.{raw} -> data.{ref}")
                else:
                    done.append(f"data.{raw} removed")
        if "subject" in data:
            del data["subject"]
            done.append("data.subject removed")
        # Published around the boundary: what is not a pseudonym already is hashed like one.
        for name in ("caller_ref", "sender_ref", "agent", "message_id", "thread_id", "in_reply_to"):
            given = data.get(name)
            if given is not None and not (isinstance(given, str) and _PSEUDONYM(given)):
                if isinstance(given, str) and given and pseudonymiser is not None:
                    data[name] = pseudonymiser.id_ref(given)
                    done.append(f"data.{name} hashed")
                else:
                    del data[name]
                    done.append(f"data.{name} removed")
        categories = data.get("categories")
        if isinstance(categories, list):
            kept = ["priority" for c in categories if isinstance(c, str) and c.casefold() == "priority"][:1]
            if kept != categories:
                data["categories"] = kept
                done.append("data.categories restricted to priority")
    envelope_id = parsed.get("id")
    if isinstance(envelope_id, str) and not _TOKEN(envelope_id) and pseudonymiser is not None:
        parsed["id"] = pseudonymiser.id_ref(envelope_id)
        done.append("id hashed")
    if "subject" in parsed:
        del parsed["subject"]
        done.append("subject removed")
    if not done or done == ["invalid UTF-8 replaced"]:
        return value, []
    return msgspec.json.encode(parsed), done


def _text(name: str, raw: bytes | None) -> dict[str, str | None]:
    """Bytes for a JSON record: as text when they are UTF-8, else base64 (`<name>_encoding` says)."""
    if raw is None:
        return {name: None}
    try:
        return {name: raw.decode()}
    except UnicodeDecodeError:
        return {name: base64.b64encode(raw).decode(), f"{name}_encoding": "base64"}


def _one_line(text: str) -> str:
    return " ".join(text.split())
