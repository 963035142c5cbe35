"""What the staffing forecast reads of the warehouse: per queue the offered contacts of each
15-minute interval (`queue_intervals`, as the report counts them), the talk, waits and abandons of
each local day (`call_contacts`), and the agents' wrap-up (`agent.state` events). Three queries
over the span, whatever its length; the weeks of a backtest are cut from it in Python
(dashboards/staffing/plan.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from dashboards import kpi_sql
from dashboards.staffing.plan import DayStats, History
from schemas.agreements import Agreements
from stream_jobs.core.arrivals import slot_of
from stream_jobs.core.store import as_utc
from stream_jobs.warehouse import Warehouse, ms

MAX_TALK_SECONDS = 7200  # a longer talk is a call left open, not handle time
MAX_WRAP_UP_SECONDS = 600  # a longer wrap-up state is an agent who forgot to leave it

_SPAN = (
    "{col} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC') "
    "AND {col} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
)

# Every interval with any contact (the days with none at all are missing data, not quiet days).
INTERVALS_SQL = f"""
SELECT interval_start, queue, offered, offered - short_abandoned - callbacks AS base,
       offered + out_of_hours + internal_transfers AS contacts
FROM {kpi_sql.INTERVALS}
WHERE {_SPAN.format(col="interval_start")} AND offered + out_of_hours + internal_transfers > 0
"""

# Per queue and local day of first queuing, the ordinary contacts offered while open: talk of the
# answered, abandons (not short), and the waits of the contacts in the targets' base.
CONTACTS_SQL = f"""
SELECT queue, formatDateTime(first_queued_at, '%Y-%m-%d', {{tz:String}}) AS day,
    countIf(outcome = 'answered' AND talk_seconds IS NOT NULL AND talk_seconds <= {MAX_TALK_SECONDS}) AS talks,
    sumIf(assumeNotNull(talk_seconds),
          outcome = 'answered' AND talk_seconds IS NOT NULL AND talk_seconds <= {MAX_TALK_SECONDS}) AS talked,
    countIf(outcome = 'abandoned' AND NOT short_abandon) AS abandons,
    sumIf(assumeNotNull(wait_seconds), wait_seconds IS NOT NULL AND NOT short_abandon) AS waited
FROM {kpi_sql.CONTACTS}
WHERE {kpi_sql.ORDINARY} AND queue_open AND {_SPAN.format(col="first_queued_at")}
GROUP BY queue, day
"""

# Each wrap-up state of an agent lasts until the agent's next state event; counted for each queue
# the agent serves, on the local day it began.
WRAP_UPS_SQL = f"""
SELECT queue, day, count() AS wrap_ups, sum(seconds) AS wrap_up_seconds
FROM (
    SELECT JSONExtractString(payload, 'data', 'state') AS state,
           JSONExtract(payload, 'data', 'queues', 'Array(String)') AS queues,
           formatDateTime(time, '%Y-%m-%d', {{tz:String}}) AS day,
           dateDiff('millisecond', time,
                    leadInFrame(time) OVER (PARTITION BY key ORDER BY time, id
                                            ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)) / 1000 AS seconds
    FROM events FINAL
    WHERE kind = 'agent' AND {_SPAN.format(col="time")}
)
ARRAY JOIN queues AS queue
WHERE state = 'wrap_up' AND seconds > 0 AND seconds <= {MAX_WRAP_UP_SECONDS}
GROUP BY queue, day
"""

# The newest interval with a contact: where a backtest's range ends by default.
LAST_SQL = f"""
SELECT max(interval_start) FROM {kpi_sql.INTERVALS} WHERE offered + out_of_hours + internal_transfers > 0
"""


_FIELD = {"talked": "talk_seconds", "waited": "waited_seconds"}  # (an alias may not shadow a column)


def local_midnight(day: date, agreements: Agreements) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=agreements.timezone).astimezone(UTC)


def read_history(warehouse: Warehouse, agreements: Agreements, first: date, end: date) -> History:
    """The queues' history over the local days [first, end)."""
    tz = agreements.timezone
    span = {"start": ms(local_midnight(first, agreements)), "end": ms(local_midnight(end, agreements))}
    arrivals: dict[str, dict[tuple[date, int], float]] = defaultdict(dict)
    sums: dict[str, dict[date, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    contacts: dict[date, int] = defaultdict(int)
    for row in warehouse.records(INTERVALS_SQL, span):
        day, slot = slot_of(as_utc(row["interval_start"]), tz)
        contacts[day] += row["contacts"]
        if row["queue"] not in agreements.queues or not row["offered"]:
            continue
        per_queue = arrivals[row["queue"]]
        per_queue[(day, slot)] = per_queue.get((day, slot), 0.0) + row["offered"]  # the repeated hour: both
        sums[row["queue"]][day]["offered"] += row["offered"]
        sums[row["queue"]][day]["base"] += row["base"]
    params = span | {"tz": tz.key}
    for sql in (CONTACTS_SQL, WRAP_UPS_SQL):
        for row in warehouse.records(sql, params):
            if row["queue"] in agreements.queues:
                day = date.fromisoformat(row["day"])
                for key, value in row.items():
                    if key not in ("queue", "day"):
                        sums[row["queue"]][day][_FIELD.get(key, key)] += value
    stats = {q: {d: DayStats(**_typed(v)) for d, v in days.items()} for q, days in sums.items()}
    covered = frozenset(d for d, n in contacts.items() if n > 0 and first <= d < end)
    return History(first, end, covered, dict(arrivals), stats)


def last_day(warehouse: Warehouse, agreements: Agreements) -> date | None:
    """The local day of the newest interval with a contact (None in an empty warehouse)."""
    (newest,) = warehouse.query(LAST_SQL)[0]
    if newest is None or as_utc(newest).year < 1991:  # max() of no rows is the epoch
        return None
    return as_utc(newest).astimezone(agreements.timezone).date()


def _typed(values: dict[str, float]) -> dict[str, Any]:
    return {k: int(v) if k in ("talks", "abandons", "wrap_ups") else float(v) for k, v in values.items()}
