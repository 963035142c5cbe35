"""The ingest boundary (spec/events.md "Personal data" and "Bad input"): validation with reasons,
pseudonymisation, subject classification and JSONL batches. No network, no services."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from ingest.boundary import Boundary, Rejection, reason_of, unknown_reference
from ingest.classify import PRIORITY, categories, fold, matched_keywords, published_categories
from ingest.jsonl import RejectedLine, read_batches
from ingest.pseudonymise import Pseudonymiser, normal_number
from schemas.agreements import load_agreements
from schemas.errors import InputError
from schemas.events import (
    MAX_EVENT_BYTES,
    TYPE_NAMES,
    CallAnswered,
    CallOffered,
    MailReceived,
    MailReplied,
    decode,
    encode,
    type_name,
)
from tests.conftest import SHARED, shared_examples

KEY = b"test-key-one"
OTHER_KEY = b"test-key-two"
HEX32 = re.compile(r"[0-9a-f]{32}")
PHONE = "+46701234567"
EMAIL = "anna.svensson@example.se"


def hmac32(value: str, key: bytes = KEY) -> str:
    """The pseudonym as spec/events.md defines it: HMAC-SHA256 with the secret key, 32 hex digits.

    Computed here with the standard library, independently of ingest/pseudonymise.py. Agent ids
    and message/thread/envelope ids are hashed under their own domain prefix ("agent\\0",
    "id\\0") so that equal strings in different roles (an agent "a17", a thread "a17") do not get
    linkable equal pseudonyms; callers and senders keep the unprefixed form they always had, so
    repeat contacts stay linked with what is already stored.
    """
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def agent_ref(agent: str, key: bytes = KEY) -> str:
    return hmac32("agent\0" + agent, key)


def id_ref(value: str, key: bytes = KEY) -> str:
    return hmac32("id\0" + value, key)


def shared_dir() -> Path | None:
    return SHARED if SHARED.is_dir() else None


@pytest.fixture(scope="module")
def agreements():
    shared = shared_dir()
    # The example agreements if present, else the shipped default (both define the queues
    # kundreskontra and avgifter and the mailbox kundreskontra used below).
    return load_agreements(shared / "examples" / "agreements.yaml" if shared else None)


@pytest.fixture(scope="module")
def boundary(agreements):
    return Boundary(agreements, Pseudonymiser(KEY, agreements))


@pytest.fixture(scope="module")
def example_lines() -> list[str]:
    text = (shared_examples() / "events.jsonl").read_text(encoding="utf-8")  # else a skip locally, a failure in CI
    return [line for line in text.splitlines() if line.strip()]


def ev(type_: str, data: dict, **envelope) -> dict:
    return {
        "specversion": "1.0",
        "id": envelope.pop("id", "e1"),
        "source": "test",
        "type": type_,
        "time": "2026-04-01T08:30:00+02:00",
        "data": data,
    } | envelope


def line(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False)


def mail(subject: str | None = "Faktura", sender: str | None = EMAIL, **extra) -> dict:
    data = {"mailbox": "kundreskontra", "message_id": "<m1@x>", "thread_id": "t1"}
    if subject is not None:
        data["subject"] = subject
    if sender is not None:
        data["sender"] = sender
    return ev("mail.received", data | extra)


def offered(caller: str | None = PHONE) -> dict:
    data = {"call_id": "c1", "entrance": "08-50833000"}
    return ev("call.offered", data if caller is None else data | {"caller": caller})


ONE_OF_EACH = {
    "call.offered": offered(),
    "call.queued": ev("call.queued", {"call_id": "c1", "queue": "kundreskontra"}),
    "call.answered": ev("call.answered", {"call_id": "c1", "queue": "kundreskontra", "agent": "a17"}),
    "call.abandoned": ev("call.abandoned", {"call_id": "c1", "queue": "kundreskontra"}),
    "call.transferred": ev("call.transferred", {"call_id": "c1", "queue": "kundreskontra", "to_queue": "avgifter"}),
    "call.callback_requested": ev("call.callback_requested", {"call_id": "c1", "queue": "avgifter"}),
    "call.exited": ev("call.exited", {"call_id": "c1", "queue": "avgifter", "reason": "timeout"}),
    "call.ended": ev("call.ended", {"call_id": "c1"}),
    "agent.state": ev("agent.state", {"agent": "a17", "state": "ready", "queues": ["kundreskontra", "avgifter"]}),
    "mail.received": mail(),
    "mail.replied": ev("mail.replied", {"mailbox": "kundreskontra", "message_id": "<r1@x>", "thread_id": "t1"}),
    "mail.closed": ev("mail.closed", {"mailbox": "kundreskontra", "thread_id": "t1", "reason": "spam"}),
}


def rejected(boundary: Boundary, raw: str | bytes) -> str:
    result = boundary.accept(raw)
    assert isinstance(result, Rejection), f"accepted: {result!r}"
    return result.reason


# -- accepted -------------------------------------------------------------------------------------


def test_one_of_each_covers_every_type():
    assert set(ONE_OF_EACH) == set(TYPE_NAMES)


@pytest.mark.parametrize("type_", TYPE_NAMES)
def test_every_type_is_accepted(boundary, type_):
    raw = line(ONE_OF_EACH[type_])
    for form in (raw, raw.encode()):
        result = boundary.accept(form)
        assert not isinstance(result, Rejection), result
        assert type_name(result) == type_


def expected_canonical(raw: str) -> dict:
    """What the boundary must make of a source line, written out field by field from the issue:
    personal and free-text fields are replaced by keyed hashes or dropped, the rest passes."""
    event = json.loads(raw)
    data = event["data"]
    event.pop("subject", None)  # the envelope subject (a call id or mailbox/thread) is dropped
    if event.get("datacontenttype") != "application/json":
        event.pop("datacontenttype", None)
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", event["id"]):
        event["id"] = id_ref(event["id"])
    if "call_id" in data and not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", data["call_id"]):
        data["call_id"] = id_ref(data["call_id"])
    if "agent" in data:
        data["agent"] = agent_ref(data["agent"])
    for field in ("message_id", "thread_id", "in_reply_to"):
        if field in data:
            data[field] = id_ref(data[field])
    if data.get("caller") is not None and (caller := data.pop("caller")):
        data["caller_ref"] = hmac32(normal_number(caller))
    if "sender" in data:
        data["sender_ref"] = hmac32(data.pop("sender").strip().casefold())
    if event["type"] == "mail.received":
        subject = data.pop("subject", None)
        given = [PRIORITY] if any(c.casefold() == PRIORITY for c in data.get("categories", [])) else []
        data["categories"] = categories(subject, ("anstånd", "makuler", "avbetalning"), given)
        if not data["categories"]:
            del data["categories"]
    return event


def test_every_example_event_is_accepted(boundary, example_lines):
    seen = set()
    for number, raw in enumerate(example_lines, start=1):
        result = boundary.accept(raw)
        assert not isinstance(result, Rejection), f"line {number}: {result}"
        assert type_name(result) == json.loads(raw)["type"]
        assert json.loads(encode(result)) == expected_canonical(raw), f"line {number}"
        seen.add(type_name(result))
    assert seen >= {"call.offered", "call.queued", "call.answered", "call.abandoned", "call.ended"}
    assert seen >= {"mail.received", "mail.replied"}


# -- rejected with a reason -----------------------------------------------------------------------


def test_not_json(boundary):
    reason = rejected(boundary, "{oops")
    assert reason.startswith("not valid JSON")


@pytest.mark.parametrize("raw", ["", "   ", '{"specversion": "1.0"', "\ufeff" + line(ONE_OF_EACH["call.ended"])])
def test_other_malformed_input(boundary, raw):
    assert rejected(boundary, raw).startswith("not valid JSON")


def test_missing_data_field(boundary):
    reason = rejected(boundary, line(ev("call.queued", {"queue": "kundreskontra"})))
    assert "data" in reason
    assert "call_id" in reason
    assert "missing required field" in reason
    assert not reason.startswith("not valid JSON")  # it is valid JSON, just not a valid event


def test_missing_envelope_field(boundary):
    event = ONE_OF_EACH["call.ended"].copy()
    del event["source"]
    reason = rejected(boundary, line(event))
    assert "missing required field" in reason
    assert "source" in reason


def test_unknown_type(boundary):
    reason = rejected(boundary, line(ev("call.teleported", {"call_id": "c1"})))
    assert reason.startswith("unknown type")
    assert "call.teleported" in reason


@pytest.mark.parametrize("time", ["2026-04-01T08:30:00", "2026-04-01T08:30:00.125"])
def test_time_without_offset(boundary, time):
    reason = rejected(boundary, line(ONE_OF_EACH["call.ended"] | {"time": time}))
    assert reason.startswith("time:")
    assert "offset" in reason


def test_unparseable_time(boundary):
    reason = rejected(boundary, line(ONE_OF_EACH["call.ended"] | {"time": "yesterday"}))
    assert reason.startswith("time:")


# spec/events.md: `time` has an offset `Z` or `+02:00`; `+0200` is not RFC 3339 and is rejected
# (msgspec's own parser takes it). The offset's form is checked after JSON escapes are undone, so
# what counts is the string the JSON holds, however it is spelled in the line.


def offset_reason(time: str) -> str:
    return f"time '{time}': the offset must be Z or ±hh:mm (RFC 3339)"


def with_time(time_json: str, *, spaced: bool = False) -> str:
    """call.ended with `time_json` (a JSON string as written in the line) as its time."""
    raw = line(ONE_OF_EACH["call.ended"] | {"time": "T"})
    return raw.replace('"time": "T"', ('"time"  :\t ' if spaced else '"time": ') + time_json)


@pytest.mark.parametrize(
    "time",
    [
        "2026-03-04T09:00:20+0100",  # the brief's example: ±hhmm without the colon
        "2026-04-01T08:30:00+0200",
        "2026-04-01T06:30:00-0000",
        "2026-04-01T06:30:00+0000",
        "2026-04-01T08:30:00.125+0200",  # with a fraction
        "2026-04-01 08:30:00+0200",  # a space for T (which RFC 3339 allows) does not save it
    ],
)
@pytest.mark.parametrize("form", [str, str.encode], ids=["str", "bytes"])
def test_offset_without_colon_is_rejected(boundary, time, form):
    assert boundary.accept(form(line(ONE_OF_EACH["call.ended"] | {"time": time}))) == Rejection(offset_reason(time))


@pytest.mark.parametrize(
    ("time", "instant"),
    [
        ("2026-04-01T08:30:00+02:00", datetime(2026, 4, 1, 6, 30, tzinfo=UTC)),  # 08:30 at +2 h is 06:30Z
        ("2026-03-04T09:00:20+01:00", datetime(2026, 3, 4, 8, 0, 20, tzinfo=UTC)),
        ("2026-04-01T06:30:00Z", datetime(2026, 4, 1, 6, 30, tzinfo=UTC)),
        ("2026-04-01T06:30:00z", datetime(2026, 4, 1, 6, 30, tzinfo=UTC)),  # RFC 3339 allows a lower-case z
        ("2026-04-01T06:30:00-00:00", datetime(2026, 4, 1, 6, 30, tzinfo=UTC)),  # "unknown local offset", UTC
        ("2026-04-01T01:00:00.5-05:30", datetime(2026, 4, 1, 6, 30, 0, 500000, tzinfo=UTC)),  # 01:00 + 5:30
    ],
)
def test_offsets_with_colon_or_z_are_accepted(boundary, time, instant):
    for raw in (line(ONE_OF_EACH["call.ended"] | {"time": time}), with_time(json.dumps(time), spaced=True)):
        for form in (raw, raw.encode()):
            result = boundary.accept(form)
            assert not isinstance(result, Rejection), result
            assert result.time == instant


@pytest.mark.parametrize(
    ("time_json", "time", "ok"),
    [
        # JSON escapes are undone first: "\u003a" is ":", so this is +01:00 and valid.
        (r'"2026-03-04T09:00:20+01\u003a00"', "2026-03-04T09:00:20+01:00", True),
        (r'"2026-03-04T09:00:20\u002b01:00"', "2026-03-04T09:00:20+01:00", True),  # \u002b is "+"
        (r'"2026-03-04T09:00:20\u005a"', "2026-03-04T09:00:20Z", True),  # \u005a is "Z"
        # ... and here "\u0030\u0030" is "00": the string is +0100, rejected.
        (r'"2026-03-04T09:00:20+01\u0030\u0030"', "2026-03-04T09:00:20+0100", False),
        (r'"2026-03-04T09:00:20\u002b0100"', "2026-03-04T09:00:20+0100", False),
    ],
)
@pytest.mark.parametrize("spaced", [False, True], ids=["plain", "spaced"])
def test_offset_is_judged_after_json_escapes(boundary, time_json, time, ok, spaced):
    raw = with_time(time_json, spaced=spaced)
    assert json.loads(raw)["time"] == time  # the premise: the line holds this string
    for form in (raw, raw.encode()):
        result = boundary.accept(form)
        if ok:
            assert not isinstance(result, Rejection), result
        else:
            assert result == Rejection(offset_reason(time))


def test_offset_of_the_top_level_time_counts_not_a_nested_one(boundary):
    # An unknown `time` inside `data` (ignored) or a subject "time" does not stand in for the
    # envelope's: the top-level one is judged, wherever it is in the line and however its key is
    # spelled ("\u0074ime" is "time").
    good, bad = "2026-04-01T08:30:00+02:00", "2026-04-01T08:30:00+0200"
    nested_bad = ONE_OF_EACH["call.ended"] | {"data": {"call_id": "c1", "time": bad}, "subject": "time"}
    assert not isinstance(boundary.accept(line(nested_bad | {"time": good})), Rejection)
    nested_good = ONE_OF_EACH["call.ended"] | {"data": {"call_id": "c1", "time": good}}
    assert boundary.accept(line(nested_good | {"time": bad})) == Rejection(offset_reason(bad))
    escaped_key = line(nested_good | {"time": bad}).replace(
        '"time": "2026-04-01T08:30:00+0200"', '"\\u0074ime": "' + bad + '"'
    )
    assert json.loads(escaped_key)["time"] == bad
    assert boundary.accept(escaped_key.encode()) == Rejection(offset_reason(bad))


def test_a_repeated_time_is_judged_as_decoded(boundary):
    # A key given twice: the decoder keeps the last value, and so does the offset check.
    event = line(ONE_OF_EACH["call.ended"] | {"time": "2026-04-01T08:30:00+0200"})
    last_good = event[:-1] + ', "time": "2026-04-01T08:30:00+02:00"}'
    assert boundary.accept(last_good).time == datetime(2026, 4, 1, 6, 30, tzinfo=UTC)
    last_bad = line(ONE_OF_EACH["call.ended"])[:-1] + ', "time": "2026-04-01T08:30:00+0200"}'
    assert boundary.accept(last_bad) == Rejection(offset_reason("2026-04-01T08:30:00+0200"))


def test_published_offset_without_colon_is_rejected(boundary):
    # accept_published runs the same check: a message published around the boundary with +0200.
    event = json.loads(encode(boundary.accept(line(ONE_OF_EACH["call.ended"]))))
    assert event["time"] == "2026-04-01T08:30:00+02:00"  # what the boundary publishes: with the colon
    bad = event | {"time": "2026-04-01T08:30:00+0200"}
    assert boundary.accept_published(line(bad)) == Rejection(offset_reason("2026-04-01T08:30:00+0200"))
    assert boundary.accept_published(line(bad).encode(), origin="t:0:7") == Rejection(
        offset_reason("2026-04-01T08:30:00+0200"), "t:0:7"
    )
    for time in ("2026-04-01T06:30:00Z", "2026-04-01T06:30:00z", "2026-04-01T07:30:00+01:00"):
        assert boundary.accept_published(line(event | {"time": time})).time == datetime(2026, 4, 1, 6, 30, tzinfo=UTC)


def test_jsonl_rejects_offset_without_colon_with_its_line(boundary, tmp_path):
    # The JSONL reader goes through the boundary: the line is rejected with its number, the
    # valid lines around it are kept.
    path = tmp_path / "e.jsonl"
    good = line(ONE_OF_EACH["call.ended"])
    bad = line(ONE_OF_EACH["call.ended"] | {"time": "2026-04-01T08:30:00+0200", "id": "e2"})
    path.write_text("\n".join([good, bad, good]) + "\n", encoding="utf-8")
    batches = list(read_batches(path, boundary))
    assert sum(len(b.events) for b in batches) == 2
    [rejection] = [r for b in batches for r in b.rejected]
    assert (rejection.line, rejection.reason) == (2, offset_reason("2026-04-01T08:30:00+0200"))


@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (ev("call.queued", {"call_id": "c1", "queue": "nowhere"}), "data.queue", "nowhere"),
        (ev("call.answered", {"call_id": "c1", "queue": "nowhere", "agent": "a1"}), "data.queue", "nowhere"),
        (ev("call.abandoned", {"call_id": "c1", "queue": "nowhere"}), "data.queue", "nowhere"),
        (ev("call.callback_requested", {"call_id": "c1", "queue": "nowhere"}), "data.queue", "nowhere"),
        (
            ev("call.transferred", {"call_id": "c1", "queue": "kundreskontra", "to_queue": "elsewhere"}),
            "data.to_queue",
            "elsewhere",
        ),
        (
            ev("call.transferred", {"call_id": "c1", "queue": "nowhere", "to_queue": "avgifter"}),
            "data.queue",
            "nowhere",
        ),
        (
            ev("agent.state", {"agent": "a1", "state": "ready", "queues": ["kundreskontra", "nowhere"]}),
            "data.queues[1]",
            "nowhere",
        ),
        (mail() | {"data": mail()["data"] | {"mailbox": "postlåda"}}, "data.mailbox", "postlåda"),
        (
            ev("mail.replied", {"mailbox": "postlåda", "message_id": "<r@x>", "thread_id": "t"}),
            "data.mailbox",
            "postlåda",
        ),
        (ev("mail.closed", {"mailbox": "postlåda", "thread_id": "t", "reason": "handled"}), "data.mailbox", "postlåda"),
    ],
)
def test_unknown_queue_or_mailbox(boundary, agreements, event, field, value):
    reason = rejected(boundary, line(event))
    assert reason.startswith(f"{field}: ")
    assert f"'{value}'" in reason
    assert "unknown" in reason
    assert unknown_reference(decode(line(event)), agreements) == reason


def test_known_references_are_none(agreements):
    for event in ONE_OF_EACH.values():
        assert unknown_reference(decode(line(event)), agreements) is None


def test_wrong_specversion(boundary):
    reason = rejected(boundary, line(ONE_OF_EACH["call.ended"] | {"specversion": "2.0"}))
    assert reason.startswith("specversion:")
    assert "2.0" in reason


@pytest.mark.parametrize("field", ["id", "source"])
def test_empty_id_or_source(boundary, field):
    reason = rejected(boundary, line(ONE_OF_EACH["call.ended"] | {field: ""}))
    assert reason.startswith(f"{field}:")
    assert "length >= 1" in reason


def test_bad_enum_in_data(boundary):
    event = ev("agent.state", {"agent": "a1", "state": "asleep"})
    reason = rejected(boundary, line(event))
    assert reason.startswith("data.state:")
    assert "asleep" in reason


def test_reason_of_decode_and_validation_errors():
    with pytest.raises(msgspec.DecodeError) as malformed:
        decode(b"{oops")
    assert reason_of(malformed.value).startswith("not valid JSON (")
    assert "JSON is malformed" not in reason_of(malformed.value)
    with pytest.raises(msgspec.ValidationError) as invalid:
        decode(line(ev("call.queued", {"call_id": "c1"})))
    assert reason_of(invalid.value) == "data: missing required field `queue`"


def test_not_an_object(boundary):
    reason = rejected(boundary, "[]")
    assert "object" in reason


# -- pseudonymisation -----------------------------------------------------------------------------


def test_caller_becomes_a_ref(boundary):
    result = boundary.accept(line(offered()))
    assert isinstance(result, CallOffered)
    assert result.data.caller is None
    assert HEX32.fullmatch(result.data.caller_ref)


def test_sender_becomes_a_ref(boundary):
    result = boundary.accept(line(mail()))
    assert isinstance(result, MailReceived)
    assert result.data.sender is None
    assert HEX32.fullmatch(result.data.sender_ref)


def test_same_caller_same_ref_across_events(boundary):
    first = boundary.accept(line(offered()))
    second = boundary.accept(line(offered() | {"id": "e2", "data": offered()["data"] | {"call_id": "c2"}}))
    assert first.data.caller_ref == second.data.caller_ref


def test_different_callers_different_refs(boundary):
    assert (
        boundary.accept(line(offered(PHONE))).data.caller_ref
        != boundary.accept(line(offered("+46701234568"))).data.caller_ref
    )


def test_different_keys_different_refs(agreements):
    one = Pseudonymiser(KEY, agreements)
    two = Pseudonymiser(OTHER_KEY, agreements)
    assert one.ref(PHONE) != two.ref(PHONE)
    assert one.ref(EMAIL) != two.ref(EMAIL)
    assert Pseudonymiser(KEY, agreements).ref(PHONE) == one.ref(PHONE)  # stable for the same key


def test_ref_is_not_the_plain_hash(agreements):
    import hashlib

    assert Pseudonymiser(KEY, agreements).ref(PHONE) != hashlib.sha256(PHONE.encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    "variant",
    ["+46 70-123 45 67", "+46701234567", " +46 701 234 567 ", "+46-70-1234567", "070-123 45 67", "0046701234567"],
)
def test_phone_normalisation(agreements, variant):
    p = Pseudonymiser(KEY, agreements)
    assert p.caller_ref(variant) == p.caller_ref("+46701234567")


def test_email_is_case_insensitive_and_keeps_hyphens(agreements):
    p = Pseudonymiser(KEY, agreements)
    assert p.sender_ref("Anna.Svensson@Example.SE ") == p.sender_ref(EMAIL)
    assert p.sender_ref("anna-karin@example.se") != p.sender_ref("annakarin@example.se")


def test_raw_values_never_leave_the_boundary(boundary):
    subject = "Anstånd med betalning för Anna Svensson"
    results = [
        boundary.accept(line(offered("+46 70-123 45 67"))),
        boundary.accept(line(mail(subject=subject, sender=EMAIL))),
    ]
    for result in results:
        assert not isinstance(result, Rejection), result
        encoded = encode(result)
        for raw in ("+46 70-123 45 67", "46701234567", "70-123 45 67", EMAIL, "anna.svensson", subject, "Svensson"):
            assert raw.encode() not in encoded, raw
            assert raw not in repr(result), raw
    decoded_mail = json.loads(encode(results[1]))["data"]
    assert "subject" not in decoded_mail
    assert "sender" not in decoded_mail
    assert "caller" not in json.loads(encode(results[0]))["data"]


def test_example_personal_data_is_gone(boundary, example_lines):
    for raw in example_lines:
        data = json.loads(raw)["data"]
        encoded = encode(boundary.accept(raw))
        for field in ("caller", "sender", "subject"):
            if field in data:
                assert data[field].encode() not in encoded
                assert f'"{field}"'.encode() not in encoded


@pytest.mark.parametrize("value", ["f" * 32, "anna.svensson@example.se"])
def test_source_given_sender_ref_is_rejected(boundary, value):
    # Issue 7 item 11: a source-supplied ref would pass a raw address through unhashed; only the
    # boundary derives *_ref, so a source may not send one, even one that looks like a hash.
    event = mail(sender=None) | {"data": mail(sender=None)["data"] | {"sender_ref": value}}
    assert rejected(boundary, line(event)) == (
        "data.sender_ref: set by the ingest boundary, not by a source (send the address as `sender`)"
    )


@pytest.mark.parametrize("caller", [None, PHONE])
def test_source_given_caller_ref_is_rejected(boundary, caller):
    event = offered(caller)
    event["data"]["caller_ref"] = "+46709998877"  # the issue's example: a raw number as a "ref"
    assert rejected(boundary, line(event)) == (
        "data.caller_ref: set by the ingest boundary, not by a source (send the number as `caller`)"
    )


def test_offered_without_caller(boundary):
    result = boundary.accept(line(offered(caller=None)))
    assert isinstance(result, CallOffered)
    assert result.data.caller is None
    assert result.data.caller_ref is None


# -- subject -> categories ------------------------------------------------------------------------


def test_subject_becomes_categories(boundary):
    result = boundary.accept(line(mail(subject="Avbetalningsplan önskas")))
    assert result.data.subject is None
    assert PRIORITY in result.data.categories
    assert "avbetalning" in result.data.categories


def test_no_keyword_no_priority(boundary):
    result = boundary.accept(line(mail(subject="Fråga om faktura")))
    assert result.data.categories == []


def test_no_subject_no_priority(boundary):
    result = boundary.accept(line(mail(subject=None)))
    assert result.data.categories == []


def test_source_categories_are_dropped_except_priority(boundary):
    # Issue 7 item 11: categories may hold a name or a personal number; only `priority` (the
    # source's own flag) and the keyword stems matched in the subject may travel on.
    given = mail(subject="Makulering av faktura")
    given["data"]["categories"] = ["leverantör", "Anna Svensson", "19790101-1234", "faktura"]
    result = boundary.accept(line(given))
    assert result.data.categories == [PRIORITY, "makuler"]  # "Makulering" starts with the stem makuler


@pytest.mark.parametrize("flag", [PRIORITY, "Priority", "PRIORITY", "pRiOrItY"])
def test_source_priority_kept_without_keyword(boundary, flag):
    # spec/agreements.md: a `priority` category counts in any letter case; stored normalised.
    given = mail(subject="Hej")
    given["data"]["categories"] = [flag]
    assert boundary.accept(line(given)).data.categories == [PRIORITY]


def test_source_given_stem_without_matching_subject_is_dropped(boundary):
    # "anstand" is a keyword stem, but the subject "Hej" does not contain it: not derived, dropped.
    given = mail(subject="Hej")
    given["data"]["categories"] = ["anstand"]
    assert boundary.accept(line(given)).data.categories == []


def test_fold():
    assert fold("Anstånd") == "anstand"
    assert fold("ÄRENDE ÖVER Åtgärd") == "arende over atgard"
    assert fold("anstand") == fold("ANSTÅND")


@pytest.mark.parametrize("subject", ["ANSTAND med betalning", "anstånd", "Begäran om Anstånd", "anstandet"])
def test_keyword_ignores_case_and_diacritics(subject):
    assert matched_keywords(subject, ["anstånd"]) == [fold("anstånd")]


@pytest.mark.parametrize("subject", ["Fakturan makuleras", "Makulering", "MAKULERAD faktura", "re: makulera!"])
def test_keyword_matches_word_prefixes(subject):
    assert matched_keywords(subject, ["makuler"]) == ["makuler"]


@pytest.mark.parametrize("subject", ["omakulerad", "Fakturan är omakulerad", "makule", "avmakulerad"])
def test_keyword_inside_a_word_does_not_match(subject):
    assert matched_keywords(subject, ["makuler"]) == []


def test_hyphen_starts_a_new_word():
    # \w+ splits on the hyphen, so the second part of a compound written with a hyphen is a word.
    assert matched_keywords("Faktura-makulering", ["makuler"]) == ["makuler"]


def test_matched_keywords_keep_keyword_order_without_duplicates():
    subject = "Makulering och anstånd, makuleras igen"
    assert matched_keywords(subject, ["anstånd", "makuler", "Anstand", "avbetalning"]) == ["anstand", "makuler"]


def test_empty_keyword_never_matches():
    assert matched_keywords("vad som helst", ["", " "]) == []


def test_categories_function():
    keywords = ("anstånd", "makuler", "avbetalning")
    assert categories("Avbetalningsplan önskas", keywords) == [PRIORITY, "avbetalning"]
    assert categories("Fråga", keywords) == []
    # Only the source's priority flag is kept of what it gave (any case -> "priority").
    assert categories(None, keywords, ["a", "a", "b"]) == []
    assert categories(None, keywords, ["Priority", "a"]) == [PRIORITY]
    assert categories("anstånd", keywords, [PRIORITY, "anstand"]) == [PRIORITY, "anstand"]
    assert categories("anstånd", keywords, ["x"]) == [PRIORITY, "anstand"]


def test_published_categories_function():
    # What a message from the project's own topics may carry: `priority` and the stems of the
    # mailbox's keywords; anything else (someone published around the boundary) is dropped.
    keywords = ("anstånd", "makuler", "avbetalning")
    assert published_categories([PRIORITY, "anstand"], keywords) == [PRIORITY, "anstand"]
    assert published_categories(["PRIORITY", "Anna Svensson", "makuler", "makuler"], keywords) == [PRIORITY, "makuler"]
    assert published_categories([], keywords) == []


# -- read_batches ---------------------------------------------------------------------------------

BAD_LINES = {
    # line number -> (raw line, a word the reason must contain)
    3: ("{oops", "not valid JSON"),
    5: (line(ev("call.queued", {"queue": "kundreskontra"})), "call_id"),
    6: (line(ev("call.teleported", {"call_id": "c1"})), "unknown type"),
    8: (line(ONE_OF_EACH["call.ended"] | {"time": "2026-04-01T08:30:00"}), "offset"),
    9: (line(ev("call.queued", {"call_id": "c1", "queue": "nowhere"})), "unknown queue 'nowhere'"),
    11: (line(ev("mail.closed", {"mailbox": "postlåda", "thread_id": "t", "reason": "spam"})), "unknown mailbox"),
}


def write_mixed(path: Path) -> list[str]:
    """The file as lines; returns the ids of the valid events in order."""
    rows = {
        1: line(offered() | {"id": "v1"}),
        2: "",
        4: line(ONE_OF_EACH["call.queued"] | {"id": "v2"}),
        7: "   ",
        10: line(mail() | {"id": "v3"}),
        12: line(ONE_OF_EACH["call.ended"] | {"id": "v4"}),
    } | {n: raw for n, (raw, _) in BAD_LINES.items()}
    text = "\n".join(rows[n] for n in sorted(rows))
    path.write_text(text + "\r\n", encoding="utf-8")  # the last line ends in CRLF
    return ["v1", "v2", "v3", "v4"]


def collect(batches):
    batches = list(batches)
    return batches, [e for b in batches for e in b.events], [r for b in batches for r in b.rejected]


def test_read_batches_mixed_file(tmp_path, boundary):
    path = tmp_path / "events.jsonl"
    ids = write_mixed(path)
    batches, events, rejects = collect(read_batches(path, boundary))
    assert len(batches) == 1
    assert [e.id for e in events] == ids
    assert events[0].data.caller is None and events[0].data.caller_ref  # pseudonymised on the way
    assert [r.line for r in rejects] == sorted(BAD_LINES)
    for r in rejects:
        raw, word = BAD_LINES[r.line]
        assert isinstance(r, RejectedLine)
        assert word in r.reason, (r.line, r.reason)
        assert r.raw == raw.encode()
        assert r.file == str(path)
    assert batches[-1].bytes_read == path.stat().st_size


def test_read_batches_keeps_raw_of_rejected_without_line_end(tmp_path, boundary):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"{oops\r\n" + line(ONE_OF_EACH["call.ended"]).encode() + b"\r\n")
    _, events, rejects = collect(read_batches(path, boundary))
    assert len(events) == 1
    assert rejects == [RejectedLine(str(path), 1, rejects[0].reason, b"{oops")]


def test_read_batches_splits(tmp_path, boundary):
    path = tmp_path / "many.jsonl"
    rows = []
    for i in range(5):
        rows.append(line(ONE_OF_EACH["call.ended"] | {"id": f"v{i}"}))
        rows.append("{oops")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    batches, events, rejects = collect(read_batches(path, boundary, batch_size=2))
    # A batch holds batch_size lines, accepted or rejected, so memory stays flat either way.
    assert [len(b.events) for b in batches] == [1, 1, 1, 1, 1, 0]
    assert [e.id for e in events] == [f"v{i}" for i in range(5)]
    assert [r.line for r in rejects] == [2, 4, 6, 8, 10]
    # a rejected line travels with the batch it was read in
    assert [[r.line for r in b.rejected] for b in batches] == [[2], [4], [6], [8], [10], []]
    sizes = [b.bytes_read for b in batches]
    assert sizes == sorted(sizes)
    assert sizes[-1] == path.stat().st_size


def test_read_batches_exact_multiple_ends_with_an_empty_batch(tmp_path, boundary):
    path = tmp_path / "four.jsonl"
    path.write_text("".join(line(ONE_OF_EACH["call.ended"] | {"id": f"v{i}"}) + "\n" for i in range(4)))
    batches, events, _ = collect(read_batches(path, boundary, batch_size=2))
    assert [len(b.events) for b in batches] == [2, 2, 0]
    assert len(events) == 4


def test_read_batches_empty_file(tmp_path, boundary):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    batches, events, rejects = collect(read_batches(path, boundary))
    assert (len(batches), events, rejects) == (1, [], [])


def test_read_batches_example(boundary, example_lines):
    shared = shared_dir()
    assert shared is not None
    _, events, rejects = collect(read_batches(shared / "examples" / "events.jsonl", boundary, batch_size=7))
    assert rejects == []
    assert len(events) == len(example_lines)


def test_read_batches_missing_file(tmp_path, boundary):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match=r"nope\.jsonl"):
        list(read_batches(missing, boundary))


def test_read_batches_directory(tmp_path, boundary):
    with pytest.raises(InputError):
        list(read_batches(tmp_path, boundary))


# -- hardening (issue 7): size, encoding, nesting, time range -------------------------------------


def test_size_limit_is_checked_first_and_named(boundary):
    # Not even JSON, one byte over: the reason is the size (item 17), before any parsing.
    reason = rejected(boundary, b"x" * (MAX_EVENT_BYTES + 1))
    assert reason == "event larger than 65536 bytes (65537 bytes)"


def test_an_event_of_exactly_the_limit_is_accepted(boundary):
    raw = line(ONE_OF_EACH["call.ended"]).encode()
    padded = raw[:-1] + b" " * (MAX_EVENT_BYTES - len(raw)) + b"}"  # JSON whitespace before the last brace
    assert len(padded) == MAX_EVENT_BYTES == 65536
    assert not isinstance(boundary.accept(padded), Rejection)
    assert rejected(boundary, b" " + padded) == "event larger than 65536 bytes (65537 bytes)"


def test_size_of_a_str_counts_utf8_bytes(boundary):
    # "ö" is 2 bytes in UTF-8: the line has fewer characters than the limit but more bytes.
    text = line(mail(subject="ö" * 40_000))
    size = len(text.encode())
    assert len(text) < MAX_EVENT_BYTES < size
    assert rejected(boundary, text) == f"event larger than 65536 bytes ({size} bytes)"


@pytest.mark.parametrize(
    ("subject", "codec", "byte"),
    [
        ("Anstånd", "latin-1", 0xE5),  # å is the single byte E5 in Latin-1, never valid alone in UTF-8
        ("Faktura – fråga", "cp1252", 0x96),  # the en dash is 96 in Windows-1252
    ],
)
def test_a_line_in_a_legacy_encoding_is_rejected_naming_the_byte(boundary, subject, codec, byte):
    text = line(mail(subject=subject))
    raw = text.encode(codec)
    position = text.index(subject) + next(i for i, c in enumerate(subject) if not c.isascii())
    # every character before it is ASCII, so its character index is its byte offset
    assert raw[position] == byte
    assert rejected(boundary, raw) == (
        f"not valid UTF-8: byte 0x{byte:02x} at offset {position} (was it saved as Latin-1 or Windows-1252?)"
    )


def test_a_lone_surrogate_in_a_str_is_rejected(boundary):
    # A str (not bytes) can hold a lone surrogate, which has no UTF-8 form at all.
    text = line(mail(subject="x\ud800y"))
    position = text.index("\ud800")
    assert rejected(boundary, text) == f"not valid Unicode: a lone surrogate U+D800 at character {position}"


NESTED_TOO_DEEP = "JSON nested too deeply (an event nests at most 3 levels)"


@pytest.mark.parametrize("depth", [1000, 5000])
@pytest.mark.parametrize("where", ["envelope", "data"])
@pytest.mark.parametrize("kind", ["arrays", "objects"])
def test_deep_nesting_is_rejected(boundary, depth, where, kind):
    # An unknown field is skipped by the decoder, recursively: 1 000 levels exhaust the stack.
    nested = "[" * depth + "]" * depth if kind == "arrays" else '{"a":' * depth + "1" + "}" * depth
    text = line(ONE_OF_EACH["call.ended"])
    assert text.endswith('"data": {"call_id": "c1"}}')
    if where == "envelope":
        text = text[:-1] + f', "extra": {nested}}}'
    else:
        text = text.replace('{"call_id": "c1"}', f'{{"call_id": "c1", "extra": {nested}}}')
    assert rejected(boundary, text) == NESTED_TOO_DEEP


def test_a_deeply_nested_document_that_is_no_object(boundary):
    # A top-level array is refused at its first byte, before any recursion.
    assert rejected(boundary, "[" * 5000 + "]" * 5000) == "expected `object`, got `array`"


def range_reason(time: str) -> str:
    shown = datetime.fromisoformat(time).isoformat()
    return f"time: {shown} is outside the accepted range (1990-01-01 up to 2100-01-01, UTC)"


@pytest.mark.parametrize(
    "time",
    [
        "0001-01-01T00:00:00Z",  # the issue's 0001
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: comparing must not overflow
        "9999-12-31T23:59:59Z",  # the issue's 9999
        "9999-12-31T23:59:59-01:00",  # after 9999 in UTC
        "3026-04-01T08:30:00+02:00",  # the issue's 3026, which the webhook answered with 202
        "2950-06-01T00:00:00Z",  # "dates after ~2900"
        "2100-01-01T00:00:00Z",  # LATEST_TIME itself is outside: the range is [EARLIEST, LATEST)
        "2100-01-01T00:30:00-01:00",  # 2100-01-01T01:30Z
        "1989-12-31T23:59:59Z",  # one second before EARLIEST_TIME
        "1990-01-01T00:30:00+01:00",  # 1989-12-31T23:30Z: in 1990 locally, in 1989 in UTC
    ],
)
def test_time_outside_the_range_is_rejected(boundary, time):
    assert rejected(boundary, line(ONE_OF_EACH["call.ended"] | {"time": time})) == range_reason(time)


@pytest.mark.parametrize("time", ["1989-06-01T10:00:00+02:00", "1970-01-01T00:00:00Z"])
def test_mail_before_1990_is_rejected(boundary, time):
    assert rejected(boundary, line(mail() | {"time": time})) == range_reason(time)


@pytest.mark.parametrize(
    "time",
    [
        "1990-01-01T00:00:00Z",  # EARLIEST_TIME itself is inside
        "1990-01-01T01:00:00+01:00",  # the same instant
        "2099-12-31T23:59:59Z",
        "2100-01-01T00:30:00+01:00",  # 2099-12-31T23:30Z: in 2100 locally, in 2099 in UTC
    ],
)
def test_time_at_the_edges_of_the_range_is_accepted(boundary, time):
    result = boundary.accept(line(ONE_OF_EACH["call.ended"] | {"time": time}))
    assert not isinstance(result, Rejection), result
    assert result.time == datetime.fromisoformat(time)


NOW = datetime(2026, 4, 1, 6, 30, tzinfo=UTC)  # the receiving clock: 08:30 in Stockholm (CEST)


def live(agreements, clock=lambda: NOW) -> Boundary:
    return Boundary(agreements, Pseudonymiser(KEY, agreements), live=True, clock=clock)


def test_live_paths_reject_times_more_than_five_minutes_ahead(agreements):
    boundary = live(agreements)
    at = lambda time: line(ONE_OF_EACH["call.ended"] | {"time": time})  # noqa: E731
    assert not isinstance(boundary.accept(at("2026-04-01T08:35:00+02:00")), Rejection)  # exactly MAX_FUTURE ahead
    assert not isinstance(boundary.accept(at("2001-01-01T00:00:00Z")), Rejection)  # the past is fine
    assert rejected(boundary, at("2026-04-01T08:35:01+02:00")) == (
        "time: 2026-04-01T08:35:01+02:00 is more than 5 minutes ahead of the receiving clock "
        "(2026-04-01T06:30:00+00:00)"
    )
    # issue item 8: an agent.state dated 2150 — outside the range on every path
    assert rejected(boundary, at("2150-01-01T00:00:00Z")) == range_reason("2150-01-01T00:00:00Z")


def test_replayed_files_may_hold_future_times_within_the_range(boundary):
    # spec/events.md: "a replayed file may hold any time"; not live, so only the range applies.
    result = boundary.accept(line(ONE_OF_EACH["call.ended"] | {"time": "2099-01-01T00:00:00Z"}))
    assert not isinstance(result, Rejection), result


def test_the_clock_is_read_for_every_event(agreements):
    now = [NOW]
    boundary = live(agreements, clock=lambda: now[0])
    raw = line(ONE_OF_EACH["call.ended"] | {"time": "2026-04-01T09:00:00+02:00"})  # 30 minutes ahead
    assert rejected(boundary, raw).startswith("time: 2026-04-01T09:00:00+02:00 is more than 5 minutes ahead")
    now[0] = NOW + timedelta(minutes=25)  # the same event, 5 minutes ahead of the new clock
    assert not isinstance(boundary.accept(raw), Rejection)


# -- hardening (issue 7): nothing source-supplied bypasses pseudonymisation -----------------------


def test_envelope_subject_is_dropped(boundary):
    event = mail() | {"subject": "kundreskontra/<m1@x> Anna Svensson 19790101-1234"}
    result = boundary.accept(line(event))
    assert not isinstance(result, Rejection), result
    assert result.subject is None
    assert b"Svensson" not in encode(result) and b"19790101" not in encode(result)


@pytest.mark.parametrize("source", ["callguide", "imap/kundreskontra", "sim-7.2_x", "a" * 64])
def test_short_source_names_are_accepted(boundary, source):
    result = boundary.accept(line(ONE_OF_EACH["call.ended"] | {"source": source}))
    assert not isinstance(result, Rejection), result
    assert result.source == source


@pytest.mark.parametrize(
    "source", ["anna.svensson@example.se", "Anna Svensson", "ärenden", "a" * 65, "call\nguide", "x:y"]
)
def test_free_text_source_is_rejected(boundary, source):
    # The reason does not repeat the value: it may be personal data and reasons are logged.
    assert rejected(boundary, line(ONE_OF_EACH["call.ended"] | {"source": source})) == (
        "source: must be a short name (letters, digits, '.', '_', '/', '-'; at most 64 characters)"
    )


@pytest.mark.parametrize("id_", ["e1", "imap:kundreskontra:INBOX:17:3", "sim7-20260302-44770", "x" * 128])
def test_token_ids_are_kept(boundary, id_):
    assert boundary.accept(line(ONE_OF_EACH["call.ended"] | {"id": id_})).id == id_


@pytest.mark.parametrize(
    "id_",
    # The last two are tokens but for their letters: a phone number and a personal number
    # (review finding: they were kept as they came).
    ["Anna Svensson <anna@example.se>", "070-123 45 67", "x" * 129, "ärende-1", "0709998877", "19800101-1234"],
)
def test_free_text_ids_are_hashed(boundary, id_):
    result = boundary.accept(line(ONE_OF_EACH["call.ended"] | {"id": id_}))
    assert result.id == id_ref(id_)  # stable: the same id (and source) is still the same event


@pytest.mark.parametrize("call_id", ["c 1", "anna@example.se", "x" * 129, "46709998877"])
def test_free_text_call_ids_are_hashed(boundary, call_id):
    result = boundary.accept(line(ev("call.queued", {"call_id": call_id, "queue": "kundreskontra"})))
    assert result.data.call_id == id_ref(call_id)


def test_message_ids_are_hashed_with_the_key(boundary, agreements):
    received = boundary.accept(line(mail()))  # message_id "<m1@x>", thread_id "t1"
    assert (received.data.message_id, received.data.thread_id) == (id_ref("<m1@x>"), id_ref("t1"))
    reply = ev(
        "mail.replied", {"mailbox": "kundreskontra", "message_id": "<r1@x>", "thread_id": "t1", "in_reply_to": "<m1@x>"}
    )
    replied = boundary.accept(line(reply))
    assert isinstance(replied, MailReplied)
    assert (replied.data.message_id, replied.data.thread_id, replied.data.in_reply_to) == (
        id_ref("<r1@x>"),
        id_ref("t1"),
        id_ref("<m1@x>"),
    )
    # the links survive: the reply's in_reply_to is the received message's id, same thread
    assert replied.data.in_reply_to == received.data.message_id
    assert replied.data.thread_id == received.data.thread_id
    other = Boundary(agreements, Pseudonymiser(OTHER_KEY, agreements)).accept(line(mail()))
    assert other.data.message_id == id_ref("<m1@x>", OTHER_KEY) != received.data.message_id  # keyed


def test_agent_ids_are_pseudonymised(boundary):
    answered = boundary.accept(line(ONE_OF_EACH["call.answered"]))
    state = boundary.accept(line(ONE_OF_EACH["agent.state"]))
    assert isinstance(answered, CallAnswered)
    assert answered.data.agent == state.data.agent == agent_ref("a17")  # one agent, one pseudonym
    assert answered.data.agent != id_ref("a17")  # a separate domain from the ids
    assert answered.data.agent != hashlib.sha256(b"a17").hexdigest()[:32]


def test_pseudonyms_are_stable_across_boundaries(agreements):
    # The replay and the stream worker build their own Boundary from the same key: equal events.
    one = Boundary(agreements, Pseudonymiser(KEY, agreements))
    two = Boundary(agreements, Pseudonymiser(KEY, agreements), live=True, clock=lambda: NOW)
    for event in ONE_OF_EACH.values():
        assert one.accept(line(event)) == two.accept(line(event)) == one.accept(line(event))


@pytest.mark.parametrize(("given", "kept"), [("application/json", "application/json"), ("text/plain; name=Anna", None)])
def test_datacontenttype_is_kept_only_when_it_is_json(boundary, given, kept):
    result = boundary.accept(line(ONE_OF_EACH["call.ended"] | {"datacontenttype": given}))
    assert result.datacontenttype == kept


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        ("call.ended", "call_id"),
        ("call.answered", "agent"),
        ("agent.state", "agent"),
        ("mail.received", "message_id"),
        ("mail.received", "thread_id"),
        ("mail.replied", "in_reply_to"),
    ],
)
def test_id_like_fields_are_bounded_before_hashing(boundary, type_, field):
    # 512 characters at most (a Message-ID is rarely above 100): a 513-character key is refused
    # at the boundary instead of growing every query that names it downstream.
    event = json.loads(line(ONE_OF_EACH[type_]))
    event["data"][field] = "x" * 512
    assert not isinstance(boundary.accept(line(event)), Rejection)
    event["data"][field] = "x" * 513
    assert rejected(boundary, line(event)) == f"data.{field}: expected `str` of length <= 512"


# -- hardening (issue 7): the boundary never raises -----------------------------------------------


def test_a_tombstone_is_rejected(boundary):
    assert rejected(boundary, None) == "no event (an empty message: a tombstone?)"
    assert boundary.accept_published(None) == Rejection("no event (an empty message: a tombstone?)")


def test_an_unexpected_failure_becomes_a_reason(agreements, monkeypatch):
    def broken(number: str) -> str:
        raise ZeroDivisionError("boom")

    pseudonymiser = Pseudonymiser(KEY, agreements)
    monkeypatch.setattr(pseudonymiser, "caller_ref", broken)
    boundary = Boundary(agreements, pseudonymiser)
    assert boundary.accept(line(offered())) == Rejection("cannot be read (ZeroDivisionError)")
    assert boundary.accept(42) == Rejection("cannot be read (TypeError)")


def test_reasons_are_bounded(boundary):
    # A 20 000-character value is not quoted at all (a name is at most 64 characters).
    reason = rejected(boundary, line(ev("agent.state", {"agent": "a1", "state": "x" * 20_000})))
    assert reason == "data.state: invalid enum value (a value not shown: it could be personal data)"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"agent": "a1", "state": "+46709998877"}, "data.state: invalid enum value (a value not shown"),
        ({"agent": "a1", "state": "19800101-1234"}, "data.state: invalid enum value (a value not shown"),
        ({"agent": "a1", "state": "paus"}, "data.state: invalid enum value 'paus'"),  # a name: shown
        ({"agent": "a1", "state": "ready", "queues": ["anna@example.se"]}, "data.queues[0]: unknown queue (a value"),
    ],
)
def test_reasons_quote_names_but_never_values_that_could_be_personal(boundary, data, reason):
    """Review finding: reasons go to logs and metrics too, and quoted whatever a source sent."""
    assert rejected(boundary, line(ev("agent.state", data))).startswith(reason)


def test_an_unknown_type_that_could_be_personal_is_not_quoted(boundary):
    raw = line(offered()).replace('"call.offered"', '"anna@example.se"')
    assert rejected(boundary, raw) == "unknown type (a value not shown: it could be personal data)"


def test_a_type_given_twice_is_named(boundary):
    raw = line(ONE_OF_EACH["call.ended"])[:-1] + ', "type": "call.queued"}'
    assert rejected(boundary, raw) == "type: given more than once, with different values"


# -- accept_published: messages from the project's own topics -------------------------------------


@pytest.mark.parametrize("type_", TYPE_NAMES)
def test_published_round_trip(boundary, type_):
    accepted = boundary.accept(line(ONE_OF_EACH[type_]))
    # Equal, not hashed a second time: the stream worker stores what the replay stores.
    assert boundary.accept_published(encode(accepted)) == accepted
    assert boundary.accept_published(encode(accepted).decode()) == accepted


# -- an import's file: pseudonymised ahead, named by its key's fingerprint ------------------------


def fingerprint(key: bytes = KEY) -> str:
    """The key's fingerprint, computed here independently: HMAC of a fixed domain, 16 hex digits."""
    return hmac32("key fingerprint\0", key)[:16]


