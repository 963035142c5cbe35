"""Which settings of the agreements differ from those that derived the facts of some months.

Every contact and case is stored with the fingerprint of its derivation inputs
(stream_jobs/core/provenance.py), and each set of inputs once by fingerprint. For each process
and month this finds the fingerprints of its facts and compares their inputs with the current
agreements', setting by setting. A calendar counts as changed only where its opening hours differ
on a day that matters to the month: for a queue the month's days (and one on each side, where a
recovered abandon's answer may lie); for a mailbox every day from 1990 (EARLIEST_TIME) to the month's end, since
a case's opening is stored as a business clock counted from 2000, and back to 1990 (an open case's
age is the clock at the evaluation time minus it). A reduced day added for a later year changes nothing before it.
"""

from __future__ import annotations

import bisect
import json
from datetime import date, timedelta
from typing import Any

from dashboards import kpi_sql
from schemas.agreements import Agreements
from schemas.calendar import Calendar, local_month_bounds, month_days
from schemas.events import EARLIEST_TIME
from stream_jobs.core.provenance import calendar_of, derivation_inputs, fingerprint
from stream_jobs.warehouse import Warehouse, ms

# Settings that change every measure of a process: another version of the derivation rules,
# another time zone (every period moves), or inputs never recorded.
EVERYTHING = ("rules", "timezone", "agreements")
# The plain settings compared by value, per channel (the calendar is compared day by day).
SETTINGS = {
    "queues": ("service_level_seconds", "short_abandon_seconds", "extra_service_levels"),
    "mailboxes": ("response_target_seconds", "priority_response_target_seconds"),
}

# Per process and local month, the fingerprints its facts were derived with, from the interval
# aggregates (each interval keeps the fingerprints of its facts, stream_jobs/intervals.py).
FINGERPRINTS_SQL = f"""
SELECT 'queues' AS channel, queue AS process, formatDateTime(interval_start, '%Y-%m', {{tz:String}}) AS month,
       arrayJoin(derived_with) AS fingerprint
FROM queue_intervals FINAL
WHERE {kpi_sql.in_period("interval_start")}
GROUP BY process, month, fingerprint
UNION ALL
SELECT 'mailboxes' AS channel, mailbox AS process, formatDateTime(interval_start, '%Y-%m', {{tz:String}}) AS month,
       arrayJoin(derived_with) AS fingerprint
FROM mailbox_intervals FINAL
WHERE {kpi_sql.in_period("interval_start")}
GROUP BY process, month, fingerprint
"""


def changed_settings(
    warehouse: Warehouse, agreements: Agreements, months: list[str]
) -> dict[tuple[str, str, str], set[str]]:
    """(channel, process, setting) -> the months whose facts of that process were derived with
    another value of the setting. Facts derived before fingerprints were recorded are not judged."""
    inputs = derivation_inputs(agreements)
    current = fingerprint(inputs)
    start, _ = local_month_bounds(months[0], agreements.timezone)
    _, end = local_month_bounds(months[-1], agreements.timezone)
    params = {"start": ms(start), "end": ms(end), "tz": str(agreements.timezone)}
    rows = [r for r in warehouse.query(FINGERPRINTS_SQL, params) if r[3] not in (current, "")]
    recorded = warehouse.agreements_inputs({r[3] for r in rows})
    days = _DifferingDays(agreements, date.fromisoformat(f"{months[-1]}-01") + timedelta(days=32))
    out: dict[tuple[str, str, str], set[str]] = {}
    for channel, process, month, other in rows:
        if process in inputs[channel]:
            for setting in _differing(recorded.get(other), inputs, channel, process, month, days):
                out.setdefault((channel, process, setting), set()).add(month)
    return out


def _differing(
    old: dict[str, Any] | None, new: dict[str, Any], channel: str, process: str, month: str, days: _DifferingDays
) -> list[str]:
    """The settings of one process whose old and new values give the month's facts other values."""
    if old is None:
        return ["agreements"]
    for setting in ("rules", "timezone"):
        if old.get(setting) != new[setting]:
            return [setting]
    before = old.get(channel, {}).get(process)
    if before is None:  # the process was not in the old agreements: its events were refused then
        return []
    now = new[channel][process]
    changed = [s for s in SETTINGS[channel] if before.get(s) != now[s]]
    first, last = month_days(month)
    if channel == "queues":
        window = (first - timedelta(days=1), last + timedelta(days=1))
    else:
        window = (EARLIEST_TIME.date(), last)
    if days.differ(before["calendar"], now["calendar"], *window):
        changed.insert(0, "calendar")
    return changed


class _DifferingDays:
    """The days on which two calendars open differently, found once per pair of calendars (every
    day from EARLIEST_TIME to `until`, past the last month judged)."""

    def __init__(self, agreements: Agreements, until: date) -> None:
        self.tz = agreements.timezone
        self.until = until
        self.found: dict[tuple[str, str], list[date]] = {}

    def differ(self, old: dict[str, Any], new: dict[str, Any], first: date, last: date) -> bool:
        key = (json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True))
        if key not in self.found:
            self.found[key] = (
                [] if key[0] == key[1] else self._scan(calendar_of(old, self.tz), calendar_of(new, self.tz))
            )
        found = self.found[key]
        at = bisect.bisect_left(found, first)
        return at < len(found) and found[at] <= last

    def _scan(self, old: Calendar, new: Calendar) -> list[date]:
        day, out = EARLIEST_TIME.date(), []
        while day <= self.until:
            if old.intervals_on(day) != new.intervals_on(day):
                out.append(day)
            day += timedelta(days=1)
        return out
