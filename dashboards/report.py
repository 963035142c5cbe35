"""The monthly availability report (spec/metrics.md, "Monthly report").

The metrics are aggregated by SQL in ClickHouse over the fact tables, so the cost scales with
the warehouse, not with Python loops over rows. Python only fills in the queues and mailboxes
that had no traffic and computes the business clock at the evaluation time (one number per
mailbox calendar).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from dashboards import kpi_sql
from schemas.agreements import Agreements, level_key
from schemas.calendar import local_month_bounds
from schemas.events import utc_z
from stream_jobs.warehouse import Warehouse, ms

DEFINITIONS = {
    "contact": "starts at a call.queued; counted once, in the last queue it waited in (ACE attribution); a call "
    "never queued is no contact; a re-queue after a callback or a flow-out is a new contact",
    "period": "a contact or case belongs to the local month (agreements timezone) in which it was first queued "
    "or opened",
    "answer_rate": "answered / (offered - short_abandoned - callbacks)",
    "service_level": "answered with wait <= service_level_seconds / (offered - short_abandoned - callbacks)",
    "service_levels": "for each extra threshold X of the queue: answered with wait <= X / the same base",
    "flowed_out": "offered contacts the switch routed out of the queue unanswered (call.exited); in the base",
    "wait_p90_seconds": "nearest-rank 90th percentile of answered waits",
    "callers": "distinct known callers (keyed hash of the number) among offered contacts",
    "callers_reached": "those callers with an answered contact first queued in the month, in any queue",
    "abandoned_recovered": "abandoned contacts (not short) whose caller was answered, in any queue, within 24 h "
    "after the abandon",
    "lead_time": "business time (opening hours of the mailbox calendar) from case opening to first reply",
    "answered_within_1_working_day": "answered before 24:00 of the first working day after the day the case "
    "opened (KKiK)",
    "internal_transfers": "contacts queued again after an answer; reported apart, in none of the KPIs",
    "evaluation_time": "open cases are judged at the end of the month, or now if that is earlier",
    "conflicting_duplicates": "events sharing source and id with another of different content (within one call or "
    "thread), counted in the month of the version kept, which is the one used",
}

_PERIOD = (
    "{col} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')"
    " AND {col} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
)
_ORDINARY_IN_PERIOD = f"{kpi_sql.ORDINARY} AND {_PERIOD.format(col='first_queued_at')}"

QUEUES_SQL = f"""
WITH reached AS (  -- the callers answered in the month, in any queue (callers_reached)
    SELECT DISTINCT caller_ref FROM {kpi_sql.CONTACTS}
    WHERE {_ORDINARY_IN_PERIOD} AND queue_open AND outcome = 'answered' AND caller_ref != ''
)
SELECT
    queue,
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
    {kpi_sql.LEVELS_MET} AS levels_met_count,
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
WHERE internal AND {_PERIOD.format(col="first_queued_at")}
GROUP BY queue
"""

# Abandoned contacts of the month (not short, known caller) whose caller was answered (a contact
# counted in `answered`, of any queue and any period) strictly after the abandon and at most 24 h
# later; the answer may fall after the month's end, and so may the abandon (a contact first queued
# in the month is the month's however late it ends), so the answers have no upper bound here.
RECOVERED_SQL = f"""
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
      AND left_at > fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')  -- after any abandon of the month
) AS b ON a.caller_ref = b.caller_ref
WHERE b.answered_at > a.abandoned_at AND b.answered_at <= a.abandoned_at + INTERVAL 24 HOUR
GROUP BY a.queue
"""

MAILBOXES_SQL = f"""
WITH
    fromUnixTimestamp64Milli({{eval:Int64}}, 'UTC') AS eval_at,
    end != '' AND ended_at <= eval_at AS ended,
    ended AND {kpi_sql.REPLIED} AS answered_case,
    transform(mailbox, {{mailboxes:Array(String)}}, {{clocks:Array(Float64)}}, 0.) - opened_clock AS age
SELECT
    mailbox,
    count() AS received,
    countIf(answered_case) AS answered,
    countIf(ended AND {kpi_sql.CLOSED}) AS closed_without_reply,
    countIf(NOT ended) AS open_at_end,
    countIf({kpi_sql.within_target("answered_case")}) AS within_target,
    countIf(answered_case AND {kpi_sql.LATE}) + countIf(NOT ended AND {kpi_sql.overdue("age")}) AS breached,
    {kpi_sql.median_lead("answered_case")} AS median_lead_seconds,
    countIf(answered_case AND {kpi_sql.WITHIN_WORKING_DAY}) AS answered_within_1_working_day,
    countIf(priority) AS priority_received,
    countIf(priority AND {kpi_sql.within_target("answered_case")}) AS priority_within_target