@pytest.mark.parametrize("type_", TYPE_NAMES)
def test_an_imported_event_replays_unchanged(boundary, type_):
    # `availability import --out` writes what the boundary made, marked with the key's
    # fingerprint; `process` on that file must store exactly that event: nothing hashed twice.
    accepted = boundary.accept(line(ONE_OF_EACH[type_]))
    marked = encode(accepted).replace(b"{", b'{"pseudonymised":"' + fingerprint().encode() + b'",', 1)
    assert boundary.accept(marked) == accepted
    assert boundary.accept_published(marked) == accepted


def test_an_event_pseudonymised_with_another_key_is_rejected(boundary):
    accepted = boundary.accept(line(ONE_OF_EACH["call.offered"]))
    other = encode(accepted).replace(b"{", b'{"pseudonymised":"' + fingerprint(OTHER_KEY).encode() + b'",', 1)
    assert rejected(boundary, other).startswith("pseudonymised: made with another pseudonym key")


def test_a_marked_event_still_gets_its_raw_fields_checked(boundary):
    # The mark is no way around the boundary: a raw caller is still hashed, a raw agent refused.
    mark = {"pseudonymised": fingerprint()}
    offered = boundary.accept(line(ONE_OF_EACH["call.offered"] | mark))
    assert PHONE not in encode(offered).decode() and HEX32.fullmatch(offered.data.caller_ref)
    answered = ONE_OF_EACH["call.answered"] | mark
    assert rejected(boundary, line(answered)).startswith("data.agent: not a pseudonym")
    assert rejected(boundary, line(answered | {"pseudonymised": "not-hex"})).startswith("pseudonymised:")


