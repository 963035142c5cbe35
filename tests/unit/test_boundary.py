"""The ingest boundary (spec/events.md "Personal data" and "Bad input"): validation with reasons,
pseudonymisation, subject classification and JSONL batches. No network, no services."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from availability.errors import InputError
from ingest.boundary import Boundary, reason_of, unknown_reference
from ingest.classify import PRIORITY, categories, fold, matched_keywords
from ingest.jsonl import Rejected, read_batches
from ingest.pseudonymise import Pseudonymiser
from schemas.agreements import load_agreements
from schemas.events import (
    TYPE_NAMES,
    CallOffered,
    MailReceived,
    decode,
    encode,
    type_name,
)
from tests.conftest import SHARED

KEY = b"test-key-one"
OTHER_KEY = b"test-key-two"
HEX32 = re.compile(r"[0-9a-f]{32}")
PHONE = "+46701234567"
EMAIL = "anna.svensson@example.se"


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
    shared = shared_dir()
    if shared is None:
        pytest.skip("shared examples not found: neither ../shared nor $AVAILABILITY_SHARED exists")
    text = (shared / "examples" / "events.jsonl").read_text(encoding="utf-8")
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
    "call.ended": ev("call.ended", {"call_id": "c1"}),
    "agent.state": ev("agent.state", {"agent": "a17", "state": "ready", "queues": ["kundreskontra", "avgifter"]}),
    "mail.received": mail(),
    "mail.replied": ev("mail.replied", {"mailbox": "kundreskontra", "message_id": "<r1@x>", "thread_id": "t1"}),
    "mail.closed": ev("mail.closed", {"mailbox": "kundreskontra", "thread_id": "t1", "reason": "spam"}),
}


def rejected(boundary: Boundary, raw: str | bytes) -> str:
    result = boundary.accept(raw)
    assert isinstance(result, str), f"accepted: {result!r}"
    return result


# -- accepted -------------------------------------------------------------------------------------


def test_one_of_each_covers_every_type():
    assert set(ONE_OF_EACH) == set(TYPE_NAMES)


@pytest.mark.parametrize("type_", TYPE_NAMES)
def test_every_type_is_accepted(boundary, type_):
    raw = line(ONE_OF_EACH[type_])
    for form in (raw, raw.encode()):
        result = boundary.accept(form)
        assert not isinstance(result, str), result
        assert type_name(result) == type_


def test_every_example_event_is_accepted(boundary, example_lines):
    seen = set()
    for number, raw in enumerate(example_lines, start=1):
        result = boundary.accept(raw)
        assert not isinstance(result, str), f"line {number}: {result}"
        assert type_name(result) == json.loads(raw)["type"]
        if not isinstance(result, (CallOffered, MailReceived)):  # no personal data: passed on as decoded
            assert result == decode(raw)
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
        assert not isinstance(result, str), result
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


def test_source_given_sender_ref_is_kept(boundary):
    event = mail(sender=None) | {"data": mail(sender=None)["data"] | {"sender_ref": "f" * 32}}
    assert boundary.accept(line(event)).data.sender_ref == "f" * 32


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


def test_source_categories_kept(boundary):
    given = mail(subject="Makulering av faktura")
    given["data"]["categories"] = ["leverantör", "faktura"]
    result = boundary.accept(line(given))
    assert result.data.categories[:2] == ["leverantör", "faktura"]
    assert PRIORITY in result.data.categories
    assert "makuler" in result.data.categories


def test_source_priority_kept_without_keyword(boundary):
    given = mail(subject="Hej")
    given["data"]["categories"] = [PRIORITY]
    assert boundary.accept(line(given)).data.categories == [PRIORITY]


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
    assert categories(None, keywords, ["a", "a", "b"]) == ["a", "b"]
    assert categories("anstånd", keywords, [PRIORITY, "anstand"]) == [PRIORITY, "anstand"]
    assert categories("anstånd", keywords, ["x"]) == ["x", PRIORITY, "anstand"]


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
        assert isinstance(r, Rejected)
        assert word in r.reason, (r.line, r.reason)
        assert r.raw == raw.encode()
        assert r.file == str(path)
    assert batches[-1].bytes_read == path.stat().st_size


def test_read_batches_keeps_raw_of_rejected_without_line_end(tmp_path, boundary):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"{oops\r\n" + line(ONE_OF_EACH["call.ended"]).encode() + b"\r\n")
    _, events, rejects = collect(read_batches(path, boundary))
    assert len(events) == 1
    assert rejects == [Rejected(str(path), 1, rejects[0].reason, b"{oops")]


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
