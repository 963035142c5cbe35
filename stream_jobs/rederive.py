"""Rederive: fold the events stored in the warehouse again with the Deriver's agreements (after
a target or a calendar changed), without the original files.

Which calls and threads: with a month, each with a stored event from the local month's start to
MARGIN after its end; without one, each with any stored event. A contact belongs to the month of
its `call.queued` and a case to that of its `mail.received` (spec/metrics.md), so every entity
with a fact in the month has an event in it. The margin takes in what the month's report reads
besides: the answers that recover its abandons, up to 24 h after an abandon that may itself fall
after the month's end. An entity of another month met this way is refolded too: harmless, only
work.

The keys are read in chunks, ordered by key, each chunk the next after the last key, so neither
Python nor one query holds them all; `Deriver.refold` derives each chunk and stores its facts (no
event). Running it again derives the same facts again. It takes the warehouse and the Deriver it
is given, the command's or a running worker's, and reads no settings.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from schemas.calendar import local_month_bounds
from schemas.events import event_key
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import MAX_KEYS_LITERAL_BYTES, Warehouse, key_literals, ms

MARGIN = timedelta(days=2)
COMMAND = "rederive"  # the loads' command of a rederive (Warehouse.start_load)

_WINDOW = (
    " AND time >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')"
    " AND time < fromUnixTimestamp64Milli({end:Int64}, 'UTC')"
)
# The next keys after {after} of one kind with an event in the window ({window}: _WINDOW or none).
KEYS_SQL = """
SELECT DISTINCT key FROM events
WHERE kind = {{kind:String}} AND key > {{after:String}}{window}
ORDER BY key
LIMIT {{limit:UInt32}}
"""
COUNT_SQL = "SELECT uniq(key) FROM events WHERE kind = {{kind:String}}{window}"  # about how many: for progress
# What the refolded entities hold now, per local month: {keys} is a JSON array literal, {tz} a string literal.
CONTACT_MONTHS_SQL = """
SELECT formatDateTime(first_queued_at, '%Y-%m', {tz}) AS month, count() FROM call_contacts FINAL
WHERE call_id IN JSONExtract({keys}, 'Array(String)') GROUP BY month
"""
CASE_MONTHS_SQL = """
SELECT formatDateTime(opened_at, '%Y-%m', {tz}) AS month, count() FROM mail_cases FINAL
WHERE concat(mailbox, '/', thread_id) IN JSONExtract({keys}, 'Array(String)') GROUP BY month
"""


@dataclass
class RederiveResult:
    calls: int = 0  # calls derived again
    threads: int = 0  # mail threads derived again
    contacts: int = 0  # the contacts those calls hold now
    cases: int = 0  # the cases those threads hold now
    months: list[str] = field(default_factory=list)  # the local months of those contacts and cases
    failed: int = 0  # calls and threads that could not be derived: they keep the facts they had
    first_failure: str = ""  # the first of those, its key and the reason


def load_files(month: str | None) -> list[str]:
    """What a rederive records as its load's files: a later finished rederive of the same month (or
    of everything, for one of everything) marks an interrupted one gone over again, as a `process`
    of the same files does (Warehouse.incomplete_loads)."""
    return [f"{COMMAND} --month {month}" if month else COMMAND]


def rederive(
    warehouse: Warehouse,
    deriver: Deriver,
    *,
    month: str | None,
    timezone: str,
    chunk: int = 5000,
    on_progress: Callable[[int, int], None] | None = None,
) -> RederiveResult:
    """`rederive_steps` run to the end; `on_progress` gets (entities done, about how many in all)."""
    steps = rederive_steps(warehouse, deriver, month=month, timezone=timezone, chunk=chunk)
    while True:
        try:
            step = next(steps)
        except StopIteration as finished:
            return RederiveResult(**finished.value)
        if on_progress is not None:
            on_progress(step["done"], step["total"])


def rederive_steps(
    warehouse: Warehouse, deriver: Deriver, *, month: str | None, timezone: str, chunk: int = 5000
) -> Generator[dict[str, Any], None, dict[str, Any]]:
    """Refold the calls and threads of a local month (`YYYY-MM` in `timezone`, the agreements'),
    or all, one chunk a step, recorded as a load (`COMMAND`) that finishes when all is stored.

    Yields {"done": entities done, "total": about how many in all} after counting and after each
    chunk, so a running worker can ingest between steps; returns RederiveResult's fields (JSON)."""
    window: dict[str, Any] = {}
    if month is not None:
        start, end = local_month_bounds(month, ZoneInfo(timezone))
        window = {"start": ms(start), "end": ms(end + MARGIN)}
    total = sum(count_keys(warehouse, kind, window) for kind in ("call", "mail"))
    load = warehouse.start_load(load_files(month), command=COMMAND)
    result, months, done = RederiveResult(), set[str](), 0
    yield {"done": done, "total": total}
    for kind in ("call", "mail"):
        for keys in entity_keys(warehouse, kind, window, chunk):
            applied = deriver.refold(keys, ()) if kind == "call" else deriver.refold((), keys)
            failed = {event_key(ev): reason for ev, reason in applied.failed}
            if failed and not result.failed:
                key, reason = next(iter(failed.items()))
                result.first_failure = f"{key}: {reason}"
            result.failed += len(failed)
            held = held_per_month(warehouse, kind, keys, timezone)
            months.update(held)
            if kind == "call":
                result.calls += len(keys) - len(failed)
                result.contacts += sum(held.values())
            else:
                result.threads += len(keys) - len(failed)
                result.cases += sum(held.values())
            done += len(keys)
            yield {"done": done, "total": max(total, done)}
    warehouse.finish_load(load)  # flushes first: only once every fact is stored
    result.months = sorted(months)
    return asdict(result)


def entity_keys(warehouse: Warehouse, kind: str, window: dict[str, Any], chunk: int) -> Iterator[list[str]]:
    """The keys of `kind` ("call", "mail") with an event in the window ({} for all), in chunks of
    at most `chunk`, in key order."""
    sql = KEYS_SQL.format(window=_WINDOW if window else "")
    after = ""  # ids are never empty (schemas/events.py)
    while True:
        keys = [str(k) for (k,) in warehouse.query(sql, {"kind": kind, "after": after, "limit": chunk} | window)]
        if not keys:
            return
        yield keys
        after = keys[-1]


def count_keys(warehouse: Warehouse, kind: str, window: dict[str, Any]) -> int:
    """About how many keys `entity_keys` gives (for a progress bar)."""
    rows = warehouse.query(COUNT_SQL.format(window=_WINDOW if window else ""), {"kind": kind} | window)
    return int(rows[0][0])


def held_per_month(warehouse: Warehouse, kind: str, keys: Sequence[str], timezone: str) -> dict[str, int]:
    """Local month -> how many contacts (`kind` "call") or cases ("mail") of the keys it holds."""
    sql = CONTACT_MONTHS_SQL if kind == "call" else CASE_MONTHS_SQL
    out: dict[str, int] = {}
    tz = "'" + timezone.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for literal in key_literals(keys, MAX_KEYS_LITERAL_BYTES):  # no query past max_query_size
        for month, count in warehouse.query(sql.format(tz=tz, keys=literal)):
            out[month] = out.get(month, 0) + int(count)
    return out