def test_published_round_trip_of_the_examples(boundary, example_lines):
    for raw in example_lines:
        accepted = boundary.accept(raw)
        assert boundary.accept_published(encode(accepted)) == accepted


@pytest.mark.parametrize(
    ("type_", "change", "reason"),
    [
        ("call.answered", {"agent": "a17"}, "data.agent: not a pseudonym (32 hex digits)"),
        ("agent.state", {"agent": "a17"}, "data.agent: not a pseudonym (32 hex digits)"),
        ("mail.received", {"message_id": "<m1@x>"}, "data.message_id: not a pseudonym (32 hex digits)"),
        ("mail.received", {"thread_id": "t1"}, "data.thread_id: not a pseudonym (32 hex digits)"),
        ("mail.replied", {"in_reply_to": "<m1@x>"}, "data.in_reply_to: not a pseudonym (32 hex digits)"),
        ("mail.closed", {"thread_id": "t1"}, "data.thread_id: not a pseudonym (32 hex digits)"),
        ("call.offered", {"caller_ref": "+46709998877"}, "data.caller_ref: not a pseudonym (32 hex digits)"),
        ("mail.received", {"sender_ref": "anna@example.se"}, "data.sender_ref: not a pseudonym (32 hex digits)"),
        ("call.ended", {"call_id": "c 1"}, "data.call_id: not a token ([A-Za-z0-9._:-], at most 128 characters)"),
    ],
)
def test_published_around_the_boundary_is_rejected(boundary, type_, change, reason):
    event = json.loads(encode(boundary.accept(line(ONE_OF_EACH[type_]))))
    event["data"] |= change
    assert boundary.accept_published(line(event)) == Rejection(
        reason + "; was it published around the ingest boundary?"
    )


