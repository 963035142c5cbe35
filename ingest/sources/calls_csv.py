"""A call-record CSV export -> one Record per data row, per a mapping file (ingest/sources/mapping.py).

Each row is one call. Its events (spec/events.md), all with the call id made of the mapping's
`id` columns:

- `call.offered` at `lifecycle.offered` (entrance, and the caller when known);
- answered: `call.queued`, `call.answered` (queue, agent), `call.ended`; a call answered with no
  queued time is answered `direct` (not queued: no contact) or `queued_at_answer` (queued at
  the answer: a contact with wait 0), as the mapping says;
- abandoned / callback / exited: `call.queued`, then `call.abandoned`, `call.callback_requested`
  or `call.exited` at `lifecycle.left`, `call.ended`;
- any outcome without a queued time, except answered: `call.offered` and `call.ended` only (hung
  up in the menu: never offered to a queue).

A row the mapping's rules or outcome values reject or ignore, and a row that cannot be read (a
wrong number of columns, a time not in the format, bytes not in the file's encoding, an
outcome the mapping does not name) is a Record with the reason, never an exception. A header
that lacks a column the mapping names is an error for the whole file (MappingError), raised
before the first record. The file is read line by line: memory stays flat whatever its size.

Times without an offset are local times of the mapping's zone; a clock time that occurs twice
(the autumn DST change) is taken as the first, one that does not exist (spring) as zoneinfo
places it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from ingest.boundary import shown
from ingest.sources.mapping import After, Mapping, MappingError, Step, Verdict, delimiter_of, load_mapping
from ingest.sources.records import Record, raw_event, stable_id

__all__ = ["load_mapping", "read_calls_csv"]

_DAY = 86400
_EXIT_PREFIX = "exited:"


class _RowError(Exception):
    """Why a row cannot be read: becomes a rejected Record."""


def read_calls_csv(path: Path, mapping: Mapping) -> Iterator[Record]:
    """The file's rows as Records ("name:line" origins), in file order."""
    with path.open("r", encoding=mapping.csv.encoding, errors="surrogateescape", newline="") as f:
        yield from read_rows(f, mapping, path.name)


def read_rows(f: Iterable[str], mapping: Mapping, name: str) -> Iterator[Record]:
    """The same from an open text stream (lines with their line ends, as `open(newline="")` gives)."""
    lines = _Lines(iter(f))
    for _ in range(mapping.csv.skip_lines):
        if lines.take() is None:
            return
    rows = csv.reader(lines, delimiter=delimiter_of(mapping.csv), strict=False)
    if mapping.csv.header:
        try:
            header = next(rows, None)
        except csv.Error as exc:
            raise MappingError(f"{name}:{lines.count}: the header row cannot be read ({exc})") from None
        if header is None:
            return
        columns = [c.strip() for c in header]
        lines.taken.clear()
    else:
        columns = list(mapping.csv.columns)
    reader = _RowReader(mapping, columns, name)
    while True:
        start = lines.count + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(f"{name}:{start}", rejected=f"not a CSV row ({exc})", text=lines.text(mapping))
            continue
        origin = f"{name}:{start}"
        try:
            record = reader.record(row, origin)
        except Exception as exc:  # a case nobody foresaw: still one record with a reason
            record = Record(origin, rejected=f"cannot be read ({type(exc).__name__})")
        if record.rejected is not None:
            record = Record(origin, rejected=record.rejected, text=lines.text(mapping))
        else:
            lines.taken.clear()
        yield record


