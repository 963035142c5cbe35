"""Fill a warehouse with a year of synthetic facts by SQL inside ClickHouse (bench/scale.py).

`call_contacts` and `mail_cases` rows are generated from `numbers()` with hashes of the row
number, shaped like the simulator's traffic (ingest/simulator/profiles.py): calls on the working
days of 52 weeks (Monday busiest) by its hourly curve, queues weighted by its yearly volumes,
each queue's own thresholds from the agreements, repeat callers, abandons, callbacks, flow-outs,
transfers and internal transfers, out-of-hours demand outside 08:30-16:00 and the lunch closure;
mail by its hourly curve, each mailbox's targets, priority cases, replies, closures and cases
still open. Every row is one the Deriver could store, and a share of them is stored twice (an
earlier derivation, then the one that replaced it), so that FINAL has work to do, as in a
warehouse a stream keeps writing.

One unit of scale is a million calls and 400 000 mail cases a year (about twenty times this
centre's calls, and the proportion of its mail): 50 units are the issue's 50 million calls and
20 million cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from ingest.simulator import profiles
from schemas.agreements import Agreements

CALLS_PER_UNIT = 1_000_000
CASES_PER_UNIT = 400_000
CHUNK = 2_000_000  # rows per INSERT ... SELECT: bounded memory whatever the scale
REDERIVED_PER_MILLE = 50  # rows stored twice: once as first derived (waiting, open), then final


def _draw(names: list[str], weights: list[float], hash_: str, slots: int = 1000) -> str:
    """SQL drawing one of `names` by their weights with a uniform hash: an array in which each
    name appears in proportion to its weight, indexed by the hash."""
    total = sum(weights)
    out: list[str] = []
    for name, w in zip(names, weights, strict=True):
        out += [name] * max(1, round(slots * w / total))
    return f"[{','.join(out)}][{hash_} % {len(out)} + 1]"


def _strings(values: list[str]) -> list[str]:
    return ["'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values]


def _floats(values: list[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for first in range(0, total, CHUNK):
        yield first, min(CHUNK, total - first)


def _when(year: int, tz: str, hours: tuple[float, ...], h_day: str, h_time: str) -> str:
    """SQL for `day`, `hour`, `ms_in_hour` and the instant `at` (UTC) of a row on a working day of
    the year, by the hourly curve `hours`, from two hashes."""
    monday = date.fromisocalendar(year, 1, 1).isoformat()
    return f"""
    toDate('{monday}') + 7 * ({h_day} % 52) + [0,0,0,1,1,2,2,3,3,4][{h_day} % 10 + 1] AS day,
    toUInt8({_draw([str(h) for h in range(24)], list(hours), h_time)}) AS hour,
    bitShiftRight({h_time}, 20) % 3600000 AS ms_in_hour,
    toDateTime64(toDateTime(day, '{tz}'), 3, 'UTC') + toIntervalMillisecond(hour * 3600000 + ms_in_hour) AS at"""


def calls_sql(agreements: Agreements, year: int, first: int, count: int, total: int) -> str:
    """The INSERT of the call contacts numbered `first` .. `first + count - 1` of `total`."""
    queues = list(agreements.queues)
    quoted = _strings(queues)
    weights = [profiles.QUEUES.get(q, profiles.DEFAULT_QUEUE).calls_per_year for q in queues]
    extra = [
        "CAST([" + ",".join(repr(float(x)) for x in agreements.queues[q].extra_service_levels) + "], 'Array(Float64)')"
        for q in queues
    ]
    callback = [
        s for q, s in zip(queues, quoted, strict=True) if profiles.QUEUES.get(q, profiles.DEFAULT_QUEUE).callback
    ]
    when = _when(year, str(agreements.timezone), profiles.CALL_HOURS, "h1", "h2")
    pool = max(1, round(profiles.CALLER_POOL * total / sum(q.calls_per_year for q in profiles.QUEUES.values())))
    return f"""
INSERT INTO call_contacts
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
     in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance,
     ended_at, events, derived_with)
WITH
    [{",".join(quoted)}] AS queue_ids,
    cityHash64(number, 1) AS h1, cityHash64(number, 2) AS h2, cityHash64(number, 3) AS h3,
    cityHash64(number, 4) AS h4, cityHash64(number, 5) AS h5,{when},
    h1 % 1000 < 25 AS is_internal,
    {_draw(quoted, weights, "h3")} AS q,
    queue_ids[bitShiftRight(h3, 16) % length(queue_ids) + 1] AS other,
    if(is_internal, other, q) AS queue_id,
    indexOf(queue_ids, queue_id) AS qi,
    NOT (hour < 8 OR hour >= 16 OR hour = 12 OR (hour = 8 AND ms_in_hour < 1800000)) AS open,
    h4 % 1000 AS r,
    multiIf(r < 90, 'abandoned', r < 115 AND has([{",".join(callback)}], queue_id), 'callback', r < 125, 'flowed_out',
            'answered') AS how,
    round(least(1800., -log((toFloat64(h5 % 1000000) + 1) / 1000001) * 40)) AS wait  -- whole seconds, as sources give