def test_published_envelope_checks(boundary):
    event = json.loads(encode(boundary.accept(line(ONE_OF_EACH["call.ended"]))))
    assert boundary.accept_published(line(event | {"id": "Anna Svensson"})) == Rejection(
        "id: not a token ([A-Za-z0-9._:-], at most 128 characters); was it published around the ingest boundary?"
    )
    assert boundary.accept_published(line(event | {"source": "anna@example.se"})) == Rejection(
        "source: must be a short name (letters, digits, '.', '_', '/', '-'; at most 64 characters)"
    )
    assert boundary.accept_published(line(event | {"time": "3026-01-01T00:00:00Z"})) == Rejection(
        range_reason("3026-01-01T00:00:00Z")
    )
    assert boundary.accept_published(line(event | {"data": {"call_id": "c1", "x": json.loads("[[[]]]")}})) == (
        boundary.accept(line(ONE_OF_EACH["call.ended"]))  # unknown fields dropped, as in accept
    )
    assert boundary.accept_published(b"x" * (MAX_EVENT_BYTES + 1)) == Rejection(
        "event larger than 65536 bytes (65537 bytes)"
    )
    unknown = json.loads(encode(boundary.accept(line(ONE_OF_EACH["call.queued"]))))
    unknown["data"]["queue"] = "nowhere"
    assert boundary.accept_published(line(unknown)) == Rejection(
        "data.queue: unknown queue 'nowhere' (not in the agreements)"
    )
    # the envelope subject and a non-JSON content type are dropped here too
    dropped = boundary.accept_published(line(event | {"subject": "Anna", "datacontenttype": "text/plain"}))
    assert (dropped.subject, dropped.datacontenttype) == (None, None)


