"""Subject -> categories (spec/agreements.md, "Priority"), so the subject itself can be dropped.

Matching is case-insensitive, ignores diacritics (`anstand` matches `anstånd`) and matches
word prefixes (`makuler` matches `makulering`, `makuleras`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

PRIORITY = "priority"
_WORD = re.compile(r"\w+")


_COMBINING = re.compile(r"[\u0300-\u036f]")  # the combining diacritical marks block


def fold(text: str) -> str:
    """Lower case without diacritics: `Anstånd` -> `anstand`."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold()))


@lru_cache(maxsize=256)
def _stems(keywords: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for s in map(fold, keywords) if s))


def matched_keywords(subject: str, keywords: Iterable[str]) -> list[str]:
    """The keywords (folded) that start some word of the subject, in keyword order."""
    words = tuple(_WORD.findall(fold(subject)))
    return [stem for stem in _stems(tuple(keywords)) if any(w.startswith(stem) for w in words)]


def categories(subject: str | None, keywords: Iterable[str], given: Iterable[str] = ()) -> list[str]:
    """The message's categories: `priority` and the keyword stems matched in the subject.

    Of what the source gave only its `priority` flag (any letter case) is kept: a source's
    categories are free text and may hold a name or a personal number (spec/events.md: nothing
    downstream of ingest holds personal data).
    """
    hits = matched_keywords(subject, keywords) if subject else []
    if hits or any(c.casefold() == PRIORITY for c in given):
        return [PRIORITY, *hits]
    return []


@lru_cache(maxsize=256)
def _allowed(keywords: tuple[str, ...]) -> frozenset[str]:
    return frozenset((PRIORITY, *_stems(keywords)))


def published_categories(given: Iterable[str], keywords: Iterable[str]) -> list[str]:
    """The categories a message on the project's own topics may carry: `priority` (normalised
    from any case) and stems of the mailbox's keywords; anything else is dropped."""
    allowed = _allowed(tuple(keywords))
    out: list[str] = []
    for c in given:
        if c not in allowed and c.casefold() == PRIORITY:
            c = PRIORITY
        if c in allowed and c not in out:
            out.append(c)
    return out
