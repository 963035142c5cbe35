"""The committed JSON Schemas (schemas/jsonschema/) match the models and agree with msgspec."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import msgspec
import pytest
import yaml

from availability.cli import main
from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from schemas import jsonschema_gen
from schemas.agreements import default_agreements_path, load_agreements
from schemas.events import TYPE_NAMES, decode, encode
from tests.conftest import SHARED, importorfail, unavailable

SCHEMA_DIR = Path(jsonschema_gen.__file__).resolve().parent / "jsonschema"


def shared_dir() -> Path:
    if not SHARED.is_dir():
        unavailable(f"shared examples not found at {SHARED} (set AVAILABILITY_SHARED)")
    return SHARED


@pytest.fixture(scope="module")
def example_lines() -> list[str]:
    path = shared_dir() / "examples" / "events.jsonl"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def jsonschema():
    return importorfail("jsonschema", "a dev dependency: pip install -e '.[dev]'")


def committed(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def event_validator(jsonschema):
    schema = committed("event.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, instance) -> list[str]:
    return [e.message for e in validator.iter_errors(instance)]


# -- drift ----------------------------------------------------------------------------------------


def test_generates_the_expected_files():
    names = set(jsonschema_gen.generate())
    assert names == {"event.schema.json", "agreements.schema.json"} | {f"{t}.schema.json" for t in TYPE_NAMES}


@pytest.mark.parametrize("name", sorted(jsonschema_gen.generate()))
def test_committed_file_matches_the_models(name):
    path = SCHEMA_DIR / name
    assert path.exists(), f"{path} missing: run availability generate"
    expected = jsonschema_gen.render(jsonschema_gen.generate()[name])
    assert path.read_text(encoding="utf-8") == expected, f"{name} drifted: run availability generate"


def test_no_stale_committed_files():
    stale = {p.name for p in SCHEMA_DIR.glob("*.json")} - set(jsonschema_gen.generate())
    assert not stale, f"no longer generated: {sorted(stale)}"


def test_generation_is_deterministic():
    first = {n: jsonschema_gen.render(s) for n, s in jsonschema_gen.generate().items()}
    second = {n: jsonschema_gen.render(s) for n, s in jsonschema_gen.generate().items()}
    assert first == second


def test_check_passes_on_the_committed_directory(capsys):
    assert main(["generate", "--check"]) == 0


def test_check_lists_drifted_files_without_writing(tmp_path, capsys):
    assert main(["generate", "--root", str(tmp_path)]) == 0
    schemas = tmp_path / "schemas" / "jsonschema"
    edited = schemas / "call.queued.schema.json"
    edited.write_text("{}\n", encoding="utf-8")
    (schemas / "call.gone.schema.json").write_text("{}\n", encoding="utf-8")
    (schemas / "event.schema.json").unlink()
    capsys.readouterr()

    assert main(["generate", "--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for name in ("call.queued.schema.json", "call.gone.schema.json", "event.schema.json"):
        assert name in err
    assert "call.offered.schema.json" not in err
    assert edited.read_text(encoding="utf-8") == "{}\n"  # --check writes nothing
    assert not (tmp_path / "event.schema.json").exists()


def test_documents_have_draft_id_and_title():
    for name, schema in jsonschema_gen.generate().items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://availability.example/schemas/{name}"
        assert schema["title"]
        assert schema["description"]


# -- the schemas are valid and describe the examples --------------------------------------------


def test_every_committed_schema_is_a_valid_draft_2020_12_schema(jsonschema):
    for name in jsonschema_gen.generate():
        jsonschema.Draft202012Validator.check_schema(committed(name))


def test_every_example_event_is_valid(example_lines, event_validator):
    for number, line in enumerate(example_lines, start=1):
        decode(line)  # msgspec accepts it ...
        assert errors(event_validator, json.loads(line)) == [], f"line {number}"  # ... and so does the schema


def test_every_example_event_is_valid_under_its_own_type_schema(example_lines, jsonschema):
    validators = {t: jsonschema.Draft202012Validator(committed(f"{t}.schema.json")) for t in TYPE_NAMES}
    for number, line in enumerate(example_lines, start=1):
        event = json.loads(line)
        assert errors(validators[event["type"]], event) == [], f"line {number}"
        other = next(t for t in TYPE_NAMES if t != event["type"])
        assert errors(validators[other], event), f"line {number} valid as {other}"


def test_events_after_the_boundary_are_valid(example_lines, event_validator):
    """What ingest emits (caller_ref, sender_ref, categories) is valid under the same schema."""
    agreements = load_agreements(shared_dir() / "examples" / "agreements.yaml")
    boundary = Boundary(agreements, Pseudonymiser(b"k", agreements))
    for line in example_lines:
        event = boundary.accept(line)
        assert not isinstance(event, Rejection), event
        assert errors(event_validator, json.loads(encode(event))) == []


def _dates_to_text(obj):
    if isinstance(obj, dict):
        return {k: _dates_to_text(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dates_to_text(v) for v in obj]
    return obj.isoformat() if isinstance(obj, date) else obj


@pytest.mark.parametrize("which", ["default", "example"])
def test_agreements_files_are_valid(which, jsonschema):
    path = default_agreements_path() if which == "default" else shared_dir() / "examples" / "agreements.yaml"
    raw = _dates_to_text(yaml.safe_load(path.read_text(encoding="utf-8")))
    validator = jsonschema.Draft202012Validator(committed("agreements.schema.json"))
    assert errors(validator, raw) == []
    bad = copy.deepcopy(raw)
    next(iter(bad["queues"].values()))["colour"] = "blue"  # unknown keys are errors in both
    assert errors(validator, bad)
    for section in ("queues", "mailboxes"):  # so is an id that is unsafe as a key or label
        unsafe = copy.deepcopy(raw)
        unsafe[section]["ekonomi/kund"] = next(iter(unsafe[section].values()))
        assert errors(validator, unsafe)


# -- the schema and msgspec agree on bad events -------------------------------------------------

GOOD = {
    "specversion": "1.0",
    "id": "e1",
    "source": "callguide",
    "type": "call.transferred",
    "time": "2026-04-01T08:30:00+02:00",
    "data": {"call_id": "p1", "queue": "kundreskontra", "to_queue": "avgifter"},
}


def _with(path: str, value: object) -> dict:
    event = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return event


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("time", "2026-04-01T08:30:00"),  # no offset
        ("time", "2026-04-01T08:30:00.250"),  # no offset, fractional seconds
        ("type", "call.teleported"),  # unknown type
        ("type", _DELETE),
        ("specversion", "0.3"),
        ("id", ""),
        ("source", _DELETE),
        ("data.call_id", _DELETE),
        ("data.to_queue", _DELETE),
        ("data", _DELETE),
        ("data", None),
        ("data.queue", 42),
        # id-like fields are bounded (issue 7): 512 characters before hashing, 64 for queue ids
        ("id", "x" * 513),
        ("data.call_id", "x" * 513),
        ("data.queue", "q" * 65),
    ],
)
def test_invalid_for_both(event_validator, path, value):
    event = _with(path, value)
    assert errors(event_validator, event), "the schema accepts it"
    with pytest.raises(msgspec.ValidationError):
        decode(json.dumps(event))


@pytest.mark.parametrize(
    "time", ["2026-04-01T08:30:00+02:00", "2026-04-01T06:30:00Z", "2026-04-01T06:30:00z", "2026-04-01T08:30:00.5-01:00"]
)
def test_valid_for_both(event_validator, time):
    event = _with("time", time)
    assert errors(event_validator, event) == []
    decode(json.dumps(event))


def test_time_without_offset_is_rejected_by_the_pattern(jsonschema):
    """msgspec's `format: date-time` alone would not reject it: the added pattern does."""
    schema = committed("call.transferred.schema.json")
    assert schema["properties"]["time"]["pattern"] == jsonschema_gen.TIME_OFFSET_PATTERN
    validator = jsonschema.Draft202012Validator(schema)
    [error] = validator.iter_errors(_with("time", "2026-04-01T08:30:00"))
    assert error.validator == "pattern"
    assert list(error.absolute_path) == ["time"]


