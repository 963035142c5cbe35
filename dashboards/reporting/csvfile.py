"""The monthly report as one tidy CSV for pivot tables and Power BI: one row per process, period
and measure (model.rows()), so a tool can filter and pivot without knowing the report's shape.

The numbers are written exactly as the JSON report holds them (the shortest repr of the float,
dot decimals, no rounding, no thousands separator): a spreadsheet that reads the file computes
with the report's own values. Only `measure_name` follows the reader's language; the header
keys stay English so a saved Power BI query survives a switch of language.
"""

from __future__ import annotations

import csv
from typing import Any, TextIO

from dashboards.reporting.model import Lang, rows
from schemas.agreements import Agreements

# The unit of `value` as written (the JSON's): a lead time is shown in hours but held in seconds.
VALUE_UNIT = {"count": "count", "ratio": "ratio", "seconds": "seconds", "hours": "seconds"}
COLUMNS = (
    "channel",
    "process",
    "process_name",
    "view",
    "period",
    "measure",
    "measure_name",
    "unit",
    "value",
    "target",
    "met",
)


def number(value: float | int | None) -> str:
    """A JSON number as its exact text (repr: what json.dumps writes); empty for null."""
    return "" if value is None else repr(value)


def flag(met: bool | None) -> str:
    """A judgement as the JSON literal a tool recognises as boolean; empty when nothing was judged."""
    return "" if met is None else ("true" if met else "false")


def write_csv(report: dict[str, Any], agreements: Agreements, lang: Lang, out: TextIO) -> None:
    """Every number of the report as a tidy row (RFC 4180: comma, quoted when needed, CRLF).

    Open `out` with newline="" so the csv module's line endings are written unchanged."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows(report, agreements, lang):
        writer.writerow(
            (
                row.channel,
                row.process,
                row.process_name,
                row.view,
                row.period,
                row.measure,
                row.label,
                VALUE_UNIT[row.unit],
                number(row.value),
                number(row.target),
                flag(row.met),
            )
        )
