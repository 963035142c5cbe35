"""The mapping file of `import calls-csv`: which columns of a call-record CSV export give the
canonical call lifecycle (spec/events.md). Its single job is to read and validate the file;
ingest/sources/calls_csv.py applies it. Unknown keys and invalid values are errors naming the
key's path (`lifecycle.queued: ...`), raised as MappingError (an InputError).

Every key (examples: ingest/sources/mappings/*.yaml):

    source: technion-bank         # the events' `source` (letters, digits, . _ / -; at most 64)
    timezone: Asia/Jerusalem      # zone of times written without an offset
    csv:                          # the file's dialect (all optional)
      delimiter: "\\t"            # one character; "\\t" or "tab" for tab, ";" for Excel's Swedish CSV
      encoding: utf-8             # any Python codec: utf-8-sig (a BOM), cp1252, latin-1, ...
      header: true                # the first row (after skip_lines) names the columns
      columns: [a, b, c]          # the column names when header is false (and only then)
      skip_lines: 0               # lines before the header (a report title), not data
    id: [date, "vru+line", call_id]   # the call id: these columns' values joined with ":"
    date:                         # optional: a date column, when time columns hold clock times only
      column: date
      format: "%y%m%d"            # strptime format
      rollover: true              # a clock time is placed in the 24 h from the offered time:
                                  # earlier than it on the clock = the next day (past midnight)
      skew_seconds: 3600          # ...except a time at most this much earlier, which is taken
                                  # as a slightly earlier time of the same call (clocks of the
                                  # switch's parts disagree by seconds); 0 by default
    times:
      format: "%H:%M:%S"          # strptime (%H takes 7:02:47), or "iso"; with no `date`
                                  # section, the format must hold the date (or be "iso")
      never: ["0:00:00"]          # values meaning "did not happen" (quote them: YAML reads
                                  # 7:02:47 as a number)
    lifecycle:                    # when each step happened; each is a column, a list of
                                  # columns (the first set one wins), or a duration after an
                                  # earlier step: {after: queued, seconds: wait_s}
                                  # (seconds as a number or h:mm:ss)
      offered: vru_entry          # required: the call reached the switch
      queued: q_start             # entered the queue (missing/never = never queued)
      answered: [q_exit, vru_exit]
      left: q_exit                # left the queue unanswered (abandoned / callback / exited)
      ended: [ser_exit, q_exit, vru_exit]   # optional: no call.ended without it
      answered_without_queue: direct   # an answered call with no queued time: `direct` (no
                                  # call.queued: no contact, spec/metrics.md) or
                                  # `queued_at_answer` (queued and answered at the answer: wait 0)
    queue:
      column: type                # optional when `default` is set
      map: {PS: ps}               # column value -> queue id of the agreements
      default: ps                 # the queue when the column is absent or empty; a value not
                                  # in `map` is sent as it is (the boundary rejects an unknown one)
    outcome:
      column: outcome
      values:                     # each value -> answered, abandoned, callback,
        AGENT: answered           # exited:timeout, exited:exit_key, exited:queue_full,
        HANG: abandoned           # exited:no_agents, or {reject: reason} / {ignore: reason}
        PHANTOM: {reject: "PHANTOM: ..."}
                                  # a call never queued gets offered + ended only, whatever
                                  # its outcome (answered: see answered_without_queue)
    agent:                        # optional
      column: server
      none: [NO_SERVER]           # values meaning "no agent recorded"
      missing_as: unknown         # the agent id sent for those (call.answered needs one)
    caller:                       # optional: the caller's number or customer id, raw (the
      column: customer_id         # ingest boundary hashes it)
      none: ["0"]                 # values meaning "caller unknown"
    entrance:                     # the dialled number or entrance name of call.offered
      column: "vru+line"          # a column, a default, or both
      default: bank
    rules:                        # optional: rows that are no call, checked first
      - column: outcome
        values: [PHANTOM]
        reject: "PHANTOM: ..."    # or `ignore: reason` (one of the two)

Reasons are counted and grouped: write a short, stable text without values that could be
personal data.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from schemas.errors import InputError
from schemas.events import SOURCE_PATTERN


class MappingError(InputError):
    """The mapping file is missing or invalid; the message names the key's path."""


