"""The monthly availability report (spec/metrics.md, "Monthly report").

The metrics are aggregated by SQL in ClickHouse over the fact tables, so the cost scales with
the warehouse, not with Python loops over rows. Python only fills in the queues and mailboxes
that had no traffic and computes the business clock at the evaluation time (one number per
mailbox calendar).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from dashboards import kpi_sql
from dashboards.provenance import EVERYTHING, changed_settings
from schemas.agreements import Agreements, level_key
from schemas.calendar import local_month_bounds
from schemas.events import EARLIEST_TIME, utc_z
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
    "views": "days and hours: the month's contacts and cases by the local day, or hour of the day, they were first "
    "queued or opened in; months: the last 13 local months, each month's open cases judged at its own end",
    "met": "service level and answer rate are met at or above the queue's target; a mailbox promises every case "
    "answered within its lead time, so it is met when no case breached; a ratio with no base is not judged",
}

_ORDINARY_IN_PERIOD = f"{kpi_sql.ORDINARY} AND {kpi_sql.in_period('first_queued_at')}"

# The queue measures of a period, or of each bucket of one (the views), from the interval
# aggregates (stream_jobs/intervals.py): the month's SQL and the views' SQL share them, so a day
# and the month are the same formula. A bucket is kept when it holds an ordinary contact, as a
# GROUP BY over the facts would keep it (an interval whose contacts all moved away holds zeros).
_QUEUE_MEASURES = f"""
    {kpi_sql.INTERVAL_SUMS},
    offered - short_abandoned - callbacks AS base,
    {kpi_sql.ratio("answered")} AS answer_rate,
    {kpi_sql.ratio("in_service_level")} AS service_level,
    {kpi_sql.WAIT_HISTOGRAM} AS waits,
    {kpi_sql.histogram_mean("waits")} AS asa_seconds,
    max(max_wait) AS max_wait_seconds,
    {kpi_sql.histogram_p90("waits")} AS wait_p90_seconds,
    sumMap(levels, levels_met) AS levels_met_count,
    sumMap(left_queues, left_counts) AS left,
    sum(internal_transfers) AS internal_transfers"""
_IN_INTERVALS = kpi_sql.in_period("interval_start")
_HELD = "offered + out_of_hours + internal_transfers > 0"

QUEUES_SQL = f"""
SELECT queue,{_QUEUE_MEASURES}
FROM {kpi_sql.INTERVALS}
WHERE {_IN_INTERVALS}
GROUP BY queue
HAVING {_HELD}
"""

# Who called, from the facts of the period (distinct callers do not add up over intervals): per
# known caller, whether any offered contact of the month was answered (callers_reached, in any
# queue) and the queues they were offered in; then per queue. One pass over the month's facts.
CALLERS_SQL = f"""
SELECT queue, count() AS callers, countIf(reached) AS callers_reached
FROM (
    SELECT
        caller_ref,
        max(queue_open AND outcome = 'answered') AS reached,
        groupUniqArrayIf(queue, queue_open) AS queues
    FROM {kpi_sql.CONTACTS}
    WHERE {_ORDINARY_IN_PERIOD} AND caller_ref != ''
    GROUP BY caller_ref
)
ARRAY JOIN queues AS queue
GROUP BY queue
"""

# A bucket of the views: the local day, hour of the day or month of an instant (agreements' zone).
BUCKETS = {"days": "%Y-%m-%d", "hours": "%H", "months": "%Y-%m"}


def _bucket(col: str, view: str) -> str:
    return f"formatDateTime({col}, '{BUCKETS[view]}', {{tz:String}})"


def queue_view_sql(view: str) -> str:
    """The queue measures per queue and bucket (a local day, hour of day or month) of the period:
    an interval lies in one bucket of any of them."""
    return f"""
