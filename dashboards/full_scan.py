"""The report's queue measures over the facts alone, as computed before the interval aggregates.

dashboards/report.py reads a period's counts, waits and transfers from `queue_intervals`
(stream_jobs/intervals.py). This module keeps the way they were computed before, straight from
`call_contacts` with FINAL over the whole period, as the reference the aggregates are checked
against: tests/warehouse/test_intervals.py on small warehouses with late and duplicate events,
and bench/scale.py on a year of fifty million calls. Nothing else uses it.
"""

from __future__ import annotations

import math
from typing import Any

from dashboards import kpi_sql
from dashboards.report import (
    QUEUE_KEYS,
    QUEUE_VIEW_KEYS,
    _bucket,
    _queue_measures,
    trend_months,
)
from schemas.agreements import Agreements
from schemas.calendar import local_month_bounds
from stream_jobs.warehouse import Warehouse, ms

_ORDINARY_IN_PERIOD = f"{kpi_sql.ORDINARY} AND {kpi_sql.in_period('first_queued_at')}"
_QUEUE_MEASURES = f"""
    {kpi_sql.OFFERED} AS offered,
    {kpi_sql.ANSWERED} AS answered,
    {kpi_sql.ABANDONED} AS abandoned,
    {kpi_sql.SHORT_ABANDONED} AS short_abandoned,
    {kpi_sql.CALLBACKS} AS callbacks,
    {kpi_sql.FLOWED_OUT} AS flowed_out,
    {kpi_sql.OUT_OF_HOURS} AS out_of_hours,
    {kpi_sql.BASE} AS base,
    {kpi_sql.ANSWER_RATE} AS answer_rate,
    {kpi_sql.SERVICE_LEVEL} AS service_level,
    avgIf(wait_seconds, queue_open AND outcome = 'answered') AS asa_seconds,
    maxIf(wait_seconds, queue_open AND outcome IN ('answered', 'abandoned')) AS max_wait_seconds,
    {kpi_sql.ANSWERED_WAITS} AS waits,
    {kpi_sql.wait_p90("waits")} AS wait_p90_seconds,
    {kpi_sql.LEVELS_MET} AS levels_met_count"""

QUEUES_SQL = f"""
WITH reached AS (
    SELECT DISTINCT caller_ref FROM {kpi_sql.CONTACTS}
    WHERE {_ORDINARY_IN_PERIOD} AND queue_open AND outcome = 'answered' AND caller_ref != ''
)
SELECT
    queue,{_QUEUE_MEASURES},
    {kpi_sql.CALLERS} AS callers,
    uniqExactIf(caller_ref, queue_open AND caller_ref != '' AND caller_ref IN reached) AS callers_reached
FROM {kpi_sql.CONTACTS}
WHERE {_ORDINARY_IN_PERIOD}
GROUP BY queue
"""

TRANSFERS_SQL = f"""
SELECT left_queue, count() AS transferred_out
FROM {kpi_sql.CONTACTS}
ARRAY JOIN transferred_from AS left_queue
WHERE queue_open AND {_ORDINARY_IN_PERIOD}
GROUP BY left_queue
"""

INTERNAL_SQL = f"""
SELECT queue, count() AS internal_transfers
FROM {kpi_sql.CONTACTS}
WHERE internal AND {kpi_sql.in_period("first_queued_at")}
GROUP BY queue
"""

# The answers of a recovered abandon, without bounds on the facts read but the month's start.
RECOVERED_UNBOUNDED_SQL = f"""
SELECT a.queue AS queue, uniqExact(a.call_id, a.seq) AS abandoned_recovered
FROM (
    SELECT call_id, seq, queue, caller_ref, assumeNotNull(left_at) AS abandoned_at
    FROM {kpi_sql.CONTACTS}
    WHERE {_ORDINARY_IN_PERIOD} AND queue_open AND outcome = 'abandoned' AND NOT short_abandon
      AND caller_ref != '' AND left_at IS NOT NULL
) AS a
INNER JOIN (
    SELECT caller_ref, assumeNotNull(left_at) AS answered_at
    FROM {kpi_sql.CONTACTS}
    WHERE {kpi_sql.ORDINARY} AND queue_open AND outcome = 'answered' AND caller_ref != '' AND left_at IS NOT NULL
      AND left_at > fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')
) AS b ON a.caller_ref = b.caller_ref
WHERE b.answered_at > a.abandoned_at AND b.answered_at <= a.abandoned_at + INTERVAL 24 HOUR
GROUP BY a.queue
"""

FINGERPRINTS_SQL = f"""
SELECT 'queues' AS channel, queue AS process, formatDateTime(first_queued_at, '%Y-%m', {{tz:String}}) AS month,
       derived_with
FROM {kpi_sql.CONTACTS}
WHERE {kpi_sql.in_period("first_queued_at")}
GROUP BY process, month, derived_with
UNION ALL
SELECT 'mailboxes' AS channel, mailbox AS process, formatDateTime(opened_at, '%Y-%m', {{tz:String}}) AS month,
       derived_with
FROM mail_cases FINAL
WHERE {kpi_sql.in_period("opened_at")}
GROUP BY process, month, derived_with
"""


