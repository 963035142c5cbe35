"""A rejection is a value (issue #8, item 5): the boundary's reason and where the input came from.

`Boundary.accept` and `accept_published` answer an event or a `Rejection(reason, origin)`; a
JSONL line's rejection is a `RejectedLine` (origin "FILE:LINE", plus the line for the rejects
file), and the rejects file and stderr lines read as before.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from availability.cli.rejects import RejectsWriter
from ingest.boundary import Boundary, Rejection
from ingest.imap.source import forward
from ingest.jsonl import RejectedLine, read_batches
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import Agreements
from schemas.events import Event
from tests.conftest import ev

UNKNOWN_QUEUE = "data.queue: unknown queue 'nowhere' (not in the agreements)"


@pytest.fixture(scope="module")
def boundary(agreements: Agreements) -> Boundary:
    return Boundary(agreements, Pseudonymiser(b"rejection-test-key", agreements))


def queued(queue: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "e1",
            "source": "callguide",
            "type": "call.queued",
            "time": "2026-03-02T09:00:00+01:00",
            "data": {"call_id": "c1", "queue": queue},
        }
    ).encode()


def test_the_origin_given_is_the_rejections_and_only_used_for_one(boundary: Boundary) -> None:
    # The reason is the boundary's text, unchanged; the origin is whatever the caller named.
    assert boundary.accept(queued("nowhere"), origin="april.jsonl:12") == Rejection(UNKNOWN_QUEUE, "april.jsonl:12")
    assert boundary.accept_published(None, origin="availability.calls[2]@1234") == Rejection(
        "no event (an empty message: a tombstone?)", "availability.calls[2]@1234"
    )
    # Without one, the origin is empty; an accepted input is the same event with or without.
    assert boundary.accept(queued("nowhere")) == Rejection(UNKNOWN_QUEUE, "")
    assert boundary.accept(queued("kundreskontra"), origin="x") == boundary.accept(queued("kundreskontra"))


def test_a_rejected_line_is_a_rejection_with_its_file_and_line(tmp_path: Path, boundary: Boundary) -> None:
    path = tmp_path / "april.jsonl"
    path.write_bytes(queued("kundreskontra") + b"\n" + queued("nowhere") + b"\r\n")
    (batch,) = read_batches(path, boundary)
    (rejected,) = batch.rejected
    # Line 2 (1-based), its origin "FILE:2", the raw line without its CRLF.
    assert rejected == RejectedLine(str(path), 2, UNKNOWN_QUEUE, queued("nowhere"))
    assert isinstance(rejected, Rejection)
    assert (rejected.origin, rejected.reason) == (f"{path}:2", UNKNOWN_QUEUE)


def test_the_rejects_file_and_stderr_read_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rejected = RejectedLine("april.jsonl", 12, "not valid JSON (truncated)", b"{\xe5")
    with RejectsWriter(None) as on_reject:
        on_reject(rejected)
    assert capsys.readouterr().err == "april.jsonl:12: rejected: not valid JSON (truncated)\n"
    path = tmp_path / "rejects.jsonl"
    with RejectsWriter(str(path)) as on_reject:
        on_reject(rejected)
    # The four fields, in this order; a Latin-1 byte stays visible as \xe5.
    assert json.loads(path.read_text()) == {
        "file": "april.jsonl",
        "line": 12,
        "reason": "not valid JSON (truncated)",
        "event": "{\\xe5",
    }


class OnePoll:
    """An ImapPoller stand-in: one poll's events, committed or not."""

    mailbox_id = "kundreskontra"

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.ignored: Counter[str] = Counter()
        self.committed = False

    def poll(self) -> list[Event]:
        return self.events

    def commit(self) -> None:
        self.committed = True


def test_an_imap_rejection_names_the_message_by_its_event_id(
    boundary: Boundary, caplog: pytest.LogCaptureFixture
) -> None:
    def replied(uid: int, mailbox: str) -> Event:
        return ev(
            "mail.replied",
            "2026-03-02T09:00:00+01:00",
            "imap/kundreskontra",
            id=f"imap:kundreskontra:Sent:9:{uid}",  # as the poller names a message
            mailbox=mailbox,
            message_id=f"<r{uid}@x>",
            thread_id="<m@x>",
        )

    good, bad = replied(4, "kundreskontra"), replied(5, "elsewhere")
    published: list[Any] = []
    poller = OnePoll([good, bad])
    with caplog.at_level(logging.ERROR, logger="ingest.imap.source"):
        stats = forward(poller, boundary, published.extend)  # type: ignore[arg-type]
    # One published, one rejected; the poll is committed (the message stays in the mailbox).
    assert (stats.published, stats.rejected, poller.committed) == (1, 1, True)
    # The log line as before: the event id (the origin) names the folder and UID.
    assert caplog.messages == [
        "imap kundreskontra: imap:kundreskontra:Sent:9:5 rejected: "
        "data.mailbox: unknown mailbox 'elsewhere' (not in the agreements)"
    ]
