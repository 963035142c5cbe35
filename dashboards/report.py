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
from schemas.agreements import Agreements
from schemas.calendar import local_month_bounds
from schemas.events import utc_z
from stream_jobs.warehouse import Warehouse, ms

DEFINITIONS = {
    "contact": "starts at the first call.queued; counted once, in the last queue it waited in (ACE attribution)",
    "period": "a contact or case belongs to the local month (agreements timezone) in which it was first queued "
    "or opened",
    "answer_rate": "answered / (offered - short_abandoned - callbacks)",
    "service_level": "answered with wait <= service_level_seconds / (offered - short_abandoned - callbacks)",
    "wait_p90_seconds": "nearest-rank 90th percentile of answered waits",
    "lead_time": "business time (opening hours of the mailbox calendar) from case opening to first reply",
    "internal_transfers": "contacts queued again after an answer; reported apart, in none of the KPIs",
    "evaluation_time": "open cases are judged at the end of the month, or now if that is earlier",
}

_PERIOD = (
    "{col} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')"
    " AND {col} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
)

QUEUES_SQL = f"""
SELECT
    queue,
    {kpi_sql.OFFERED} AS offered,
    {kpi_sql.ANSWERED} AS answered,
    {kpi_sql.ABANDONED} AS abandoned,
    {kpi_sql.SHORT_ABANDONED} AS short_abandoned,
    {kpi_sql.CALLBACKS} AS callbacks,
    {kpi_sql.OUT_OF_HOURS} AS out_of_hours,
    {kpi_sql.BASE} AS base,
    {kpi_sql.ANSWER_RATE} AS answer_rate,
    {kpi_sql.SERVICE_LEVEL} AS service_level,
    avgIf(wait_seconds, queue_open AND outcome = 'answered') AS asa_seconds,
    maxIf(wait_seconds, queue_open AND outcome IN ('answered', 'abandoned')) AS max_wait_seconds,
    {kpi_sql.ANSWERED_WAITS} AS waits,
    {kpi_sql.wait_p90("waits")} AS wait_p90_seconds
FROM call_facts FINAL
WHERE queue != '' AND {_PERIOD.format(col="first_queued_at")}
GROUP BY queue
"""

TRANSFERS_SQL = f"""
SELECT left_queue, count() AS transferred_out
FROM call_facts FINAL
ARRAY JOIN transferred_from AS left_queue
WHERE queue_open AND {_PERIOD.format(col="first_queued_at")}
GROUP BY left_queue
"""

INTERNAL_SQL = f"""
SELECT internal_queue_id, count() AS internal_transfers
FROM call_facts FINAL
ARRAY JOIN internal_queue AS internal_queue_id, internal_queued_at AS internal_at
WHERE {_PERIOD.format(col="internal_at")}
GROUP BY internal_queue_id
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
    countIf(priority) AS priority_received,
    countIf(priority AND {kpi_sql.within_target("answered_case")}) AS priority_within_target
FROM mail_cases FINAL
WHERE {_PERIOD.format(col="opened_at")} AND opened_at <= eval_at
GROUP BY mailbox
"""

QUEUE_KEYS = (
    "offered", "answered", "abandoned", "short_abandoned", "callbacks", "out_of_hours", "transferred_out",
    "answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds",
)  # fmt: skip
MAILBOX_KEYS = (
    "received", "answered", "closed_without_reply", "open_at_end", "within_target", "breached",
    "median_lead_seconds", "priority_received", "priority_within_target",
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
        q: {k: None if k in _RATIOS else 0 for k in QUEUE_KEYS} | {"internal_transfers": 0} for q in agreements.queues
    }
    for row in warehouse.records(QUEUES_SQL, period):
        if row["queue"] in queues:
            queues[row["queue"]].update({k: _number(row[k]) for k in QUEUE_KEYS if k in row})
    for left, count in warehouse.query(TRANSFERS_SQL, period):
        if left in queues:
            queues[left]["transferred_out"] = count
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
        # Loads (`availability process` runs) that started and never finished: the warehouse
        # may hold only part of those files, so the numbers above may be partial.
        "incomplete_loads": [
            {"started_at": utc_z(load["started_at"]), "files": load["files"]} for load in warehouse.incomplete_loads()
        ],
    }


def _number(value: Any) -> Any:
    """ClickHouse NaN (empty avg/quantile) is "no data" (null), never 0."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