def queue_view_sql(view: str) -> str:
    return f"""
SELECT queue, {_bucket("first_queued_at", view)} AS bucket,{_QUEUE_MEASURES}
FROM {kpi_sql.CONTACTS}
WHERE {_ORDINARY_IN_PERIOD}
GROUP BY queue, bucket
"""


def queue_parts(warehouse: Warehouse, agreements: Agreements, month: str) -> dict[str, Any]:
    """The queue measures of the report of `month` (its `queues`, and the `queues` of its views)
    and the fingerprints of its months' facts, computed over the facts alone."""
    start, end = local_month_bounds(month, agreements.timezone)
    period = {"start": ms(start), "end": ms(end)}
    tz = {"tz": str(agreements.timezone)}
    queues: dict[str, dict[str, Any]] = {}
    for row in warehouse.records(QUEUES_SQL, period):
        if row["queue"] in agreements.queues:
            queues[row["queue"]] = _queue_measures(agreements, row, QUEUE_KEYS)
    extra = {
        "transferred_out": warehouse.query(TRANSFERS_SQL, period),
        "abandoned_recovered": warehouse.query(RECOVERED_UNBOUNDED_SQL, period),
        "internal_transfers": warehouse.query(INTERNAL_SQL, period),
    }
    for key, rows in extra.items():
        for queue, count in rows:
            if queue in agreements.queues:
                queues.setdefault(queue, {})[key] = count
    views: dict[str, Any] = {}
    for view in ("days", "hours"):
        views[view] = _buckets(warehouse, agreements, view, period | tz)
    months = trend_months(month)
    first, _ = local_month_bounds(months[0], agreements.timezone)
    views["months"] = _buckets(warehouse, agreements, "months", period | {"start": ms(first)} | tz)
    fingerprints = sorted(
        warehouse.query(FINGERPRINTS_SQL, {"start": ms(first), "end": ms(end)} | tz), key=lambda r: tuple(map(str, r))
    )
    return {"queues": queues, "views": views, "fingerprints": fingerprints}


def _buckets(
    warehouse: Warehouse, agreements: Agreements, view: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in warehouse.records(queue_view_sql(view), params):
        if row["queue"] in agreements.queues:
            out.setdefault(row["queue"], {})[row["bucket"]] = _queue_measures(agreements, row, QUEUE_VIEW_KEYS)
    return out


def differences(
    report: dict[str, Any], reference: dict[str, Any], agreements: Agreements, fingerprints: list[tuple[Any, ...]]
) -> list[str]:
    """Where `report` (dashboards/report.py) differs from `reference` (`queue_parts` of the same
    month), field by field; `fingerprints` are provenance.FINGERPRINTS_SQL's rows for the trend.
    A queue or bucket the reference lacks holds what the report shows for no contact. Every value
    must be equal, except the mean wait, which may differ in its last digits: the reference
    averages floats, the aggregates divide an exact sum of microseconds (1e-12 relative)."""
    out = []
    for queue in agreements.queues:
        want = reference["queues"].get(queue, {})
        for key in (*QUEUE_KEYS, "service_levels", "internal_transfers"):
            got = report["queues"][queue][key]
            expected = want.get(key, _EMPTY.get(key, 0) if key != "service_levels" else got)
            if not _same(key, got, expected):
                out.append(f"queues.{queue}.{key}: {got!r} != {expected!r}")
    for view in ("days", "hours", "months"):
        got_view, want_view = report["views"][view]["queues"], reference["views"][view]
        for queue in sorted(set(got_view) | set(want_view)):
            got_buckets, want_buckets = got_view.get(queue, {}), want_view.get(queue, {})
            if sorted(got_buckets) != sorted(want_buckets):
                out.append(f"views.{view}.{queue}: buckets {sorted(got_buckets)} != {sorted(want_buckets)}")
                continue
            for bucket, values in want_buckets.items():
                for key, expected in values.items():
                    if not _same(key, got_buckets[bucket][key], expected):
                        out.append(f"views.{view}.{queue}.{bucket}.{key}: {got_buckets[bucket][key]!r} != {expected!r}")
    got_prints = sorted(fingerprints, key=lambda r: tuple(map(str, r)))
    if got_prints != reference["fingerprints"]:
        out.append(f"fingerprints: {got_prints} != {reference['fingerprints']}")
    return out


_EMPTY = {key: None for key in ("answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds")}


def _same(key: str, got: Any, expected: Any) -> bool:
    if key == "asa_seconds" and isinstance(got, float) and isinstance(expected, float):
        return math.isclose(got, expected, rel_tol=1e-12)
    return bool(got == expected)
