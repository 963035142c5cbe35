"""The service-agreements file (spec/agreements.md): loading, validation, the typed result.

Every error names the key path, e.g. `queues.kundreskontra.calendar: unknown calendar 'x'`.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from schemas.calendar import NAMED_DAYS, WEEKDAYS, Calendar, DayRule, Interval
from schemas.errors import AgreementsError

DEFAULT_PRIORITY_KEYWORDS = ("anstånd", "makuler", "avbetalning")

# A queue or mailbox id is a Kafka key part (`mailbox/thread`), a Prometheus label value, a file
# name (an IMAP checkpoint) and a warehouse key: only characters safe in all of them.
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
ID_RULE = "use lower-case letters a-z, digits, '_' and '-', starting with a letter or digit, at most 64"
_ID = re.compile(ID_PATTERN)


# -- the file's shape (unknown keys are errors) -----------------------------------------------


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CalendarFile(_Strict):
    holidays: str | None = None
    closed: list[str] = []
    hours: dict[str, list[str]] = {}
    reduced: dict[str, list[str]] = {}


class QueueFile(_Strict):
    name: str
    calendar: str
    service_level_seconds: float
    service_level_target: float
    answer_rate_target: float
    short_abandon_seconds: float = 0
    extra_service_levels: list[float] = []


class MailboxFile(_Strict):
    name: str
    calendar: str
    response_target: str | int
    priority_response_target: str | int | None = None
    priority_keywords: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PRIORITY_KEYWORDS))


class AgreementsFile(_Strict):
    timezone: str
    calendars: dict[str, CalendarFile]
    queues: dict[str, QueueFile] = {}
    mailboxes: dict[str, MailboxFile] = {}


# -- the typed result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    id: str
    name: str
    calendar_id: str
    calendar: Calendar
    service_level_seconds: float
    service_level_target: float
    answer_rate_target: float
    short_abandon_seconds: float
    extra_service_levels: tuple[float, ...] = ()  # more thresholds T (s), reported beside service_level_seconds


@dataclass(frozen=True)
class Mailbox:
    id: str
    name: str
    calendar_id: str
    calendar: Calendar
    response_target_seconds: float
    priority_response_target_seconds: float
    priority_keywords: tuple[str, ...]


@dataclass(frozen=True)
class Agreements:
    timezone: ZoneInfo
    calendars: dict[str, Calendar]
    queues: dict[str, Queue]
    mailboxes: dict[str, Mailbox]
    source: str = "<memory>"

    def local(self, t: datetime) -> datetime:
        return t.astimezone(self.timezone)


def level_key(seconds: float) -> str:
    """The report key of a service-level threshold, as it is written: `20` and `20.0` -> "20",
    `7.5` -> "7.5", `600` -> "600" (never exponent notation, whatever the size)."""
    text = format(Decimal(repr(float(seconds))), "f")  # repr: the shortest text of the float
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- loading ------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int | float) -> float:
    """`90s`, `30m`, `8h`, `2d`, `1h30m`, or a plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration '{value}' (expected e.g. 90s, 30m, 8h, 2d)")
        seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration '{value}': must be positive")
    return seconds


def default_agreements_path() -> Path:
    return Path(str(resources.files("schemas") / "default_agreements.yaml"))


