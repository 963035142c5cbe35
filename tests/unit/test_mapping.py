"""The calls-csv mapping file (ingest/sources/mapping.py): the shipped examples load, and every
mistake is an InputError whose message names the key's path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ingest.sources.mapping import After, MappingError, load_mapping, parse_mapping
from schemas.errors import InputError

MAPPINGS = Path(__file__).resolve().parents[2] / "ingest" / "sources" / "mappings"

# The smallest valid mapping: clock times with a date column, one queue.
BASE: dict[str, Any] = {
    "source": "test",
    "timezone": "Europe/Stockholm",
    "id": ["date", "id"],
    "date": {"column": "date", "format": "%Y-%m-%d"},
    "times": {"format": "%H:%M:%S", "never": ["0:00:00"]},
    "lifecycle": {"offered": "in", "queued": "q", "answered": "a", "left": "a", "ended": "end"},
    "queue": {"default": "q1"},
    "outcome": {"column": "res", "values": {"A": "answered", "H": "abandoned"}},
    "entrance": {"default": "main"},
}


def edited(*edits: tuple[str, Any]) -> dict[str, Any]:
    """BASE with values set (or removed, for ...) at dotted paths."""
    raw = copy.deepcopy(BASE)
    for path, value in edits:
        *keys, last = path.split(".")
        node = raw
        for k in keys:
            node = node.setdefault(k, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


def error_of(raw: Any) -> str:
    with pytest.raises(MappingError) as info:
        parse_mapping(raw)
    assert isinstance(info.value, InputError)  # the CLI prints an InputError as one line
    return str(info.value)


def test_the_shipped_mappings_load() -> None:
    bank = load_mapping(MAPPINGS / "anonymous-bank-1999.yaml")
    assert bank.id_columns == ("date", "vru+line", "call_id")
    assert bank.csv.delimiter == "\t"  # YAML's "\t" is the tab itself
    assert bank.times.never == ["0:00:00"]
    assert bank.queue.map["PS"] == "ps"
    assert bank.lifecycle.answered_without_queue == "queued_at_answer"
    ace = load_mapping(MAPPINGS / "telia-ace-contact-list.yaml")
    assert ace.csv.delimiter == ";" and ace.csv.encoding == "utf-8-sig"
    assert ace.lifecycle.answered == After(after="queued", seconds="Queue time (s)")
    assert ace.outcome.values["Escalated"] == "exited:timeout"


def test_base_is_valid() -> None:
    m = parse_mapping(BASE)
    assert m.csv.delimiter == "," and m.csv.header  # the dialect's defaults
    assert m.agent is None and m.rules == []


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        # unknown keys, at every depth
        ((("colour", "red"),), "unknown key `colour`"),
        ((("lifecycle.queud", "q"),), "lifecycle: unknown key `queud`"),
        ((("csv.delimter", ";"),), "csv: unknown key `delimter`"),
        # a missing required key
        ((("source", ...),), "missing required key `source`"),
        # wrong types, with the path inside lists and maps
        ((("times.never", [0]),), "times.never[0]: expected text, got a number (write it in quotes"),
        ((("queue.map", {"PS": 5}),), "queue.map.PS: expected text, got a number"),
        ((("outcome.values", {"A": "hung"}),), "outcome.values.A:"),
        (
            (("lifecycle.answered_without_queue", "maybe"),),
            "lifecycle.answered_without_queue: invalid enum value 'maybe'",
        ),
        ((("lifecycle.answered", {"after": "later", "seconds": "w"}),), "lifecycle.answered.after: invalid enum value"),
        # values checked after the shape
        ((("source", "has space"),), "source: must be a short name"),
        ((("timezone", "Mars/Olympus"),), "timezone: unknown time zone 'Mars/Olympus'"),
        ((("csv.delimiter", ";;"),), "csv.delimiter: one character"),
        ((("csv.delimiter", '"'),), "csv.delimiter: cannot be a quote"),
        ((("csv.encoding", "klingon"),), "csv.encoding: unknown encoding 'klingon'"),
        ((("csv.skip_lines", -1),), "csv.skip_lines: must not be negative"),
        ((("csv.columns", ["a"]),), "csv.columns: only for a file without a header row"),
        ((("csv.header", False),), "csv.columns: a file without a header row needs its column names"),
        (
            (("csv.header", False), ("csv.columns", ["date", "id"])),
            "lifecycle.offered: column 'in' is not in csv.columns",
        ),
        ((("id", []),), "id: name at least one column"),
        ((("times.format", "%Y-%m-%d %H:%M:%S"),), "times.format: holds a date, but the date comes from date.column"),
        ((("date", ...),), "times.format: holds no date"),
        ((("times.format", "hh:mm"), ("date", ...)), "times.format: holds no date"),
        ((("date.skew_seconds", 43200),), "date.skew_seconds: must be from 0 to under 12 hours"),
        (
            (("lifecycle.queued", {"after": "answered", "seconds": "w"}),),
            "lifecycle.queued.after: must be an earlier step",
        ),
        (
            (("lifecycle.queued", ...), ("lifecycle.answered", {"after": "queued", "seconds": "w"})),
            "lifecycle.answered.after: the step 'queued' is not given",
        ),
        ((("lifecycle.ended", []),), "lifecycle.ended: name at least one column"),
        ((("lifecycle.left", ...),), "outcome.values.H: 'abandoned' needs lifecycle.left"),
        ((("outcome.values", {}),), "outcome.values: name at least one value"),
        (
            (("outcome.values", {"P": {"reject": "x", "ignore": "y"}}),),
            "outcome.values.P: give exactly one of reject or ignore",
        ),
        ((("outcome.values", {"P": {"reject": " "}}),), "outcome.values.P: the reason must not be empty"),
        ((("rules", [{"column": "res", "values": ["X"]}]),), "rules[0]: give exactly one of reject or ignore"),
        ((("rules", [{"column": "res", "values": [], "ignore": "no"}]),), "rules[0].values: name at least one value"),
        ((("queue", {}),), "queue: give a column, a default, or both"),
        ((("entrance", {}),), "entrance: give a column, a default, or both"),
        ((("agent", {"column": "who", "missing_as": ""}),), "agent.missing_as: must not be empty"),
    ],
)
def test_errors_name_the_path(edits: tuple[tuple[str, Any], ...], expected: str) -> None:
    assert expected in error_of(edited(*edits))


def test_a_key_yaml_reads_as_a_number_is_named() -> None:
    # `1: answered` under outcome.values: YAML gives the int 1, which no CSV value equals
    raw = edited(("outcome.values", {1: "answered"}))
    assert error_of(raw) == "outcome.values: the key 1 must be text (write it in quotes: '1')"


def test_not_a_mapping() -> None:
    assert "must be a mapping of keys" in error_of(["source", "x"])


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    with pytest.raises(MappingError, match=r"none\.yaml: cannot read mapping file"):
        load_mapping(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"bad\.yaml: not valid YAML \(.* at line 2, column 1\)"):
        load_mapping(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("source: x\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"wrong\.yaml: missing required key `timezone`"):
        load_mapping(wrong)


def test_tab_may_be_written_as_a_word() -> None:
    from ingest.sources.mapping import delimiter_of

    assert delimiter_of(parse_mapping(edited(("csv.delimiter", "tab"))).csv) == "\t"
    assert delimiter_of(parse_mapping(edited(("csv.delimiter", "\\t"))).csv) == "\t"  # '\t' in single quotes


@pytest.mark.parametrize("codec", ["rot13", "bz2_codec"])
def test_a_codec_that_is_no_text_encoding_is_refused(codec: str) -> None:
    # Python knows them as codecs, but open() refuses them for text: one line, not a traceback later.
    assert error_of(edited(("csv.encoding", codec))) == f"csv.encoding: '{codec}' is not a text encoding"
