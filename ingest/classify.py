"""Subject -> categories (spec/agreements.md, "Priority"), so the subject itself can be dropped.

Matching is case-insensitive, ignores diacritics (`anstand` matches `anstånd`) and matches
word prefixes (`makuler` matches `makulering`, `makuleras`). A keyword of several words matches
the same words in sequence, the last one as a prefix (`faktura 12` matches "Om faktura 123", not
"fakturan 123" nor "faktura x 123").

Subject and keyword are split into words the same way (runs of letters, digits and `_` after
folding), so whitespace inside a keyword is collapsed, and punctuation in it separates words as
it does in a subject (`e-faktura` is the two words `e faktura`, which "E-fakturan" matches). A
keyword's stem, the category it gives, is its folded words joined by one space.
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


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(fold(text)))


@lru_cache(maxsize=256)
def _keywords(keywords: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each distinct keyword as (stem, " " + stem), in keyword order; a keyword without words
    (empty, blank, only punctuation) is dropped."""
    stems = dict.fromkeys(" ".join(words) for words in map(_words, keywords) if words)
    return tuple((stem, " " + stem) for stem in stems)


def _stems(keywords: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(stem for stem, _ in _keywords(keywords))


def matched_keywords(subject: str, keywords: Iterable[str]) -> list[str]:
    """The stems of the keywords found in the subject, in keyword order, each once.

    A keyword's words are found when they follow each other in the subject, the last one as a
    prefix of a word: with the subject's words each after one space, that is the keyword's stem
    after a space as a substring, since no word holds a space (one substring search per keyword:
    several times faster than comparing word by word)."""
    text = " " + " ".join(_words(subject))
    return [stem for stem, spaced in _keywords(tuple(keywords)) if spaced in text]


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
