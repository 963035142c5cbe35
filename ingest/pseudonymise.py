"""The ingest boundary for personal data (spec/events.md, "Personal data").

`caller` and `sender` become keyed hashes (HMAC-SHA256): stable, so repeat contacts can be
counted, and not reversible without the key. `subject` is classified into categories and
dropped. Nothing after this function holds a raw value.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

import msgspec

from ingest.classify import categories
from schemas.agreements import Agreements
from schemas.events import CallOffered, Event, MailReceived


class Pseudonymiser:
    def __init__(self, key: bytes, agreements: Agreements) -> None:
        self._key = key
        self._agreements = agreements
        # Callers and senders repeat; the cache saves the HMAC for repeats (bounded).
        self.ref = lru_cache(maxsize=65536)(self._ref)

    def _ref(self, value: str) -> str:
        # Normalised first so "+46 70-123 45 67" and "+46701234567" count as the same person.
        normal = "".join(value.split()).replace("-", "").casefold()
        return hmac.new(self._key, normal.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, event: Event) -> Event:
        """The event as it may leave ingest."""
        if isinstance(event, CallOffered) and event.data.caller is not None:
            call = event.data
            ref = self.ref(call.caller) if call.caller else None
            return msgspec.structs.replace(event, data=msgspec.structs.replace(call, caller=None, caller_ref=ref))
        if isinstance(event, MailReceived):
            mail = event.data
            mailbox = self._agreements.mailboxes[mail.mailbox]
            data = msgspec.structs.replace(
                mail,
                sender=None,
                subject=None,
                sender_ref=self.ref(mail.sender) if mail.sender else mail.sender_ref,
                categories=categories(mail.subject, mailbox.priority_keywords, mail.categories),
            )
            return msgspec.structs.replace(event, data=data)
        return event