SELECT queue, {_bucket("interval_start", view)} AS bucket,{_QUEUE_MEASURES}
FROM {kpi_sql.INTERVALS}
WHERE {_IN_INTERVALS}
GROUP BY queue, bucket
HAVING offered + out_of_hours > 0
"""


# Abandoned contacts of the month (not short, known caller) whose caller was answered (a contact
# counted in `answered`, of any queue and any period) strictly after the abandon and at most 24 h
# later; the answer may fall after the month's end, and so may the abandon (a contact first queued
# in the month is the month's however late it ends). An answer lies after the month's start (after
# an abandon of the month) and at most 24 h after the month's last abandon, and so was first
# queued before that: only those granules are read (the sort key, and the minmax index of left_at).
RECOVERED_SQL = f"""
WITH abandoned AS (
    SELECT call_id, seq, queue, caller_ref, assumeNotNull(left_at) AS abandoned_at
    FROM {kpi_sql.CONTACTS}
    WHERE {_ORDINARY_IN_PERIOD} AND queue_open AND outcome = 'abandoned' AND NOT short_abandon
      AND caller_ref != '' AND left_at IS NOT NULL
),
(SELECT max(abandoned_at) + INTERVAL 24 HOUR FROM abandoned) AS last_answer
SELECT a.queue AS queue, uniqExact(a.call_id, a.seq) AS abandoned_recovered
FROM (
    SELECT caller_ref, assumeNotNull(left_at) AS answered_at
    FROM {kpi_sql.CONTACTS}
    WHERE {kpi_sql.ORDINARY} AND queue_open AND outcome = 'answered' AND caller_ref != '' AND left_at IS NOT NULL
      AND left_at > fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')  -- after any abandon of the month
      AND left_at <= last_answer AND first_queued_at <= last_answer
      AND caller_ref IN (SELECT caller_ref FROM abandoned)
) AS b
INNER JOIN abandoned AS a ON a.caller_ref = b.caller_ref
WHERE b.answered_at > a.abandoned_at AND b.answered_at <= a.abandoned_at + INTERVAL 24 HOUR
GROUP BY a.queue
"""

_MAILBOX_WITH = f"""
WITH
    fromUnixTimestamp64Milli({{eval:Int64}}, 'UTC') AS eval_at,
    end != '' AND ended_at <= eval_at AS ended,
    ended AND {kpi_sql.REPLIED} AS answered_case,
    transform(mailbox, {{mailboxes:Array(String)}}, {{clocks:Array(Float64)}}, 0.) - opened_clock AS age"""
_MAILBOX_MEASURES = f"""
    count() AS received,
    countIf(answered_case) AS answered,
    countIf(ended AND {kpi_sql.CLOSED}) AS closed_without_reply,
    countIf(NOT ended) AS open_at_end,
    countIf({kpi_sql.within_target("answered_case")}) AS within_target,
    countIf(answered_case AND {kpi_sql.LATE}) + countIf(NOT ended AND {kpi_sql.overdue("age")}) AS breached,
    {kpi_sql.median_lead("answered_case")} AS median_lead_seconds,
    countIf(answered_case AND {kpi_sql.WITHIN_WORKING_DAY}) AS answered_within_1_working_day,
    countIf(priority) AS priority_received,
    countIf(priority AND {kpi_sql.within_target("answered_case")}) AS priority_within_target"""
_MAILBOX_FROM = f"""
FROM mail_cases FINAL
WHERE {kpi_sql.in_period("opened_at")} AND opened_at <= eval_at"""

MAILBOXES_SQL = f"""{_MAILBOX_WITH}
SELECT mailbox,{_MAILBOX_MEASURES}{_MAILBOX_FROM}
GROUP BY mailbox
"""


def mailbox_view_sql(view: str) -> str:
    """The mailbox measures per mailbox and bucket of the period (cases by the bucket they opened in)."""
    return f"""{_MAILBOX_WITH}
SELECT mailbox, {_bucket("opened_at", view)} AS bucket,{_MAILBOX_MEASURES}{_MAILBOX_FROM}
GROUP BY mailbox, bucket
"""


CONFLICTS_SQL = f"""
SELECT uniqExact(source, id) FROM event_conflicts FINAL WHERE {kpi_sql.in_period("time")}
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
# The queue measures of the views (per day, hour of day and month): those of one queue over a
# bucket. Callers, transfers and recovered abandons are the month's only (they join across queues).
QUEUE_VIEW_KEYS = (
    "offered", "answered", "abandoned", "short_abandoned", "callbacks", "flowed_out", "out_of_hours",
    "answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds",
)  # fmt: skip
_RATIOS = {"answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds"}
TREND_MONTHS = 13  # the report's month and the twelve before it

