"""The KPIs of spec/metrics.md as ClickHouse SQL expressions, each written once.

The monthly report (dashboards/report.py) and the history and mailbox dashboards
(dashboards/grafana/history.py, mailbox.py) compose their queries from these, so a month in the
report and a day on a dashboard are the same formula over a different period.

Phone queues read `call_contacts` (one row per contact; `CONTACTS` below, with the internal
transfers left out, as every KPI does). The counts are aggregate expressions; the ratios divide
by an alias `base` (`{BASE} AS base`, in a WITH or the SELECT list) and are null when it is 0,
never 0 and never an error.

Function mailboxes read `mail_cases` (one row per case). Whether a case counts as answered
depends on when it is judged: the dashboards judge it now (`REPLIED`), the report at its
evaluation time (a reply after it does not count yet). The mail expressions therefore take the
"answered case" predicate as an argument.
"""

from __future__ import annotations

from stream_jobs import intervals

# -- phone queues: counts per period (a contact belongs to the period it was first queued in) ----


def in_period(col: str) -> str:
    """`col` in the period [start, end), given as the epoch-ms parameters {start} and {end}."""
    return (
        f"{col} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')"
        f" AND {col} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
    )


# The contacts of the KPIs: internal transfers (queued again after an answer) are reported apart.
CONTACTS = "call_contacts FINAL"
ORDINARY = intervals.ORDINARY

# Each count is a predicate on one contact, written once in stream_jobs/intervals.py (the
# interval aggregates count the same ones).
_COUNT = {name: f"countIf({predicate})" for name, predicate in intervals.CONTACT_COUNTS.items()}
OFFERED = _COUNT["offered"]
ANSWERED = _COUNT["answered"]
ABANDONED = _COUNT["abandoned"]
SHORT_ABANDONED = _COUNT["short_abandoned"]
CALLBACKS = _COUNT["callbacks"]
FLOWED_OUT = _COUNT["flowed_out"]  # routed out unanswered: in the base
OUT_OF_HOURS = _COUNT["out_of_hours"]  # unmet demand: in none of the other counts
IN_SERVICE_LEVEL = _COUNT["in_service_level"]  # answered with wait <= service_level_seconds
# Per extra_service_levels threshold X, the offered contacts answered within X: (thresholds, counts).
LEVELS_MET = intervals.LEVELS_MET.format("queue_open")
CALLERS = "uniqExactIf(caller_ref, queue_open AND caller_ref != '')"  # distinct known callers offered
# `short_abandon` (abandoned, wait < short_abandon_seconds), `in_service_level` (answered, wait <=
# service_level_seconds) and `levels_met` are decided once, when the contact is derived
# (stream_jobs/core/calls.py), and stored on call_contacts: the SQL reads them and never compares a
# wait with a threshold.

# The base of service level and answer rate: offered - short_abandoned - callbacks.
BASE = f"{OFFERED} - {SHORT_ABANDONED} - {CALLBACKS}"


def ratio(numerator: str, base: str = "base") -> str:
    """numerator / base, null when the base is 0."""
    return f"if({base} = 0, NULL, {numerator} / {base})"


# Both divide by the alias `base` (BASE).
SERVICE_LEVEL = ratio(IN_SERVICE_LEVEL)
ANSWER_RATE = ratio(ANSWERED)

# The waits of the answered contacts, sorted ascending (the input of wait_p90).
ANSWERED_WAITS = "arraySort(groupArrayIf(assumeNotNull(wait_seconds), queue_open AND outcome = 'answered'))"


def wait_p90(waits: str) -> str:
    """The nearest-rank 90th percentile of a sorted array: its ceil(0.9 n)-th smallest value (for 10
    waits the 9th; for 1 wait that wait), null when empty. ceil(9 n / 10) = intDiv(9 n + 9, 10) for a
    whole n; ClickHouse arrays are 1-based."""
    return f"if(empty({waits}), NULL, {waits}[intDiv(9 * length({waits}) + 9, 10)])"


# -- the same over the interval aggregates (queue_intervals, stream_jobs/intervals.py) -----------

INTERVALS = "queue_intervals FINAL"
# The sums of a period made of intervals, named as the counts over the facts.
INTERVAL_SUMS = ", ".join(f"sum({name}) AS {name}" for name in intervals.CONTACT_COUNTS)
# The answered waits of the period as a histogram: (distinct waits in microseconds ascending, counts).
WAIT_HISTOGRAM = "sumMap(wait_us, wait_counts)"


def histogram_p90(hist: str) -> str:
    """wait_p90 of a histogram of waits (`hist`: WAIT_HISTOGRAM's alias): the ceil(0.9 n)-th
    smallest wait, the first whose cumulative count reaches that rank; null when there is none.
    Exact: the waits are kept whole (microseconds), as many times as they occurred."""
    n = f"arraySum({hist}.2)"
    rank = f"intDiv(9 * {n} + 9, 10)"
    return f"if({n} = 0, NULL, {hist}.1[arrayFirstIndex(c -> c >= {rank}, arrayCumSum({hist}.2))] / 1e6)"


def histogram_mean(hist: str) -> str:
    """The mean answered wait of a histogram, null when there is none (the sum is exact in
    microseconds; one division, so it may differ from a float average in the last digit)."""
    n = f"arraySum({hist}.2)"
    return f"if({n} = 0, NULL, arraySum((w, c) -> w * c, {hist}.1, {hist}.2) / {n} / 1e6)"


# -- function mailboxes: predicates on one case ---------------------------------------------------

REPLIED = intervals.CASE_COUNTS["replied"]  # ended by a reply (answered), judged now
CLOSED = intervals.CASE_COUNTS["closed"]  # ended by mail.closed, without a reply
IN_TIME = intervals.IN_TIME  # lead time (business time to the reply) within the case's target
LATE = "lead_seconds > target_seconds"  # an answered case breached its target
# KKiK: replied before the end (24:00) of the first working day after the day it opened. A case
# derived before contract v2 has no deadline (NULL), and the comparison is then false.
WITHIN_WORKING_DAY = "ended_at < working_day_deadline"


def overdue(age: str) -> str:
    """An open case breached: its business age at the evaluation time (`age`) is past its target."""
    return f"{age} > target_seconds"


def within_target(answered: str = REPLIED) -> str:
    """The predicate of an answered case with lead time <= its target."""
    return f"{answered} AND {IN_TIME}"


def median_lead(answered: str = REPLIED) -> str:
    """The median lead time of the answered cases (the mean of the two middle values for an even
    count; NaN when there are none)."""
    return f"quantileExactInclusiveIf(0.5)(assumeNotNull(lead_seconds), {answered})"
