"""The interval aggregates: per queue and mailbox and 15 minutes, the measures the facts give.

`queue_intervals` and `mailbox_intervals` (schemas/ddl/009_facts_by_time.sql) hold, per
15-minute interval of first queued time (or opening) and queue (or mailbox), what the contacts
(cases) stored in `call_contacts` (`mail_cases`) give. They are kept exact by recomputing every
interval a batch touched from the facts, after the batch's facts are stored: the Deriver knows
the intervals of each fact before and after the batch (a late event that moves a contact touches
both). A recompute replaces the interval's rows (ReplacingMergeTree on `computed_at`), so a batch
done again after a failed write, or two workers writing the same interval, never add twice, as
adding the after and subtracting the before would when a write is retried.

What is kept per interval composes exactly over any period made of intervals (a local day, hour
or month in any time zone: every UTC offset in use is a multiple of 15 minutes): counts add, the
longest wait is the largest, and the answered waits are kept as a histogram of exact values (in
microseconds, as many as there are distinct waits; sources give whole seconds), from which a
period's nearest-rank percentile and mean are exact (dashboards/kpi_sql.py).

Each count is a predicate on one contact (case), written once here: dashboards/kpi_sql.py counts
the same predicates over the facts, so a count read from intervals and one counted over the
facts of the same period are the same formula.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from stream_jobs.core.store import INTERVAL

ORDINARY = "NOT internal"  # internal transfers (queued again after an answer) are in no KPI

# The counts of a queue: per ordinary contact, the predicate it is counted by.
CONTACT_COUNTS = {
    "offered": "queue_open",
    "answered": "queue_open AND outcome = 'answered'",
    "abandoned": "queue_open AND outcome = 'abandoned'",
    "short_abandoned": "queue_open AND short_abandon",
    "callbacks": "queue_open AND outcome = 'callback'",
    "flowed_out": "queue_open AND outcome = 'flowed_out'",  # routed out unanswered: in the base
    "in_service_level": "queue_open AND in_service_level",  # answered with wait <= service_level_seconds
    "out_of_hours": "NOT queue_open",  # unmet demand: in none of the other counts
}
# Per extra_service_levels threshold X of a queue, its contacts answered within X: (thresholds, counts).
LEVELS_MET = "sumMapIf(levels_met, arrayMap(x -> toUInt64(1), levels_met), {})"
IN_TIME = "lead_seconds <= target_seconds"  # an answered case's lead time within its target
# A wait in whole microseconds (wait_seconds is a difference of instants: a whole number of them).
WAIT_US = "toUInt64(round(assumeNotNull(wait_seconds) * 1000000))"

# The counts of a mailbox that do not depend on when its cases are judged (received), and those
# judged now (the dashboards'; the report judges a case at the end of its month).
CASE_COUNTS = {
    "received": "true",
    "priority_received": "priority",
    "replied": "end = 'replied'",
    "closed": "end = 'closed'",
    "replied_in_time": f"end = 'replied' AND {IN_TIME}",
}

# Per table: (its key column, its facts, the instant that fixes a fact's interval, the measures
# as name -> aggregate over the interval's facts).
_ONE = "arrayMap(x -> toUInt64(1), {})"
_QUEUE_MEASURES = {
    **{name: f"countIf({ORDINARY} AND {p})" for name, p in CONTACT_COUNTS.items()},
    "internal_transfers": "countIf(internal)",
    "levels_map": LEVELS_MET.format(f"{ORDINARY} AND queue_open"),
    "wait_map": f"sumMapIf([{WAIT_US}], [toUInt64(1)], {ORDINARY} AND queue_open AND outcome = 'answered')",
    "max_wait": f"maxIf(wait_seconds, {ORDINARY} AND queue_open AND outcome IN ('answered', 'abandoned'))",
    "left_map": (
        "sumMapIf(arrayMap(q -> toString(q), transferred_from), "
        f"{_ONE.format('transferred_from')}, {ORDINARY} AND queue_open)"
    ),
    "derived_with": "arraySort(groupUniqArray(toString(derived_with)))",
}
# The stored columns made of a measure above (a sumMap's keys and values go to two columns).
_QUEUE_COLUMNS = {
    **{name: name for name in (*CONTACT_COUNTS, "internal_transfers", "max_wait", "derived_with")},
    "levels": "levels_map.1",
    "levels_met": "levels_map.2",
    "wait_us": "wait_map.1",
    "wait_counts": "wait_map.2",
    "left_queues": "left_map.1",
    "left_counts": "left_map.2",
}
_MAILBOX_MEASURES = {
    **{name: f"countIf({p})" for name, p in CASE_COUNTS.items()},
    "derived_with": "arraySort(groupUniqArray(toString(derived_with)))",
}
_MAILBOX_COLUMNS = {name: name for name in _MAILBOX_MEASURES}
TABLES = {
    "queue_intervals": ("queue", "call_contacts", "first_queued_at", _QUEUE_MEASURES, _QUEUE_COLUMNS),
    "mailbox_intervals": ("mailbox", "mail_cases", "opened_at", _MAILBOX_MEASURES, _MAILBOX_COLUMNS),
}


def refresh_sql(
    table: str, intervals: Iterable[datetime] | None = None, *, runs: list[tuple[int, int]] | None = None
) -> str:
    """The INSERT that recomputes `table` for these interval starts, or these ranges of them
    (`_runs`), or every interval when neither is given:
    a row per (interval, queue or mailbox) that has facts, and a row of zeros for each that the
    table holds there and that has none left (a contact moved out, or withdrawn). GLOBAL: on a
    cluster the joined table is read once over every shard, whatever the session's product mode."""
    key, facts, instant, measures, columns = TABLES[table]
    aggregates = "".join(f",\n        {expr} AS {name}" for name, expr in measures.items())
    stored = "".join(f", {expr} AS {name}" if expr != name else f", {name}" for name, expr in columns.items())
    names = ", ".join(["interval_start", key, *columns])
    if runs is None and intervals is not None:
        runs = _runs(intervals)
    where = "true" if runs is None else _ranges(instant, runs)
    fresh = f"""
    SELECT toStartOfFifteenMinutes({instant}) AS interval_start, {key}{aggregates}
    FROM {facts} FINAL
    WHERE {where}
    GROUP BY interval_start, {key}"""
    if runs is None:  # every interval: no row is left without facts
        return f"INSERT INTO {table} ({names})\nSELECT interval_start, {key}{stored} FROM ({fresh}\n)"
    # The rows the table holds there join the fresh ones: one with no facts left gets the join's
    # defaults, which are an empty interval's values (0, [], a NULL longest wait).
    return f"""INSERT INTO {table} ({names})
SELECT interval_start, {key}{stored}
FROM ({fresh}
) AS fresh
GLOBAL FULL OUTER JOIN (
    SELECT interval_start, {key} FROM {table} FINAL WHERE {_ranges("interval_start", runs)}
) AS held USING (interval_start, {key})"""