def test_published_raw_personal_data_is_pseudonymised_as_in_accept(boundary):
    # Defence in depth: a raw caller, sender or subject on a topic is hashed or classified here.
    accepted_call = boundary.accept(line(offered()))
    call = json.loads(encode(accepted_call))
    call["data"] = {k: v for k, v in call["data"].items() if k != "caller_ref"} | {"caller": PHONE}
    assert boundary.accept_published(line(call)) == accepted_call
    accepted_mail = boundary.accept(line(mail(subject="Anstånd")))
    message = json.loads(encode(accepted_mail))
    message["data"] = {k: v for k, v in message["data"].items() if k not in ("sender_ref", "categories")}
    message["data"] |= {"sender": EMAIL, "subject": "Anstånd", "categories": ["Anna Svensson"]}
    assert boundary.accept_published(line(message)) == accepted_mail
    assert accepted_mail.data.categories == [PRIORITY, "anstand"]


def test_published_categories_are_restricted(boundary):
    message = json.loads(encode(boundary.accept(line(mail(subject="Anstånd")))))
    message["data"]["categories"] = ["PRIORITY", "anstand", "Anna Svensson", "19790101-1234"]
    assert boundary.accept_published(line(message)).data.categories == [PRIORITY, "anstand"]


def test_published_live_rejects_the_future(agreements):
    boundary = live(agreements)
    event = json.loads(encode(boundary.accept(line(ONE_OF_EACH["call.ended"]))))
    event["time"] = "2026-04-01T08:45:00+02:00"  # 15 minutes ahead of NOW
    assert boundary.accept_published(line(event)).reason.startswith(
        "time: 2026-04-01T08:45:00+02:00 is more than 5 minutes"
    )


def test_published_never_raises(boundary):
    raw = line(ONE_OF_EACH["call.ended"]).replace('"c1"', '"c\u00e9"').encode("latin-1")  # é is E9 in Latin-1
    position = raw.index(b"\xe9")
    assert boundary.accept_published(raw) == Rejection(
        f"not valid UTF-8: byte 0xe9 at offset {position} (was it saved as Latin-1 or Windows-1252?)"
    )
    deep = line(ONE_OF_EACH["call.ended"])[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    assert boundary.accept_published(deep) == Rejection(NESTED_TOO_DEEP)
    assert boundary.accept_published(42) == Rejection("cannot be read (TypeError)")