STEPS = ("offered", "queued", "answered", "left", "ended")
Outcome = Literal[
    "answered",
    "abandoned",
    "callback",
    "exited:timeout",
    "exited:exit_key",
    "exited:queue_full",
    "exited:no_agents",
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
# The step whose time each outcome needs (besides `offered`).
NEEDS = {o: ("answered" if o == "answered" else "left") for o in OUTCOMES}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CsvDialect(_Strict):
    delimiter: str = ","
    encoding: str = "utf-8"
    header: bool = True
    columns: list[str] = []
    skip_lines: int = 0


class DateColumn(_Strict):
    column: str
    format: str
    rollover: bool = True
    skew_seconds: int = 0


class Times(_Strict):
    format: str
    never: list[str] = []


class After(_Strict):
    """A step's time as a duration after an earlier step's time."""

    after: Literal["offered", "queued", "answered", "left"]
    seconds: str  # the column holding the duration


Step = str | list[str] | After


class Lifecycle(_Strict):
    offered: Step
    queued: Step | None = None
    answered: Step | None = None
    left: Step | None = None
    ended: Step | None = None
    answered_without_queue: Literal["direct", "queued_at_answer"] = "direct"


class QueueColumn(_Strict):
    column: str | None = None
    map: dict[str, str] = {}
    default: str | None = None


class Verdict(_Strict):
    """A row that stands for no call: rejected (should be one, cannot be) or ignored (by design)."""

    reject: str | None = None
    ignore: str | None = None


class OutcomeColumn(_Strict):
    column: str
    values: dict[str, Outcome | Verdict]


class AgentColumn(_Strict):
    column: str
    none: list[str] = []
    missing_as: str = "unknown"


class CallerColumn(_Strict):
    column: str
    none: list[str] = []


class EntranceColumn(_Strict):
    column: str | None = None
    default: str | None = None


class Rule(_Strict):
    column: str
    values: list[str]
    reject: str | None = None
    ignore: str | None = None


class Mapping(_Strict):
    source: str
    timezone: str
    id: str | list[str]
    times: Times
    lifecycle: Lifecycle
    queue: QueueColumn
    outcome: OutcomeColumn
    entrance: EntranceColumn
    csv: CsvDialect = msgspec.field(default_factory=CsvDialect)
    date: DateColumn | None = None
    agent: AgentColumn | None = None
    caller: CallerColumn | None = None
    rules: list[Rule] = []

    @property
    def id_columns(self) -> tuple[str, ...]:
        return (self.id,) if isinstance(self.id, str) else tuple(self.id)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def columns_used(self) -> dict[str, str]:
        """Every column the mapping reads -> the key path naming it first (for a header check)."""
        used: dict[str, str] = {}
        for i, c in enumerate(self.id_columns):
            used.setdefault(c, f"id[{i}]")
        if self.date:
            used.setdefault(self.date.column, "date.column")
        for name in STEPS:
            step = getattr(self.lifecycle, name)
            for c in step_columns(step):
                used.setdefault(c, f"lifecycle.{name}")
        for key in ("queue", "outcome", "agent", "caller", "entrance"):
            section = getattr(self, key)
            if section is not None and section.column is not None:
                used.setdefault(section.column, f"{key}.column")
        for i, r in enumerate(self.rules):
            used.setdefault(r.column, f"rules[{i}].column")
        return used


def step_columns(step: Step | None) -> tuple[str, ...]:
    if step is None:
        return ()
    if isinstance(step, After):
        return (step.seconds,)
    return (step,) if isinstance(step, str) else tuple(step)


# -- loading ------------------------------------------------------------------------------------


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise MappingError(f"{path}: cannot read mapping file ({why})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MappingError(f"{path}: not valid YAML ({getattr(exc, 'problem', None) or 'error'}{where})") from None
    try:
        return parse_mapping(raw)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None


def parse_mapping(raw: Any) -> Mapping:
    if not isinstance(raw, dict):
        raise MappingError("the mapping file must be a mapping of keys (source, timezone, id, times, lifecycle, ...)")
    _check_keys(raw, "")
    try:
        m = msgspec.convert(raw, Mapping)
    except msgspec.ValidationError as exc:
        raise MappingError(_path_message(str(exc), raw)) from None
    _check(m)
    return m


def _check_keys(node: Any, path: str) -> None:
    """YAML reads `1:` or `7:02:47:` as a number; every key of the file is text."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                raise MappingError(f"{path or 'the file'}: the key {k!r} must be text (write it in quotes: '{k}')")
            _check_keys(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_keys(v, f"{path}[{i}]")


def _path_message(error: str, raw: dict[str, Any]) -> str:
    """`Expected `str`, got `int` - at `$.times.never[0]`` -> `times.never[0]: expected text, ...`.
    msgspec writes a key inside a map as `[...]`; the offending key is found and named."""
    message, _, where = error.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    if "[...]" in path:
        path = _name_map_key(path, raw)
    message = message.replace("Object contains unknown field", "unknown key")
    message = message.replace("Object missing required field", "missing required key")
    message = message.replace("`str`", "text").replace("`int`", "a number").replace("`float`", "a number")
    if "got a number" in message and "text" in message:
        message += " (write it in quotes: YAML reads 7:02:47 or 0123 as a number)"
    if path.startswith("outcome.values.") and "invalid enum value" in message.lower():
        message += f" (use one of {', '.join(OUTCOMES)}, or {{reject: reason}} / {{ignore: reason}})"
    message = message[:1].lower() + message[1:]
    return f"{path}: {message}" if path else message


def _name_map_key(path: str, raw: dict[str, Any]) -> str:
    head, _, tail = path.partition("[...]")
    node: Any = raw
    for part in head.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        for key, value in node.items():
            model = {"outcome.values": Outcome | Verdict}.get(head, str)
            try:
                msgspec.convert(value, model)
            except msgspec.ValidationError:
                return f"{head}.{key}{tail}"
    return path.replace("[...]", ".<key>")


_SOURCE = re.compile(SOURCE_PATTERN).fullmatch
_DATE_DIRECTIVES = ("%d", "%j", "%Y", "%y", "%m", "%b", "%B", "%c", "%x")


def _check(m: Mapping) -> None:
    if not _SOURCE(m.source):
        raise MappingError("source: must be a short name (letters, digits, '.', '_', '/', '-'; at most 64)")
    try:
        ZoneInfo(m.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"timezone: unknown time zone '{m.timezone}'") from None
    _check_csv(m.csv)
    if not m.id_columns or any(not c for c in m.id_columns):
        raise MappingError("id: name at least one column, none empty")
    _check_times(m)
    _check_lifecycle(m)
    if m.queue.column is None and m.queue.default is None:
        raise MappingError("queue: give a column, a default, or both")
    if m.entrance.column is None and m.entrance.default is None:
        raise MappingError("entrance: give a column, a default, or both")
    if m.agent is not None and not m.agent.missing_as:
        raise MappingError("agent.missing_as: must not be empty")
    if not m.outcome.values:
        raise MappingError("outcome.values: name at least one value")
    for value, meaning in m.outcome.values.items():
        if isinstance(meaning, Verdict):
            _check_verdict(f"outcome.values.{value}", meaning.reject, meaning.ignore)
    for i, rule in enumerate(m.rules):
        _check_verdict(f"rules[{i}]", rule.reject, rule.ignore)
        if not rule.values:
            raise MappingError(f"rules[{i}].values: name at least one value")
    if not m.csv.header:
        known = set(m.csv.columns)
        for column, path in m.columns_used().items():
            if column not in known:
                raise MappingError(f"{path}: column '{column}' is not in csv.columns")


def _check_csv(c: CsvDialect) -> None:
    if c.delimiter not in ("tab", "\\t") and len(c.delimiter) != 1:
        raise MappingError(f"csv.delimiter: one character (or tab), got '{c.delimiter}'")
    if c.delimiter in ('"', "\n", "\r"):
        raise MappingError("csv.delimiter: cannot be a quote or a line break")
    try:
        codec = codecs.lookup(c.encoding)
    except LookupError:
        raise MappingError(f"csv.encoding: unknown encoding '{c.encoding}'") from None
    if not getattr(codec, "_is_text_encoding", True):  # rot13, bz2_codec: codecs, but not of text files
        raise MappingError(f"csv.encoding: '{c.encoding}' is not a text encoding")
    if c.skip_lines < 0:
        raise MappingError("csv.skip_lines: must not be negative")
    if c.header and c.columns:
        raise MappingError("csv.columns: only for a file without a header row (header: false)")
    if not c.header and not c.columns:
        raise MappingError("csv.columns: a file without a header row needs its column names")
    if len(set(c.columns)) != len(c.columns):
        raise MappingError("csv.columns: a name is given twice")


def _check_times(m: Mapping) -> None:
    fmt = m.times.format
    has_date = fmt == "iso" or any(d in fmt for d in _DATE_DIRECTIVES)
    if m.date is not None:
        if has_date:
            raise MappingError("times.format: holds a date, but the date comes from date.column (remove one)")
        if m.date.skew_seconds < 0 or m.date.skew_seconds >= 43200:
            raise MappingError("date.skew_seconds: must be from 0 to under 12 hours (43200)")
    elif not has_date:
        raise MappingError("times.format: holds no date; add a `date` section or a date to the format (or use iso)")
    if "%" not in fmt and fmt != "iso":
        raise MappingError(f"times.format: '{fmt}' is neither a strptime format nor iso")


def _check_lifecycle(m: Mapping) -> None:
    lc = m.lifecycle
    for i, name in enumerate(STEPS):
        step = getattr(lc, name)
        if isinstance(step, list) and (not step or any(not c for c in step)):
            raise MappingError(f"lifecycle.{name}: name at least one column, none empty")
        if isinstance(step, str) and not step:
            raise MappingError(f"lifecycle.{name}: name a column")
        if isinstance(step, After):
            if STEPS.index(step.after) >= i:
                raise MappingError(f"lifecycle.{name}.after: must be an earlier step than {name}")
            if getattr(lc, step.after) is None:
                raise MappingError(f"lifecycle.{name}.after: the step '{step.after}' is not given")
    if isinstance(lc.offered, After):
        raise MappingError("lifecycle.offered: must be a time column (it is the call's first time)")
    for value, meaning in m.outcome.values.items():
        if isinstance(meaning, str) and getattr(lc, NEEDS[meaning]) is None:
            raise MappingError(f"outcome.values.{value}: '{meaning}' needs lifecycle.{NEEDS[meaning]}")


def _check_verdict(path: str, reject: str | None, ignore: str | None) -> None:
    if (reject is None) == (ignore is None):
        raise MappingError(f"{path}: give exactly one of reject or ignore (with a reason)")
    if not (reject or ignore or "").strip():
        raise MappingError(f"{path}: the reason must not be empty")


def delimiter_of(c: CsvDialect) -> str:
    return "\t" if c.delimiter in ("tab", "\\t") else c.delimiter
