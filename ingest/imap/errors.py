"""The IMAP ingestor's errors (ingest/imap/source.py)."""

from __future__ import annotations

from schemas.errors import AvailabilityError


class ImapError(AvailabilityError):
    """The mailbox cannot be read as configured (login refused, a folder missing, a bad checkpoint)."""


class ImapUnavailable(ImapError):
    """The server was unreachable or dropped the connection; the next poll may succeed."""