# The measures each derivation input decides (dashboards/provenance.py finds the inputs that
# differ), for the warning when facts of the report's months were derived with other agreements.
_ALL_PHONE = (*QUEUE_KEYS, "service_levels")
AFFECTED = {
    "queues": {
        "calendar": _ALL_PHONE,  # open or closed decides offered vs out_of_hours, hence everything
        "service_level_seconds": ("service_level",),
        "short_abandon_seconds": (
            "short_abandoned",
            "answer_rate",
            "service_level",
            "service_levels",
            "abandoned_recovered",
        ),
        "extra_service_levels": ("service_levels",),
    },
    "mailboxes": {
        "calendar": (
            "within_target",
            "breached",
            "median_lead_seconds",
            "answered_within_1_working_day",
            "priority_within_target",
        ),
        "response_target_seconds": ("within_target", "breached", "priority_within_target"),
        "priority_response_target_seconds": ("within_target", "breached", "priority_within_target"),
    },
}


def monthly_report(
    warehouse: Warehouse, agreements: Agreements, month: str, now: datetime | None = None
) -> dict[str, Any]:
    """The report object of spec/metrics.md for a local month `YYYY-MM`, with its views (per day,
    hour of day and the last 13 months) and what a reader must know before trusting it."""
    start, end = local_month_bounds(month, agreements.timezone)
    now = now or datetime.now(UTC)
    eval_at = min(end, now)
    period = {"start": ms(start), "end": ms(end)}

    queues: dict[str, dict[str, Any]] = {
        q: {k: None if k in _RATIOS else 0 for k in QUEUE_KEYS}
        | {"service_levels": _service_levels(agreement.extra_service_levels, {}, 0), "internal_transfers": 0}
        for q, agreement in agreements.queues.items()
    }
    transferred: Counter[str] = Counter()
    for row in warehouse.records(QUEUES_SQL, period):
        transferred.update(dict(zip(*row["left"], strict=True)))  # whichever queue they went on to
        if row["queue"] in queues:
            queues[row["queue"]].update(_queue_measures(agreements, row, QUEUE_KEYS))
            queues[row["queue"]]["internal_transfers"] = row["internal_transfers"]  # reported apart
    for queue in queues:
        queues[queue]["transferred_out"] = transferred[queue]
    for row in warehouse.records(CALLERS_SQL, period):
        if row["queue"] in queues:
            queues[row["queue"]].update(callers=row["callers"], callers_reached=row["callers_reached"])
    for queue, count in warehouse.query(RECOVERED_SQL, period):
        if queue in queues:
            queues[queue]["abandoned_recovered"] = count

    mailboxes: dict[str, dict[str, Any]] = {
        m: {k: None if k == "median_lead_seconds" else 0 for k in MAILBOX_KEYS} for m in agreements.mailboxes
    }
    mail = _mail_params(agreements, period, eval_at)
    for row in warehouse.records(MAILBOXES_SQL, mail):
        if row["mailbox"] in mailboxes:
            mailboxes[row["mailbox"]].update({k: _number(row[k]) for k in MAILBOX_KEYS})

    months = trend_months(month)
    no_events = not any(q["offered"] or q["out_of_hours"] or q["internal_transfers"] for q in queues.values()) and (
        not any(m["received"] for m in mailboxes.values())
    )
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
        # No call contact and no mail case of the agreements' processes in the month: the zeros
        # above are an empty month (or the wrong warehouse), not a quiet one.
        "no_events": no_events,
        "agreements_changed": _agreements_changed(warehouse, agreements, months),
        "views": _views(warehouse, agreements, months, mail, now),
    }