# Ranges per statement: each is written twice, ~200 bytes a time, so a statement stays far below
# ClickHouse's max_query_size (256 KiB) however many intervals a run touched (a year's rederive).
RANGES_PER_STATEMENT = 250


def refresh_statements(table: str, intervals: Iterable[datetime]) -> Iterator[str]:
    """`refresh_sql` for these intervals, in statements of at most RANGES_PER_STATEMENT ranges."""
    runs = _runs(intervals)
    for i in range(0, len(runs), RANGES_PER_STATEMENT):
        yield refresh_sql(table, runs=runs[i : i + RANGES_PER_STATEMENT])


def _runs(intervals: Iterable[datetime]) -> list[tuple[int, int]]:
    """The intervals as few ranges [start, end) of epoch seconds as they make (adjacent joined)."""
    runs: list[list[int]] = []
    step = int(INTERVAL.total_seconds())
    for start in sorted({int(t.timestamp()) for t in intervals}):
        if runs and runs[-1][1] == start:
            runs[-1][1] = start + step
        else:
            runs.append([start, start + step])
    return [(a, b) for a, b in runs]


def _ranges(col: str, runs: list[tuple[int, int]]) -> str:
    """`col` in any of the ranges, so the facts' sort key (the instant first) reads only those granules."""
    ranges = [f"({col} >= toDateTime({a}, 'UTC') AND {col} < toDateTime({b}, 'UTC'))" for a, b in runs]
    return "(" + " OR ".join(ranges) + ")"