SELECT
    lower(hex(cityHash64(number, 'call'))),
    1 + is_internal,
    is_internal,
    queue_id,
    at,
    how,
    at + toIntervalMillisecond(toInt64(wait * 1000)),
    open,
    wait,
    how = 'abandoned' AND wait < {_floats([agreements.queues[q].short_abandon_seconds for q in queues])}[qi],
    how = 'answered' AND wait <= {_floats([agreements.queues[q].service_level_seconds for q in queues])}[qi],
    if(how = 'answered', arrayFilter(x -> wait <= x, [{",".join(extra)}][qi]), []),
    if(how = 'answered', concat('agent-', toString(h5 % 400)), ''),
    if(how = 'answered', round(-log((toFloat64(bitShiftRight(h4, 20) % 1000000) + 1) / 1000001) * 300, 3), NULL),
    if(h2 % 100 < 3 AND other != queue_id, [other], []),
    -- 30 % of the calls come from a pool of frequent callers, each calling as often as one of the
    -- simulator's (recovered abandons, callers reached); the others call once
    lower(hex(if(h3 % 10 < 3, cityHash64(h5 % {pool}, 'caller'), cityHash64(number, 'caller')))),
    at - toIntervalSecond(20),
    '08-508 330 00',
    at + toIntervalSecond(toInt64(wait) + 300),
    6,
    'bench'
FROM numbers({first}, {count})
"""


def cases_sql(agreements: Agreements, year: int, first: int, count: int) -> str:
    """The INSERT of the mail cases numbered `first` .. `first + count - 1`."""
    ids = list(agreements.mailboxes)
    quoted = _strings(ids)
    boxes = [agreements.mailboxes[m] for m in ids]
    weights = [3.0 if m in ("kundreskontra", "leverantorsreskontra") else 1.0 for m in ids]
    return f"""
INSERT INTO mail_cases
    (mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
     target_seconds, working_day_deadline, messages, sender_ref, derived_with)
WITH
    cityHash64(number, 11) AS h1, cityHash64(number, 12) AS h2, cityHash64(number, 13) AS h3,
    cityHash64(number, 14) AS h4,{_when(year, str(agreements.timezone), profiles.MAIL_HOURS, "h1", "h2")},
    {_draw(quoted, weights, "h3")} AS box,
    indexOf([{",".join(quoted)}], box) AS bi,
    cityHash64(number, 15) % 100 < 6 AS is_priority,
    if(is_priority, {_floats([b.priority_response_target_seconds for b in boxes])}[bi],
       {_floats([b.response_target_seconds for b in boxes])}[bi]) AS target,
    h4 % 100 AS r,
    multiIf(r < 82, 'replied', r < 92, 'closed', '') AS how,
    -- business seconds to the reply, and the wall-clock time it took (8.5 business hours a day)
    round(-log((toFloat64(bitShiftRight(h4, 24) % 1000000) + 1) / 1000001) * 6 * 3600, 3) AS lead,
    at + toIntervalSecond(toInt64(lead * 24 / 8.5)) AS ended
SELECT
    box,
    lower(hex(cityHash64(number, 'thread'))),
    1,
    at,
    -- the business clock at opening: 8.5 business hours a working day since 2000
    (toUInt32(day) - 10957) * 5 / 7 * 30600 + greatest(0, least(30600, (hour - 8) * 3600 + ms_in_hour / 1000)),
    if(how = '', NULL, ended),
    how,
    if(how = 'closed', 'no_reply_needed', ''),
    if(how = 'replied', lead, NULL),
    is_priority,
    target,
    toDateTime64(toDateTime(day + if(toDayOfWeek(day) = 5, 3, 1) + 1, '{agreements.timezone}'), 3, 'UTC'),
    1 + h2 % 3,
    lower(hex(cityHash64(h4 % 50000, 'sender'))),
    'bench'
FROM numbers({first}, {count})
"""


def rederived_sql(table: str) -> str:
    """A share of the rows again as first derived, stored before the final one (an earlier
    `derived_at`): a contact still waiting, a case still open."""
    if table == "call_contacts":
        changed = {"outcome": "'waiting'", "left_at": "NULL", "wait_seconds": "NULL", "in_service_level": "false",
                   "levels_met": "[]"}  # fmt: skip
        sample = "cityHash64(call_id, seq) % 1000"
    else:
        changed = {"end": "''", "ended_at": "NULL", "lead_seconds": "NULL"}
        sample = "cityHash64(thread_id) % 1000"
    columns = ", ".join(f"{value} AS {name}" for name, value in changed.items())
    return f"""
INSERT INTO {table}
SELECT * REPLACE ({columns}, derived_at - INTERVAL 1 HOUR AS derived_at)
FROM {table} WHERE {sample} < {REDERIVED_PER_MILLE}
"""


def fill(client: object, agreements: Agreements, year: int, units: float) -> tuple[int, int]:
    """Fill the (empty) warehouse's facts; returns the calls and cases inserted (without the rows
    stored twice)."""
    calls, cases = round(units * CALLS_PER_UNIT), round(units * CASES_PER_UNIT)
    for first, count in _chunks(calls):
        client.command(calls_sql(agreements, year, first, count, calls))  # type: ignore[attr-defined]
    for first, count in _chunks(cases):
        client.command(cases_sql(agreements, year, first, count))  # type: ignore[attr-defined]
    for table in ("call_contacts", "mail_cases"):
        client.command(rederived_sql(table))  # type: ignore[attr-defined]
    return calls, cases
