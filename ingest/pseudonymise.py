"""The ingest boundary for personal data (spec/events.md, "Personal data").

`caller` and `sender` become keyed hashes (HMAC-SHA256): stable, so repeat contacts can be
counted, and not reversible without the key. `subject` is classified into categories and
dropped. Nothing after this function holds a raw value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

import msgspec

from ingest.classify import categories
from schemas.agreements import DEFAULT_PRIORITY_KEYWORDS, Agreements
from schemas.events import CallOffered, Event, MailReceived

_NOT_DIGIT = re.compile(r"[^0-9+]")


class Pseudonymiser:
    def __init__(self, key: bytes, agreements: Agreements) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per value: the key pads once
        self._agreements = agreements
        # Callers and senders repeat; the cache saves the HMAC for repeats (bounded).
        self.ref = lru_cache(maxsize=65536)(self._ref)

    def _ref(self, value: str) -> str:
        mac = self._keyed.copy()
        mac.update(value.encode())
        return mac.hexdigest()[:32]

    def caller_ref(self, number: str) -> str:
        return self.ref(normal_number(number))

    def sender_ref(self, address: str) -> str:
        return self.ref(address.strip().casefold())

    def apply(self, event: Event) -> Event:
        """The event as it may leave ingest."""
        if isinstance(event, CallOffered) and event.data.caller is not None:
            call = event.data
            ref = self.caller_ref(call.caller) if call.caller else call.caller_ref
            return msgspec.structs.replace(event, data=msgspec.structs.replace(call, caller=None, caller_ref=ref))
        if isinstance(event, MailReceived):
            mail = event.data
            mailbox = self._agreements.mailboxes.get(mail.mailbox)
            keywords = mailbox.priority_keywords if mailbox else DEFAULT_PRIORITY_KEYWORDS
            data = msgspec.structs.replace(
                mail,
                sender=None,
                subject=None,
                sender_ref=self.sender_ref(mail.sender) if mail.sender else mail.sender_ref,
                categories=categories(mail.subject, keywords, mail.categories),
            )
            return msgspec.structs.replace(event, data=data)
        return event


def normal_number(number: str) -> str:
    """One form per Swedish phone number, so repeat callers are counted as one.

    `+46 70-123 45 67`, `0046701234567` and `070-123 45 67` all become `+46701234567`.
    """
    digits = _NOT_DIGIT.sub("", number)
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+46" + digits[1:]
    return digits
