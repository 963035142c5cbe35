"""The replay's fast paths (issue #14, item 4) give what the plain definitions give.

Each faster form is checked against the slower one it replaced, kept here as the reference:
keyword matching by substring against matching word by word, the working-day deadline from its
cache against computing it, and `event_key` by type against `isinstance`.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.classify import _words, matched_keywords
from schemas.agreements import parse_agreements
from schemas.events import (
    AgentStateData,
    CallEndedData,
    MailClosedData,
    MailReceivedData,
    MailRepliedData,
    event_key,
)
from stream_jobs.core import mail
from stream_jobs.core.mail import working_day_deadline
from tests.conftest import AGREEMENTS, ev

# -- keywords: one substring search per keyword is the word-by-word rule -----------------------------


def _reference(subject: str, keywords: list[str]) -> list[str]:
    """The rule as it was written before: the keyword's words but the last in sequence in the
    subject's words, followed by a word that starts with the last."""
    words = _words(subject)
    stems: dict[str, tuple[str, ...]] = {}
    for keyword in keywords:
        kw = _words(keyword)
        if kw:
            stems.setdefault(" ".join(kw), kw)
    found = []
    for stem, kw in stems.items():
        whole, last = kw[:-1], kw[-1]
        n = len(whole)
        if not whole:
            hit = any(w.startswith(last) for w in words)
        else:
            hit = any(words[i + n].startswith(last) and words[i : i + n] == whole for i in range(len(words) - n))
        if hit:
            found.append(stem)
    return found


WORD = st.sampled_from(["faktura", "fakturan", "12", "123", "e", "om", "anstånd", "ANSTAND", "makuler", "x", "å"])
SEP = st.sampled_from([" ", "  ", "-", ", ", "\t", ".", "_", "\u00a0", " — "])
TEXT = st.lists(st.tuples(WORD, SEP), max_size=8).map(lambda parts: "".join(w + s for w, s in parts))


@settings(max_examples=400, deadline=None)
@given(
    subject=st.one_of(TEXT, st.text(max_size=40)), keywords=st.lists(st.one_of(TEXT, st.text(max_size=12)), max_size=5)
)
def test_matching_by_substring_is_matching_word_by_word(subject: str, keywords: list[str]) -> None:
    assert matched_keywords(subject, keywords) == _reference(subject, keywords)


def test_matching_examples_at_the_edges() -> None:
    # The keyword's first word must be a whole word, not the end of one; the last only a prefix.
    assert matched_keywords("ofaktura 123", ["faktura 12"]) == []
    assert matched_keywords("faktura 123", ["faktura 12"]) == ["faktura 12"]
    assert matched_keywords("faktura  \t 123", ["faktura 12"]) == ["faktura 12"]
    assert matched_keywords("faktura", ["faktura 12"]) == []
    assert matched_keywords("", ["faktura"]) == []
    assert matched_keywords("x faktura", ["", "x", "faktura", "X"]) == ["x", "faktura"]


# -- the working-day deadline: cached per calendar and local day ---------------------------------


def _deadline(cal, opened: datetime) -> datetime | None:
    day = opened.astimezone(cal.tz).date()
    for _ in range(400):
        day += timedelta(days=1)
        if cal.intervals_on(day):
            return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=cal.tz)
    return None


def test_the_cached_deadline_is_the_computed_one_for_every_hour_of_two_years() -> None:
    cal = parse_agreements(AGREEMENTS).mailboxes["kundreskontra"].calendar
    start = datetime(2025, 12, 1, tzinfo=UTC)
    for hour in range(0, 2 * 366 * 24, 5):
        opened = start + timedelta(hours=hour)
        for shown in (opened, opened.astimezone(cal.tz)):
            assert working_day_deadline(cal, shown) == _deadline(cal, shown), shown


def test_the_deadline_cache_keeps_calendars_apart_and_stays_bounded(monkeypatch) -> None:
    raw = copy.deepcopy(AGREEMENTS)
    raw["calendars"]["stängd"] = {"hours": {}}
    raw["mailboxes"]["kundreskontra"]["calendar"] = "stängd"
    closed = parse_agreements(raw).mailboxes["kundreskontra"].calendar
    open_ = parse_agreements(AGREEMENTS).mailboxes["kundreskontra"].calendar
    at = datetime(2026, 4, 1, 10, tzinfo=UTC)
    assert working_day_deadline(open_, at) is not None
    assert working_day_deadline(closed, at) is None  # the same day, another calendar
    assert working_day_deadline(open_, at) == _deadline(open_, at)
    monkeypatch.setattr(mail, "_DEADLINES_KEPT", 10)
    mail._deadlines.clear()
    for day in range(50):
        working_day_deadline(open_, at + timedelta(days=day))
        assert len(mail._deadlines) <= 10
    assert all(isinstance(d, date) for _, d in mail._deadlines)


# -- event_key by type ------------------------------------------------------------------------------


def _key_by_isinstance(data: object) -> str:
    if isinstance(data, AgentStateData):
        return data.agent
    if isinstance(data, (MailReceivedData, MailRepliedData, MailClosedData)):
        return f"{data.mailbox}/{data.thread_id}"
    return data.call_id  # type: ignore[attr-defined,no-any-return]


def test_event_key_of_every_type() -> None:
    events = [
        ev("call.offered", "2026-04-01T10:00:00Z", call_id="c1", entrance="e"),
        ev("call.queued", "2026-04-01T10:00:00Z", call_id="c1", queue="kundreskontra"),
        ev("call.ended", "2026-04-01T10:00:00Z", call_id="c2"),
        ev("agent.state", "2026-04-01T10:00:00Z", agent="a1", state="ready"),
        ev("mail.received", "2026-04-01T10:00:00Z", mailbox="kundreskontra", message_id="<m>", thread_id="t1"),
        ev("mail.replied", "2026-04-01T10:00:00Z", mailbox="kundreskontra", message_id="<r>", thread_id="t1"),
        ev("mail.closed", "2026-04-01T10:00:00Z", mailbox="kundreskontra", thread_id="t1", reason="spam"),
    ]
    keys = [event_key(e) for e in events]
    assert keys == [_key_by_isinstance(e.data) for e in events]
    assert keys == ["c1", "c1", "c2", "a1", "kundreskontra/t1", "kundreskontra/t1", "kundreskontra/t1"]


def test_event_key_of_a_subclass_of_a_payload() -> None:
    class Ended(CallEndedData):
        pass

    class Agent(AgentStateData):
        pass

    call = ev("call.ended", "2026-04-01T10:00:00Z", call_id="c3")
    call.data = Ended(call_id="c3")
    agent = ev("agent.state", "2026-04-01T10:00:00Z", agent="a2", state="ready")
    agent.data = Agent(agent="a2", state="ready")
    assert [event_key(call), event_key(agent)] == ["c3", "a2"]