class _Lines:
    """The file's lines for the csv reader, counted, with the current row's lines kept (for a
    rejected row's text)."""

    def __init__(self, it: Iterator[str]) -> None:
        self._it = it
        self.count = 0
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self.count += 1
        self.taken.append(line)
        return line

    def take(self) -> str | None:
        line = next(self, None)
        self.taken.clear()
        return line

    def text(self, mapping: Mapping) -> str:
        """The row as read, bytes the encoding could not read shown as \\x escapes."""
        raw = "".join(self.taken).rstrip("\r\n")
        self.taken.clear()
        enc = mapping.csv.encoding
        try:
            return raw.encode(enc, "surrogateescape").decode(enc, "backslashreplace")
        except (UnicodeError, LookupError):
            return raw.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_clean(text: str) -> bool:
    """No byte the encoding could not decode (surrogateescape puts them in U+DC80..U+DCFF)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _RowReader:
    """The mapping applied to one file's rows (its header fixed)."""

    def __init__(self, m: Mapping, columns: list[str], name: str) -> None:
        self.m = m
        self.width = len(columns)
        index: dict[str, int] = {}
        for i, c in enumerate(columns):
            index.setdefault(c, i)
        missing = [c for c in m.columns_used() if c not in index]
        if missing:
            names = ", ".join(f"'{c}'" for c in missing)
            raise MappingError(f"{name}: the header has no column {names} (named by the mapping)")
        self.index = index
        self.zone = m.zone
        self.never = frozenset(m.times.never)
        self.outcomes = m.outcome.values
        self.date_of: Callable[[str], date] = lru_cache(maxsize=4096)(self._date)
        self.clock_of: Callable[[str], timedelta] = lru_cache(maxsize=1 << 17)(self._clock)
        self.stamp_of: Callable[[str], datetime] = lru_cache(maxsize=1 << 17)(self._stamp)

    # -- values -------------------------------------------------------------------------------

    def _date(self, text: str) -> date:
        assert self.m.date is not None
        return datetime.strptime(text, self.m.date.format).date()

    def _clock(self, text: str) -> timedelta:
        t = datetime.strptime(text, self.m.times.format)
        return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)

    def _stamp(self, text: str) -> datetime:
        fmt = self.m.times.format
        t = datetime.fromisoformat(text) if fmt == "iso" else datetime.strptime(text, fmt)
        return t.replace(tzinfo=self.zone) if t.tzinfo is None else t

    # -- one row ------------------------------------------------------------------------------

    def record(self, row: list[str], origin: str) -> Record:
        if not row:
            return Record(origin, ignored="an empty line")
        if len(row) != self.width:
            return Record(origin, rejected=f"{len(row)} columns where the header has {self.width}")
        if not all(_is_clean(v) for v in row):
            return Record(origin, rejected=f"bytes that are not {self.m.csv.encoding}")
        get = _Getter(row, self.index)
        for rule in self.m.rules:
            if get(rule.column) in rule.values:
                return Record(origin, rejected=rule.reject, ignored=rule.ignore)
        column = self.m.outcome.column
        value = get(column)
        outcome = self.outcomes.get(value)
        if outcome is None:
            return Record(origin, rejected=f"{column}: a value the mapping does not name ({shown(value)})")
        if isinstance(outcome, Verdict):
            return Record(origin, rejected=outcome.reject, ignored=outcome.ignore)
        try:
            return Record(origin, events=self._events(get, outcome))
        except _RowError as exc:
            return Record(origin, rejected=str(exc))

    def _events(self, get: _Getter, outcome: str) -> tuple[dict[str, Any], ...]:
        m = self.m
        parts = []
        for c in m.id_columns:
            v = get(c)
            if not v:
                raise _RowError(f"id: the column '{c}' is empty")
            parts.append(v)
        call_id = ":".join(parts)
        times = _Times(self, get)
        offered = times.of("offered")
        if offered is None:
            raise _RowError(f"lifecycle.offered: no time ({', '.join(_columns(m.lifecycle.offered))} empty)")
        queued = times.of("queued")
        ended = times.of("ended")

        def event(kind: str, t: datetime, **data: Any) -> dict[str, Any]:
            return raw_event(f"call.{kind}", stable_id(call_id, kind), m.source, t, {"call_id": call_id, **data})

        out = [event("offered", offered, **self._offered_data(get))]
        if outcome == "answered":
            answered = times.of("answered")
            if answered is None:
                raise _RowError("lifecycle.answered: no time for an answered call")
            if queued is None and m.lifecycle.answered_without_queue == "queued_at_answer":
                queued = answered
            queue = self._queue(get)
            if queued is not None:
                out.append(event("queued", queued, queue=queue))
            out.append(event("answered", answered, queue=queue, agent=self._agent(get)))
        elif queued is not None:
            left = times.of("left")
            if left is None:
                raise _RowError(f"lifecycle.left: no time for a call that left the queue ({outcome})")
            queue = self._queue(get)
            out.append(event("queued", queued, queue=queue))
            if outcome.startswith(_EXIT_PREFIX):
                out.append(event("exited", left, queue=queue, reason=outcome.removeprefix(_EXIT_PREFIX)))
            else:
                out.append(event("abandoned" if outcome == "abandoned" else "callback_requested", left, queue=queue))
        if ended is not None:
            out.append(event("ended", ended))
        return tuple(out)

    def _offered_data(self, get: _Getter) -> dict[str, Any]:
        spec = self.m.entrance
        entrance = (get(spec.column) if spec.column else "") or spec.default
        if not entrance:
            raise _RowError(f"entrance: the column '{spec.column}' is empty and there is no default")
        data: dict[str, Any] = {"entrance": entrance}
        caller = self.m.caller
        if caller is not None:
            value = get(caller.column)
            if value and value not in caller.none:
                data["caller"] = value
        return data

    def _queue(self, get: _Getter) -> str:
        spec = self.m.queue
        value = (get(spec.column) if spec.column else "") or spec.default
        if not value:
            raise _RowError(f"queue: the column '{spec.column}' is empty and there is no default")
        return spec.map.get(value, value)

    def _agent(self, get: _Getter) -> str:
        spec = self.m.agent
        if spec is None:
            return "unknown"
        value = get(spec.column)
        return spec.missing_as if not value or value in spec.none else value


