"""Subject -> categories (spec/agreements.md, "Priority"): keywords of several words, and a
source's own `priority` flag in any letter case.

The rule: matching is case-insensitive, ignores diacritics and matches word prefixes; a keyword
of several words matches the same words in sequence, the last one as a prefix. Every expectation
below says which words of the subject meet which words of the keyword.
"""

from __future__ import annotations

import json

import pytest

from ingest.boundary import Boundary, Rejection
from ingest.classify import PRIORITY, categories, matched_keywords, published_categories
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import parse_agreements
from schemas.events import MailReceived, encode

# -- keywords of several words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "keyword", "expected"),
    [
        # The spec's example: "faktura" = "faktura", and "123" starts with "12".
        ("Om faktura 123", "faktura 12", ["faktura 12"]),
        # The whole last word is a prefix of itself.
        ("Om faktura 123", "faktura 123", ["faktura 123"]),
        # "fakturan" is not the word "faktura": only the last word of a keyword is a prefix.
        ("fakturan 123", "faktura 12", []),
        # "x" comes between: the words must follow each other.
        ("faktura x 123", "faktura 12", []),
        # The words in the other order.
        ("12 faktura", "faktura 12", []),
        # Only the first word is there; the keyword needs both.
        ("Om faktura", "faktura 12", []),
        # "123" does not start with "1234" (a prefix of the subject's word, not the other way).
        ("Om faktura 123", "faktura 1234", []),
        # Case and diacritics: "FAKTURA" folds to "faktura", "Påminnelse" to "paminnelse".
        ("FAKTURA 123 — Påminnelse", "faktura 12", ["faktura 12"]),
        ("Andra påminnelsen", "andra paminn", ["andra paminn"]),
        ("Andra Påminnelsen", "ANDRA PÅMINN", ["andra paminn"]),
        # Whitespace inside the keyword is collapsed: "faktura   12" is "faktura 12".
        ("Om faktura 123", "  faktura   12 ", ["faktura 12"]),
        ("Om faktura 123", "faktura\t12", ["faktura 12"]),
        # Punctuation in the subject separates words, as a space does: "faktura-123" is the words
        # "faktura", "123".
        ("Ang. faktura-123", "faktura 12", ["faktura 12"]),
        # Three words in sequence, the last as a prefix: "begaran om anst" starts "begäran om anstånd".
        ("Begäran om anstånd", "begaran om anst", ["begaran om anst"]),
        ("Begäran, om anstånd", "begaran om anst", ["begaran om anst"]),  # the comma is not a word
        ("Begäran gällande anstånd", "begaran om anst", []),
        # The sequence may start anywhere and repeat: the second "faktura" is followed by "12...".
        ("faktura x faktura 129", "faktura 12", ["faktura 12"]),
        # At the very end of the subject.
        ("Fråga om faktura 12", "faktura 12", ["faktura 12"]),
        # Punctuation in a keyword separates its words as in a subject (a choice; the spec names
        # whitespace only): "e-faktura" is the words "e", "faktura", which "E-fakturan" begins with.
        ("E-fakturan har inte kommit", "e-faktura", ["e faktura"]),
        ("E faktura saknas", "e-faktura", ["e faktura"]),
    ],
)
def test_multi_word_keyword(subject: str, keyword: str, expected: list[str]) -> None:
    # A match reports the keyword's stem: its folded words joined by one space.
    assert matched_keywords(subject, [keyword]) == expected


@pytest.mark.parametrize(
    ("keyword", "stem"),
    [
        ("faktura 12", "faktura 12"),
        ("  Faktura   12 ", "faktura 12"),  # folded, whitespace collapsed, ends trimmed
        ("Begäran om Anstånd", "begaran om anstand"),
        ("makuler", "makuler"),  # a keyword of one word: its folded word, as before
        ("Anstånd", "anstand"),
        ("E-faktura", "e faktura"),  # punctuation separates words, as in a subject
    ],
)
def test_stem_is_the_folded_words_joined_by_one_space(keyword: str, stem: str) -> None:
    # The subject is the keyword itself, so every keyword matches and reports its stem.
    assert matched_keywords(keyword, [keyword]) == [stem]


def test_keywords_with_the_same_stem_are_reported_once_in_keyword_order() -> None:
    # "Faktura  12" and "faktura 12" have one stem; "makuler" comes second in the keyword list.
    keywords = ["Faktura  12", "makuler", "faktura 12"]
    assert matched_keywords("Makulering av faktura 123", keywords) == ["faktura 12", "makuler"]


