"""An IMAP function mailbox -> canonical mail events (spec/events.md, "Function mailboxes").

The poller reads message headers only (never bodies, never the \\Seen flag) from three
folders: the inbox (`mail.received`), the sent folder (`mail.replied`) and, optionally, a
done folder staff move finished messages to (`mail.closed`, reason `handled`). Events are
*raw*: `mail.received` carries `sender` and `subject`, and the ingest boundary pseudonymises
them like any other source's.

The password never crosses the network in clear text unless asked for: the session is TLS,
implicit (`ssl=True`, IMAPS) or STARTTLS, with the server's certificate verified against the
system's CAs or `tls_ca`; a server that offers neither is refused before the login. Only
`insecure_plaintext=True` (for a test server on loopback) logs in without TLS, with a warning.

Delivery is at least once: `poll()` reads from the committed checkpoint and `commit()`, called
after the events were published, advances it. A crash in between re-reads the same messages,
which give the same event ids (`imap:{mailbox}:{folder}:{uidvalidity}:{uid}`), so the
derivations de-duplicate them. docs/imap.md describes the rules and their reasons.

This module runs the service loop; the poller is in ingest/imap/poller.py, the header parsing
in ingest/imap/headers.py and the checkpoint in ingest/imap/checkpoint.py.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest.boundary import Boundary, Rejection
from ingest.imap.errors import ImapUnavailable
from ingest.imap.poller import ImapPoller
from ingest.kafka.publisher import PublishError
from schemas.events import Event, encode

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    polls: int = 0
    read: int = 0  # messages that became events (before the boundary)
    published: int = 0
    rejected: int = 0
    ignored: Counter[str] = field(default_factory=Counter)


def default_checkpoint(mailbox_id: str) -> Path:
    return Path(f"imap-{mailbox_id}.checkpoint.json")


def forward(poller: ImapPoller, boundary: Boundary, publish: Callable[[list[Event]], object]) -> RunStats:
    """One poll: read, pass the boundary, publish, then commit. Logs counts, never addresses or subjects."""
    events = poller.poll()
    accepted: list[Event] = []
    rejected = 0
    for ev in events:
        result = boundary.accept(encode(ev), origin=ev.id)
        if isinstance(result, Rejection):
            # The message itself stays in the mailbox; its id (the origin) names the folder and UID.
            log.error("imap %s: %s rejected: %s", poller.mailbox_id, result.origin, result.reason)
            rejected += 1
        else:
            accepted.append(result)
    if accepted:
        publish(accepted)
    poller.commit()
    kinds = Counter(type(ev).__name__ for ev in events)
    log.info(
        "imap %s: %d received, %d replied, %d closed, %d rejected, ignored %s",
        poller.mailbox_id,
        kinds["MailReceived"],
        kinds["MailReplied"],
        kinds["MailClosed"],
        rejected,
        dict(poller.ignored) or "none",
    )
    return RunStats(
        polls=1, read=len(events), published=len(accepted), rejected=rejected, ignored=Counter(poller.ignored)
    )


def run(
    poller: ImapPoller,
    boundary: Boundary,
    publish: Callable[[list[Event]], object],
    *,
    interval: float = 60.0,
    once: bool = False,
    stop: threading.Event | None = None,
    stats: RunStats | None = None,
    polled: Callable[[], None] | None = None,
) -> RunStats:
    """Poll the mailbox every `interval` seconds (or once) and `publish` what passes the
    boundary (a live one: no future events). Stops cleanly on SIGTERM/SIGINT or when `stop` is
    set; an unreachable server or broker is retried at the next interval (with `once`, it is the
    error). A server that cannot be reached securely (no STARTTLS, an untrusted certificate) is
    an ImapError at the first poll, not retried. `stats` is kept up to date (a status line reads
    it); `polled()` is called once, after the first poll, failed or not (the CLI's banner)."""
    mailbox_id = poller.mailbox_id
    stop = stop or threading.Event()
    stats = stats if stats is not None else RunStats()
    with _stop_on_signals(stop):
        while not stop.is_set():
            try:
                one = forward(poller, boundary, publish)
            except (ImapUnavailable, PublishError) as exc:
                if once:
                    raise
                log.warning("imap %s: %s; retrying in %g s", mailbox_id, exc, interval)
            else:
                stats.polls += 1
                stats.read += one.read
                stats.published += one.published
                stats.rejected += one.rejected
                stats.ignored.update(one.ignored)
            if polled is not None:
                polled()
                polled = None
            if once or stop.wait(interval):
                break
    log.info("imap %s: stopped after %d polls, %d events published", mailbox_id, stats.polls, stats.published)
    return stats


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first SIGTERM or SIGINT sets `stop`: the current poll finishes (and commits), then the
    loop ends. A second one interrupts at once (nothing is lost: the poll is not committed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