@pytest.mark.parametrize(("path", "value"), [("id", "x" * 512), ("data.call_id", "x" * 512), ("data.queue", "q" * 64)])
def test_the_longest_allowed_values_are_valid_for_both(event_validator, path, value):
    event = _with(path, value)
    assert errors(event_validator, event) == []
    decode(json.dumps(event))


@pytest.mark.parametrize("source", ["anna.svensson@example.se", "Anna Svensson", "a" * 65])
def test_free_text_source_is_invalid_under_the_schema_and_at_the_boundary(event_validator, source):
    # The decoder leaves `source` to the boundary (a set lookup is cheaper than a pattern per
    # event); the schema states the same rule, so producers see it in the contract.
    event = _with("source", source)
    assert errors(event_validator, event)
    agreements = load_agreements(shared_dir() / "examples" / "agreements.yaml")
    result = Boundary(agreements, Pseudonymiser(b"k", agreements)).accept(json.dumps(event))
    assert isinstance(result, Rejection) and result.reason.startswith("source: must be a short name")


def test_the_schema_says_what_ingest_does_to_each_field():
    data = committed("call.answered.schema.json")["$defs"]["CallAnsweredData"]["properties"]
    assert "keyed hash" in data["agent"]["description"]
    mail = committed("mail.received.schema.json")["$defs"]["MailReceivedData"]["properties"]
    for field in ("message_id", "thread_id"):
        assert "keyed hash" in mail[field]["description"]
    assert "not by a source" in mail["sender_ref"]["description"]
    assert "priority" in mail["categories"]["description"]
    envelope = committed("call.ended.schema.json")["properties"]
    assert envelope["source"]["pattern"] == "^[A-Za-z0-9._/-]{1,64}$"
    assert "dropped" in envelope["subject"]["description"]
