"""The ingest boundary for personal data (spec/events.md, "Personal data").

`caller` and `sender` become keyed hashes (HMAC-SHA256): stable, so repeat contacts can be
counted, and not reversible without the key. `subject` is classified into categories and
dropped. Agent ids (employees' personal data) and ids that can hold addresses (Message-IDs,
thread ids, free-text envelope or call ids) are hashed the same way, each kind under its own
domain prefix so that equal strings in different roles do not get linkable pseudonyms.

Every pseudonym is 32 lower-case hex digits (PSEUDONYM_PATTERN). The same key gives the same
pseudonym in every process, which is what keeps the replay and the stream worker in step.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from functools import lru_cache

from ingest.classify import categories, published_categories
from schemas.agreements import DEFAULT_PRIORITY_KEYWORDS, Agreements
from schemas.events import TOKEN_PATTERN

_NOT_DIGIT = re.compile(r"[^0-9+]")
_TOKEN = re.compile(TOKEN_PATTERN).fullmatch

# Domain prefixes: callers and senders keep the unprefixed form they have always had (so repeat
# contacts stay linked with what is already stored); the kinds added later get their own.
AGENT_DOMAIN = "agent\0"
ID_DOMAIN = "id\0"
FINGERPRINT_DOMAIN = "key fingerprint\0"


class Pseudonymiser:
    def __init__(self, key: bytes, agreements: Agreements) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per value: the key pads once
        # Names the key without revealing it: events pseudonymised ahead (an import's file) must
        # have been made with this key, or their pseudonyms would not link with the others.
        self.fingerprint = self._ref(FINGERPRINT_DOMAIN)[:16]
        self._keywords = {mid: m.priority_keywords for mid, m in agreements.mailboxes.items()}
        # Values repeat (callers, agents, a thread's ids, a call's id); each cache saves the HMAC
        # for repeats and is bounded.
        self.ref = lru_cache(maxsize=65536)(self._ref)
        self.agent_ref = lru_cache(maxsize=4096)(self._agent_ref)
        self.id_ref = lru_cache(maxsize=65536)(self._id_ref)
        self.token = lru_cache(maxsize=65536)(self._token)

    def _ref(self, value: str) -> str:
        mac = self._keyed.copy()
        mac.update(value.encode())
        return mac.hexdigest()[:32]

    def _agent_ref(self, agent: str) -> str:
        """An agent id (an employee) -> its pseudonym."""
        return self._ref(AGENT_DOMAIN + agent)

    def _id_ref(self, value: str) -> str:
        """A Message-ID, a thread id, or an id that is not a short token -> its pseudonym."""
        return self._ref(ID_DOMAIN + value)

    def _token(self, value: str) -> str:
        """The id itself if it is a short token (`[A-Za-z0-9._:-]{1,128}`), else its pseudonym."""
        return value if _TOKEN(value) else self._id_ref(value)

    def caller_ref(self, number: str) -> str:
        return self.ref(normal_number(number))

    def sender_ref(self, address: str) -> str:
        return self.ref(address.strip().casefold())

    def keywords(self, mailbox: str) -> tuple[str, ...]:
        return self._keywords.get(mailbox, DEFAULT_PRIORITY_KEYWORDS)

    def categories(self, mailbox: str, subject: str | None, given: Iterable[str] = ()) -> list[str]:
        """A source's message: `priority` (its flag, or a keyword in the subject) and the matched stems."""
        return categories(subject, self.keywords(mailbox), given)

    def published_categories(self, mailbox: str, given: Iterable[str]) -> list[str]:
        """A published message's categories, restricted to `priority` and the mailbox's stems."""
        return published_categories(given, self.keywords(mailbox))


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