def test_single_word_keywords_unchanged() -> None:
    # One word: a prefix of some word of the subject, anywhere in it.
    assert matched_keywords("Makulering av faktura", ["makuler"]) == ["makuler"]
    assert matched_keywords("Vi makulerar", ["makuler"]) == ["makuler"]  # "makulerar" starts with "makuler"
    assert matched_keywords("Omakulering", ["makuler"]) == []  # inside a word, not at its start


def test_categories_with_a_multi_word_keyword() -> None:
    keywords = ("anstånd", "faktura 12")
    # A keyword matched: `priority` first, then the stems.
    assert categories("Om faktura 123", keywords) == [PRIORITY, "faktura 12"]
    assert categories("Anstånd med faktura 125", keywords) == [PRIORITY, "anstand", "faktura 12"]
    # None matched, no flag: no categories.
    assert categories("fakturan 123", keywords) == []


def test_published_categories_accept_multi_word_stems() -> None:
    # On the project's own topics a message keeps `priority` and the stems of its mailbox's
    # keywords: a multi-word stem is one of them, as `categories` made it.
    keywords = ("anstånd", "faktura  12")
    assert published_categories([PRIORITY, "faktura 12"], keywords) == [PRIORITY, "faktura 12"]
    # Not a stem of these keywords: the words unjoined, or spelled another way.
    assert published_categories([PRIORITY, "faktura", "12", "faktura  12", "Faktura 12"], keywords) == [PRIORITY]
    # What `categories` gives, `published_categories` keeps unchanged.
    made = categories("Om faktura 123", keywords)
    assert published_categories(made, keywords) == made


# -- a source's `priority` category (spec/agreements.md: any letter case) ------------------------


@pytest.mark.parametrize("flag", ["priority", "Priority", "PRIORITY", "pRiOrItY"])
def test_source_priority_in_any_case_counts(flag: str) -> None:
    # No keyword in the subject: the flag alone makes it a priority case, stored as `priority`.
    assert categories("Fråga om lön", ("anstånd",), [flag]) == [PRIORITY]
    assert categories(None, ("anstånd",), ["Anna Svensson", flag]) == [PRIORITY]


@pytest.mark.parametrize("given", [[], ["prio"], ["priority!"], ["high priority"], ["Anna Svensson"]])
def test_other_source_categories_do_not_count(given: list[str]) -> None:
    # Only the word `priority` itself is the flag; anything else is dropped.
    assert categories("Fråga om lön", ("anstånd",), given) == []


@pytest.mark.parametrize("flag", ["Priority", "PRIORITY"])
def test_published_priority_in_any_case_is_normalised(flag: str) -> None:
    assert published_categories([flag], ("anstånd",)) == [PRIORITY]


# -- through the ingest boundary -----------------------------------------------------------------

AGREEMENTS = parse_agreements(
    {
        "timezone": "Europe/Stockholm",
        "calendars": {"kontor": {"hours": {"mon": ["08:00-16:30"]}}},
        "mailboxes": {
            "kundreskontra": {
                "name": "Kundreskontra",
                "calendar": "kontor",
                "response_target": "8h",
                "priority_keywords": ["anstånd", "Faktura   12"],
            }
        },
    }
)


def received(subject: str, categories: list[str] | None = None) -> bytes:
    data: dict[str, object] = {
        "mailbox": "kundreskontra",
        "message_id": "<m1@x>",
        "thread_id": "t1",
        "subject": subject,
    }
    if categories is not None:
        data["categories"] = categories
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "imap/kundreskontra",
        "type": "mail.received",
        "time": "2026-04-01T08:30:00+02:00",
        "data": data,
    }
    return json.dumps(event, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def boundary() -> Boundary:
    return Boundary(AGREEMENTS, Pseudonymiser(b"test-key", AGREEMENTS))


@pytest.mark.parametrize(
    ("subject", "given", "expected"),
    [
        ("Om faktura 123", None, [PRIORITY, "faktura 12"]),  # the mailbox's keyword "Faktura   12"
        ("Om fakturan 123", None, []),
        ("Hej", ["Priority"], [PRIORITY]),  # the source's flag, any case
        ("Hej", ["PRIORITY", "faktura 12"], [PRIORITY]),  # a stem not found in the subject: dropped
    ],
)
def test_boundary_classifies_and_republishes(
    boundary: Boundary, subject: str, given: list[str] | None, expected: list[str]
) -> None:
    accepted = boundary.accept(received(subject, given))
    assert isinstance(accepted, MailReceived), accepted
    assert accepted.data.categories == expected
    assert accepted.data.subject is None  # classified, then dropped
    # Read back from the topic: the same categories, multi-word stem included.
    again = boundary.accept_published(encode(accepted))
    assert not isinstance(again, Rejection), again
    assert again == accepted