def load_agreements(path: str | Path | None = None) -> Agreements:
    """Read and validate an agreements file (the shipped default when path is None)."""
    path = Path(path) if path is not None else default_agreements_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgreementsError(f"{path}: cannot read agreements file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgreementsError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    try:
        return parse_agreements(raw, source=str(path))
    except AgreementsError as exc:
        raise AgreementsError(f"{path}: {exc}") from None


def parse_agreements(raw: Any, source: str = "<memory>") -> Agreements:
    if not isinstance(raw, dict):
        raise AgreementsError("the agreements file must be a mapping with timezone, calendars, queues, mailboxes")
    data = _dates_to_text(raw)
    _check_ids(data)
    try:
        spec = msgspec.convert(data, AgreementsFile)
    except msgspec.ValidationError as exc:
        raise AgreementsError(_locate(data) or _path_message(str(exc))) from None

    try:
        tz = ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AgreementsError(f"timezone: unknown time zone '{spec.timezone}'") from None

    calendars = {cid: _calendar(f"calendars.{cid}", c, tz) for cid, c in spec.calendars.items()}

    def calendar_of(path: str, cid: str) -> Calendar:
        if cid not in calendars:
            known = ", ".join(sorted(calendars)) or "none defined"
            raise AgreementsError(f"{path}.calendar: unknown calendar '{cid}' (known: {known})")
        return calendars[cid]

    queues = {}
    for qid, q in spec.queues.items():
        path = f"queues.{qid}"
        for key in ("service_level_target", "answer_rate_target"):
            if not 0 <= getattr(q, key) <= 1:
                raise AgreementsError(f"{path}.{key}: must be a fraction between 0 and 1, got {getattr(q, key)}")
        for key in ("service_level_seconds", "short_abandon_seconds"):
            if getattr(q, key) < 0:
                raise AgreementsError(f"{path}.{key}: must not be negative")
        _check_levels(f"{path}.extra_service_levels", q.extra_service_levels)
        queues[qid] = Queue(
            id=qid,
            name=q.name,
            calendar_id=q.calendar,
            calendar=calendar_of(path, q.calendar),
            service_level_seconds=q.service_level_seconds,
            service_level_target=q.service_level_target,
            answer_rate_target=q.answer_rate_target,
            short_abandon_seconds=q.short_abandon_seconds,
            extra_service_levels=tuple(q.extra_service_levels),
        )

    mailboxes = {}
    for mid, m in spec.mailboxes.items():
        path = f"mailboxes.{mid}"
        target = _duration(f"{path}.response_target", m.response_target)
        priority = m.priority_response_target
        mailboxes[mid] = Mailbox(
            id=mid,
            name=m.name,
            calendar_id=m.calendar,
            calendar=calendar_of(path, m.calendar),
            response_target_seconds=target,
            priority_response_target_seconds=(
                target if priority is None else _duration(f"{path}.priority_response_target", priority)
            ),
            priority_keywords=tuple(m.priority_keywords),
        )
    return Agreements(timezone=tz, calendars=calendars, queues=queues, mailboxes=mailboxes, source=source)


def _check_levels(path: str, levels: list[float]) -> None:
    """Extra service-level thresholds: each a positive, finite number of seconds, none twice
    (`20` and `20.0` are the same threshold, and would be the same report key)."""
    seen: set[float] = set()
    for seconds in levels:
        if not (math.isfinite(seconds) and seconds > 0):
            shown = level_key(seconds) if math.isfinite(seconds) else str(seconds)
            raise AgreementsError(f"{path}: each must be a positive, finite number of seconds, got {shown}")
        if seconds in seen:
            raise AgreementsError(f"{path}: {level_key(seconds)} is listed more than once")
        seen.add(seconds)


def _check_ids(data: dict[Any, Any]) -> None:
    for section, kind in (("queues", "queue"), ("mailboxes", "mailbox")):
        entries = data.get(section)
        for ident in entries if isinstance(entries, dict) else ():
            if not isinstance(ident, str):
                raise AgreementsError(
                    f"{section}.{ident}: invalid {kind} id {ident!r} (an id is text: write it in quotes, '{ident}')"
                )
            if not _ID.fullmatch(ident):
                raise AgreementsError(f"{section}.{ident}: invalid {kind} id '{ident}' ({ID_RULE})")


def _calendar(path: str, c: CalendarFile, tz: ZoneInfo) -> Calendar:
    if c.holidays:
        import holidays as pyholidays

        if c.holidays not in pyholidays.list_supported_countries():
            raise AgreementsError(f"{path}.holidays: unknown country code '{c.holidays}'")
    hours: dict[int, tuple[Interval, ...]] = {}
    for day, intervals in c.hours.items():
        if day not in WEEKDAYS:
            raise AgreementsError(f"{path}.hours.{day}: unknown weekday (use {', '.join(WEEKDAYS)})")
        hours[WEEKDAYS.index(day)] = _intervals(f"{path}.hours.{day}", intervals)
    closed = tuple(_day_rule(f"{path}.closed[{i}]", d) for i, d in enumerate(c.closed))
    reduced = tuple(
        (_day_rule(f"{path}.reduced.{d}", d), _intervals(f"{path}.reduced.{d}", iv)) for d, iv in c.reduced.items()
    )
    for rule, _ in reduced:
        _not_closed(f"{path}.reduced.{rule.name}", rule, closed)
    return Calendar(tz=tz, hours=hours, holidays=c.holidays, closed=closed, reduced=reduced)


def _not_closed(path: str, rule: DayRule, closed: tuple[DayRule, ...]) -> None:
    """A reduced day may not also be closed (spec/agreements.md): the same named day, the same
    date, or a date that is the other list's named day in that date's year."""
    for i, other in enumerate(closed):
        if other.name == rule.name:
            raise AgreementsError(f"{path}: also listed under closed")
        iso = rule if rule.name not in NAMED_DAYS else other if other.name not in NAMED_DAYS else None
        if iso is None:
            continue  # two different named days: never the same date
        day = date.fromisoformat(iso.name)
        if rule.on(day.year) == day and other.on(day.year) == day:
            raise AgreementsError(
                f"{path}: also listed under closed (closed[{i}] '{other.name}' is the same day, {day.isoformat()})"
            )


def _intervals(path: str, texts: list[str]) -> tuple[Interval, ...]:
    try:
        ivs = sorted((Interval.parse(t) for t in texts), key=lambda iv: iv.start)
    except ValueError as exc:
        raise AgreementsError(f"{path}: {exc}") from None
    for a, b in itertools.pairwise(ivs):
        if b.start < a.end:
            raise AgreementsError(f"{path}: intervals overlap")
    return tuple(ivs)


def _day_rule(path: str, text: str) -> DayRule:
    try:
        return DayRule.parse(text)
    except ValueError as exc:
        raise AgreementsError(f"{path}: {exc}") from None


def _duration(path: str, value: str | int) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise AgreementsError(f"{path}: {exc}") from None


def _dates_to_text(obj: Any) -> Any:
    """YAML reads `2026-12-23` as a date; the file's model wants the text."""
    if isinstance(obj, dict):
        return {str(k) if isinstance(k, date) else k: _dates_to_text(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dates_to_text(v) for v in obj]
    return obj.isoformat() if isinstance(obj, date) else obj


def _locate(data: dict[str, Any]) -> str | None:
    """msgspec writes a path inside a map of ids as `queues[...]`; find the id by converting
    each entry on its own, so the message names `queues.kundreskontra`."""
    sections: tuple[tuple[str, type[_Strict]], ...] = (
        ("calendars", CalendarFile),
        ("queues", QueueFile),
        ("mailboxes", MailboxFile),
    )
    for section, model in sections:
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        for ident, entry in entries.items():
            prefix = f"{section}.{ident}"
            if isinstance(entry, dict):
                for name in ("hours", "reduced"):
                    days = entry.get(name) if model is CalendarFile else None
                    for day, value in days.items() if isinstance(days, dict) else ():
                        try:
                            msgspec.convert(value, list[str])
                        except msgspec.ValidationError as exc:
                            return _path_message(str(exc), f"{prefix}.{name}.{day}")
            try:
                msgspec.convert(entry, model)
            except msgspec.ValidationError as exc:
                return _path_message(str(exc), prefix)
    return None


def _path_message(msgspec_error: str, prefix: str = "") -> str:
    """`Expected int, got str - at `$.queues.k.x`` -> `queues.k.x: expected int, got str`."""
    message, _, where = msgspec_error.partition(" - at `$")
    path = ".".join(p for p in (prefix, where.rstrip("`").lstrip(".")) if p)
    message = message.replace("Object contains unknown field", "unknown key")
    message = message.replace("Object missing required field", "missing required key")
    message = message[:1].lower() + message[1:]
    return f"{path}: {message}" if path else message


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """`did not find expected ',' or ']' at line 7, column 9`: what and where, on one line."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)