def _queue_measures(agreements: Agreements, row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A queue's measures from a row of _QUEUE_MEASURES (service_levels from the levels met)."""
    met = dict(zip(*row["levels_met_count"], strict=True))
    extra = agreements.queues[row["queue"]].extra_service_levels
    return {k: _number(row[k]) for k in keys if k in row} | {"service_levels": _service_levels(extra, met, row["base"])}


def _mail_params(agreements: Agreements, period: dict[str, int], eval_at: datetime) -> dict[str, Any]:
    """The mailbox SQL's parameters: the business clock of each mailbox at the evaluation time."""
    ids = list(agreements.mailboxes)
    clocks = [agreements.mailboxes[m].calendar.clock(eval_at) for m in ids]
    return period | {"eval": ms(eval_at), "mailboxes": ids, "clocks": clocks}


def trend_months(month: str) -> list[str]:
    """The report's month and the TREND_MONTHS - 1 before it, oldest first, none before 2000."""
    y, m = (int(p) for p in month.split("-"))
    months = []
    for back in range(TREND_MONTHS - 1, -1, -1):
        yy, mm = divmod(y * 12 + (m - 1) - back, 12)
        if yy >= EARLIEST_TIME.year:
            months.append(f"{yy:04d}-{mm + 1:02d}")
    return months


def _views(
    warehouse: Warehouse, agreements: Agreements, months: list[str], mail: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Per local day and hour of the day of the month, and per month over `months` (the trend,
    ending with the report's month): the measures of each queue and mailbox in each bucket that
    has any contact or case (a bucket left out had none). `mail` holds the month's period and its
    mailbox parameters (the business clocks at the month's evaluation time); a mail case of the
    trend is judged at the end of its own month (or now)."""
    tz = {"tz": str(agreements.timezone)}
    period = {"start": mail["start"], "end": mail["end"]}
    views: dict[str, Any] = {
        view: {
            "queues": _queue_buckets(warehouse, agreements, view, period | tz),
            "mailboxes": _mailbox_buckets(warehouse, view, mail | tz),
        }
        for view in ("days", "hours")
    }
    first, _ = local_month_bounds(months[0], agreements.timezone)
    trend_queues = _queue_buckets(warehouse, agreements, "months", period | {"start": ms(first)} | tz)
    trend_mail: dict[str, dict[str, Any]] = {}
    for each in months:
        a, b = local_month_bounds(each, agreements.timezone)
        params = _mail_params(agreements, {"start": ms(a), "end": ms(b)}, max(a, min(b, now))) | tz
        for mailbox, buckets in _mailbox_buckets(warehouse, "months", params).items():
            trend_mail.setdefault(mailbox, {}).update(buckets)
    views["months"] = {"months": months, "queues": trend_queues, "mailboxes": trend_mail}
    return views


def _queue_buckets(
    warehouse: Warehouse, agreements: Agreements, view: str, params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(warehouse.records(queue_view_sql(view), params), key=lambda r: (r["queue"], r["bucket"])):
        if row["queue"] in agreements.queues:
            out.setdefault(row["queue"], {})[row["bucket"]] = _queue_measures(agreements, row, QUEUE_VIEW_KEYS)
    return out


def _mailbox_buckets(warehouse: Warehouse, view: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    rows = warehouse.records(mailbox_view_sql(view), params)
    for row in sorted(rows, key=lambda r: (r["mailbox"], r["bucket"])):
        if row["mailbox"] in params["mailboxes"]:
            out.setdefault(row["mailbox"], {})[row["bucket"]] = {k: _number(row[k]) for k in MAILBOX_KEYS}
    return out


def _agreements_changed(warehouse: Warehouse, agreements: Agreements, months: list[str]) -> list[dict[str, Any]]:
    """Per process and setting whose value differs from the one that derived facts of the
    report's months (the month and its trend): the measures it changes and those months."""
    out = []
    for (channel, process, setting), changed in sorted(changed_settings(warehouse, agreements, months).items()):
        every = _ALL_PHONE if channel == "queues" else MAILBOX_KEYS
        measures = every if setting in EVERYTHING else AFFECTED[channel][setting]
        entry = {"channel": channel, "process": process, "setting": setting, "measures": sorted(measures)}
        out.append(entry | {"months": sorted(changed)})
    return out


def _service_levels(thresholds: tuple[float, ...], met: dict[float, int], base: int) -> dict[str, float | None]:
    """Each extra threshold's share of the base (keyed as written), null when the base is 0."""
    return {level_key(x): met.get(x, 0) / base if base else None for x in thresholds}


def _number(value: Any) -> Any:
    """ClickHouse NaN (empty avg/quantile) is "no data" (null), never 0."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
