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
    """The message's categories: those the source gave, plus `priority` and the matched stems."""
    out = list(dict.fromkeys(given))
    hits = matched_keywords(subject, keywords) if subject else []
    for c in ([PRIORITY] if hits else []) + hits:
        if c not in out:
            out.append(c)
    return out