class _Getter:
    """A row's value by column name, stripped."""

    __slots__ = ("index", "row")

    def __init__(self, row: list[str], index: dict[str, int]) -> None:
        self.row = row
        self.index = index

    def __call__(self, column: str) -> str:
        return self.row[self.index[column]].strip()


def _columns(step: Step) -> list[str]:
    return [step] if isinstance(step, str) else [step.seconds] if isinstance(step, After) else list(step)


class _Times:
    """The lifecycle's times of one row, each read once, as aware datetimes."""

    def __init__(self, reader: _RowReader, get: _Getter) -> None:
        self.r = reader
        self.get = get
        self.known: dict[str, datetime | None] = {}
        date_spec = reader.m.date
        self.day: date | None = None
        if date_spec is not None:
            text = get(date_spec.column)
            try:
                self.day = reader.date_of(text)
            except ValueError:
                raise _RowError(f"{date_spec.column}: not a date in the format {date_spec.format}") from None
        self.anchor: timedelta | None = None  # the offered clock time, with a date column

    def of(self, name: str) -> datetime | None:
        if name not in self.known:
            step = getattr(self.r.m.lifecycle, name)
            self.known[name] = None if step is None else self._step(name, step)
        return self.known[name]

    def _step(self, name: str, step: Step) -> datetime | None:
        if isinstance(step, After):
            base = self.of(step.after)
            text = self.get(step.seconds)
            if base is None or not text:
                return None
            # A duration is elapsed time: added to the instant, not to the local clock reading
            # (which would gain or lose an hour across a DST change).
            return base.astimezone(UTC) + timedelta(seconds=_seconds(step.seconds, text))
        for column in [step] if isinstance(step, str) else step:
            text = self.get(column)
            if text and text not in self.r.never:
                return self._time(name, column, text)
        return None

    def _time(self, name: str, column: str, text: str) -> datetime:
        fmt = self.r.m.times.format
        try:
            if self.day is None:
                return self.r.stamp_of(text)
            clock = self.r.clock_of(text)
        except ValueError:
            raise _RowError(f"{column}: not a time in the format {fmt}") from None
        spec = self.r.m.date
        assert spec is not None
        if name == "offered":
            self.anchor = clock
        else:
            if self.anchor is None:
                self.of("offered")
            anchor = self.anchor if self.anchor is not None else timedelta(0)
            delta = (clock - anchor).total_seconds()
            if spec.rollover:
                # within the 24 h from the offered time, less the clocks' skew
                delta %= _DAY
                if delta >= _DAY - spec.skew_seconds:  # at most skew_seconds earlier: the same day
                    delta -= _DAY
            clock = anchor + timedelta(seconds=delta)
        return datetime.combine(self.day, datetime.min.time()).replace(tzinfo=self.r.zone) + clock


def _seconds(column: str, text: str) -> float:
    """A duration: seconds (`75`, `75.5`) or h:mm:ss / mm:ss (`0:01:15`)."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) > 3 or any(p < 0 for p in parts):
                raise ValueError
            seconds = 0.0
            for p in parts:
                seconds = seconds * 60 + p
        else:
            seconds = float(text)
    except ValueError:
        raise _RowError(f"{column}: not a duration (seconds or h:mm:ss)") from None
    if not (0 <= seconds < 10 * _DAY):  # also refuses nan and inf
        raise _RowError(f"{column}: not a duration (seconds or h:mm:ss)")
    return seconds