FROM mail_cases FINAL
WHERE {_PERIOD.format(col="opened_at")} AND opened_at <= eval_at
GROUP BY mailbox
"""

CONFLICTS_SQL = f"""
SELECT uniqExact(source, id) FROM event_conflicts FINAL WHERE {_PERIOD.format(col="time")}
"""

QUEUE_KEYS = (
    "offered", "answered", "abandoned", "short_abandoned", "callbacks", "flowed_out", "out_of_hours",
    "transferred_out", "answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds",
    "callers", "callers_reached", "abandoned_recovered",
)  # fmt: skip
MAILBOX_KEYS = (
    "received", "answered", "closed_without_reply", "open_at_end", "within_target", "breached",
    "median_lead_seconds", "answered_within_1_working_day", "priority_received", "priority_within_target",
)  # fmt: skip
_RATIOS = {"answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds"}


def monthly_report(
    warehouse: Warehouse, agreements: Agreements, month: str, now: datetime | None = None
) -> dict[str, Any]:
    """The report object of spec/metrics.md for a local month `YYYY-MM`."""
    start, end = local_month_bounds(month, agreements.timezone)
    now = now or datetime.now(UTC)
    eval_at = min(end, now)
    period = {"start": ms(start), "end": ms(end)}

    queues: dict[str, dict[str, Any]] = {
        q: {k: None if k in _RATIOS else 0 for k in QUEUE_KEYS}
        | {"service_levels": _service_levels(agreement.extra_service_levels, {}, 0), "internal_transfers": 0}
        for q, agreement in agreements.queues.items()
    }
    for row in warehouse.records(QUEUES_SQL, period):
        if row["queue"] in queues:
            entry = queues[row["queue"]]
            entry.update({k: _number(row[k]) for k in QUEUE_KEYS if k in row})
            met = dict(zip(*row["levels_met_count"], strict=True))
            extra = agreements.queues[row["queue"]].extra_service_levels
            entry["service_levels"] = _service_levels(extra, met, row["base"])
    for left, count in warehouse.query(TRANSFERS_SQL, period):
        if left in queues:
            queues[left]["transferred_out"] = count
    for queue, count in warehouse.query(RECOVERED_SQL, period):
        if queue in queues:
            queues[queue]["abandoned_recovered"] = count
    for queue, count in warehouse.query(INTERNAL_SQL, period):
        if queue in queues:
            queues[queue]["internal_transfers"] = count  # reported apart, not in the KPIs

    ids = list(agreements.mailboxes)
    clocks = [agreements.mailboxes[m].calendar.clock(eval_at) for m in ids]
    mailboxes: dict[str, dict[str, Any]] = {
        m: {k: None if k == "median_lead_seconds" else 0 for k in MAILBOX_KEYS} for m in ids
    }
    params = period | {"eval": ms(eval_at), "mailboxes": ids, "clocks": clocks}
    for row in warehouse.records(MAILBOXES_SQL, params):
        if row["mailbox"] in mailboxes:
            mailboxes[row["mailbox"]].update({k: _number(row[k]) for k in MAILBOX_KEYS})

    return {
        "month": month,
        "queues": queues,
        "mailboxes": mailboxes,
        "evaluated_at": eval_at.isoformat().replace("+00:00", "Z"),
        "definitions": DEFINITIONS,
        "conflicting_duplicates": warehouse.query(CONFLICTS_SQL, period)[0][0],
        # Loads (`availability process` runs) that started and never finished: the warehouse
        # may hold only part of those files, so the numbers above may be partial.
        "incomplete_loads": [
            {"started_at": utc_z(load["started_at"]), "files": load["files"]} for load in warehouse.incomplete_loads()
        ],
    }


def _service_levels(thresholds: tuple[float, ...], met: dict[float, int], base: int) -> dict[str, float | None]:
    """Each extra threshold's share of the base (keyed as written), null when the base is 0."""
    return {level_key(x): met.get(x, 0) / base if base else None for x in thresholds}


def _number(value: Any) -> Any:
    """ClickHouse NaN (empty avg/quantile) is "no data" (null), never 0."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
