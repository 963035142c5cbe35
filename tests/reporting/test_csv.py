"""The tidy CSV read back as Power BI or a spreadsheet reads it (csv.DictReader): every number of
the model is there, once, with exactly the JSON report's value, target and judgement."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

import pytest

from dashboards.reporting import model
from dashboards.reporting.csvfile import COLUMNS, write_csv
from schemas.agreements import Agreements

REPORTS = [("example_report", "example_agreements"), ("week_report", "shipped_agreements")]


def written(report: dict[str, Any], agreements: Agreements, lang: model.Lang) -> str:
    out = io.StringIO(newline="")
    write_csv(report, agreements, lang, out)
    return out.getvalue()


def parsed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def assert_number(text: str, value: float | int | None) -> None:
    """The cell holds the JSON number itself: same text as json.dumps, same value, same type."""
    if value is None:
        assert text == ""
        return
    assert text == json.dumps(value)
    if isinstance(value, int):
        assert int(text) == value
    else:
        assert float(text) == value


@pytest.mark.parametrize("lang", model.LANGS)
@pytest.mark.parametrize(("report_name", "agreements_name"), REPORTS)
def test_every_model_row_round_trips(
    request: pytest.FixtureRequest, report_name: str, agreements_name: str, lang: model.Lang
) -> None:
    report = request.getfixturevalue(report_name)
    agreements = request.getfixturevalue(agreements_name)
    expected = list(model.rows(report, agreements, lang))
    text = written(report, agreements, lang)
    got = parsed(text)

    assert text.splitlines()[0] == ",".join(COLUMNS)  # English keys whatever the language
    assert len(got) == len(expected) > 0
    for row, want in zip(got, expected, strict=True):
        assert row["channel"] == want.channel
        assert row["process"] == want.process
        assert row["process_name"] == want.process_name
        assert row["view"] == want.view
        assert row["period"] == want.period
        assert row["measure"] == want.measure
        assert row["measure_name"] == want.label
        assert row["unit"] == ("seconds" if want.unit == "hours" else want.unit)  # the value's unit, not the display's
        assert_number(row["value"], want.value)
        assert_number(row["target"], want.target)
        assert row["met"] == {True: "true", False: "false", None: ""}[want.met]


def test_values_are_the_reports_own(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    """Read against the JSON report itself, not the model: the month's service levels and a day's
    breached count, to the last digit."""
    got = parsed(written(week_report, shipped_agreements, "en"))
    month = {(r["process"], r["measure"]): r for r in got if r["view"] == "month" and r["channel"] == "queues"}
    for queue, values in week_report["queues"].items():
        assert month[(queue, "service_level")]["value"] == json.dumps(values["service_level"])
        for level, value in values["service_levels"].items():
            assert float(month[(queue, f"service_levels.{level}")]["value"]) == value
    days = [r for r in got if r["channel"] == "mailboxes" and r["view"] == "days" and r["measure"] == "breached"]
    for r in days:
        assert int(r["value"]) == week_report["views"]["days"]["mailboxes"][r["process"]][r["period"]]["breached"]
    assert {r["met"] for r in got} == {"true", "false", ""}


def test_measure_names_follow_the_language(week_report: dict[str, Any], shipped_agreements: Agreements) -> None:
    names = {lang: {r["measure"]: r["measure_name"] for r in parsed(written(week_report, shipped_agreements, lang))}
             for lang in model.LANGS}  # fmt: skip
    closed = next(m for m in model.MAIL if m.key == "closed_without_reply")
    assert names["sv"]["closed_without_reply"] == closed.sv
    assert names["en"]["closed_without_reply"] == closed.en
    assert names["sv"]["service_level"] != names["en"]["service_level"]


def test_rfc_4180_quoting_and_line_ends(example_report: dict[str, Any], example_agreements: Agreements) -> None:
    """A display name with a comma and quotes survives, and every record ends in CRLF."""
    queue = next(iter(example_agreements.queues))
    awkward = 'Kund, "reskontra"\nrad två'
    renamed = dataclasses.replace(
        example_agreements,
        queues={
            **example_agreements.queues,
            queue: dataclasses.replace(example_agreements.queues[queue], name=awkward),
        },
    )
    text = written(example_report, renamed, "sv")
    assert '"Kund, ""reskontra""\nrad två"' in text
    assert text.endswith("\r\n")
    assert text.count("\r\n") == len(list(model.rows(example_report, renamed, "sv"))) + 1
    assert {r["process_name"] for r in parsed(text) if r["process"] == queue and r["channel"] == "queues"} == {awkward}
