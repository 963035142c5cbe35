"""Loading and validating the service-agreements file (spec/agreements.md).

Every error must name the key path, e.g. `queues.kundreskontra.calendar: unknown calendar 'x'`.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.agreements import (
    DEFAULT_PRIORITY_KEYWORDS,
    default_agreements_path,
    level_key,
    load_agreements,
    parse_agreements,
    parse_duration,
)
from schemas.calendar import Interval
from schemas.errors import AgreementsError
from tests.conftest import EXAMPLES

EXAMPLE = EXAMPLES / "agreements.yaml"
TZ = ZoneInfo("Europe/Stockholm")
H = 3600.0

BASE: dict[str, Any] = {
    "timezone": "Europe/Stockholm",
    "calendars": {
        "kontor": {
            "holidays": "SE",
            "closed": ["midsommarafton", "julafton"],
            "hours": {"mon": ["08:00-12:00", "13:00-16:30"], "fri": ["08:00-16:00"]},
            "reduced": {"valborgsmassoafton": ["08:00-13:00"]},
        }
    },
    "queues": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "service_level_seconds": 60,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        }
    },
    "mailboxes": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "response_target": "8h",
            "priority_response_target": "4h",
        }
    },
}

DELETE = object()


def with_(path: str, value: Any) -> dict[str, Any]:
    """BASE with the value at a dotted key path replaced (or deleted with DELETE)."""
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return raw


# -- the shipped files --------------------------------------------------------------------------


def test_default_agreements_load() -> None:
    a = load_agreements()
    assert a.source == str(default_agreements_path())
    assert a.timezone == TZ
    assert set(a.calendars) == {"telefontid", "kontorstid"}
    assert len(a.queues) == 9
    assert len(a.mailboxes) == 9
    # Queues and mailboxes have the same nine process ids.
    assert set(a.queues) == set(a.mailboxes)
    for q in a.queues.values():
        assert q.calendar is a.calendars[q.calendar_id]
        assert 0 <= q.service_level_target <= 1 and 0 <= q.answer_rate_target <= 1
    for m in a.mailboxes.values():
        assert m.calendar is a.calendars[m.calendar_id]
        assert 0 < m.priority_response_target_seconds <= m.response_target_seconds


def test_default_agreements_values() -> None:
    a = load_agreements()
    q = a.queues["kundreskontra"]
    assert (q.calendar_id, q.service_level_seconds, q.service_level_target, q.answer_rate_target) == (
        "telefontid",
        60,
        0.8,
        0.9,
    )
    m = a.mailboxes["kundreskontra"]
    assert m.response_target_seconds == 8 * H  # 8h
    assert m.priority_response_target_seconds == 4 * H  # 4h
    assert m.priority_keywords == ("anstånd", "makuler", "avbetalning", "inkasso", "betalningspåminnelse")
    # redovisning omits priority_keywords and priority_response_target.
    r = a.mailboxes["redovisning"]
    assert r.priority_keywords == DEFAULT_PRIORITY_KEYWORDS
    assert r.response_target_seconds == 16 * H
    assert r.priority_response_target_seconds == 16 * H  # falls back to response_target


@pytest.mark.parametrize(
    ("calendar", "day", "expected"),
    [
        ("telefontid", "2026-04-02", []),  # skartorsdag is closed for phones
        ("kontorstid", "2026-04-02", ["08:00-13:00"]),  # ... and reduced for mailboxes
        ("telefontid", "2026-01-05", []),  # trettondagsafton (Mon) closed for phones
        ("kontorstid", "2026-01-05", ["08:00-13:00"]),
        ("telefontid", "2026-10-30", ["08:30-12:00"]),  # allhelgonaafton (Fri) reduced
        ("telefontid", "2026-01-23", ["08:30-12:00", "13:00-15:00"]),  # an ordinary Friday
        ("kontorstid", "2026-06-19", []),  # midsommarafton closed
    ],
)
def test_default_calendars(calendar: str, day: str, expected: list[str]) -> None:
    cal = load_agreements().calendars[calendar]
    assert cal.intervals_on(date.fromisoformat(day)) == tuple(Interval.parse(x) for x in expected)


@pytest.mark.parametrize(
    ("calendar", "day", "expected"),
    [
        # The shipped file lists trettondagsafton and valborgsmassoafton as ISO dates on weekdays
        # only: a reduced day opens whatever its weekday (spec/agreements.md).
        ("kontorstid", "2029-01-05", ["08:00-13:00"]),  # trettondagsafton 2029, a Friday: reduced
        ("kontorstid", "2030-01-05", []),  # trettondagsafton 2030, a Saturday: stays closed
        ("kontorstid", "2028-04-30", []),  # valborgsmassoafton 2028, a Sunday: stays closed
        ("kontorstid", "2029-04-30", ["08:00-13:00"]),  # valborgsmassoafton 2029, a Monday
        ("telefontid", "2028-04-30", []),
        ("telefontid", "2030-04-30", ["08:30-12:00"]),  # valborgsmassoafton 2030, a Tuesday
        ("telefontid", "2030-01-05", []),  # trettondagsafton is closed for phones in any case
    ],
)
def test_default_reduced_days(calendar: str, day: str, expected: list[str]) -> None:
    cal = load_agreements().calendars[calendar]
    assert cal.intervals_on(date.fromisoformat(day)) == tuple(Interval.parse(x) for x in expected)


def test_default_calendars_open_no_weekend_day_in_2026_to_2030() -> None:
    # Every Saturday and Sunday from 2026-01-01 to 2030-12-31, in both shipped calendars.
    a = load_agreements()
    day, weekend_days = date(2026, 1, 1), 0
    while day < date(2031, 1, 1):
        if day.weekday() >= 5:
            weekend_days += 1
            for cid, cal in a.calendars.items():
                assert cal.intervals_on(day) == (), f"{cid} opens on {day:%a} {day}"
        day += timedelta(days=1)
    # 5 x 365 + 1 (29 Feb 2028) = 1826 days = 260 weeks + 6 days. 2026-01-01 is a Thursday, so
    # the 260 weeks end on Wed 2030-12-25 and the 6 days left are Thu 26 .. Tue 31 Dec 2030, of
    # which Sat 28 and Sun 29 are weekend days: 260 x 2 + 2 = 522 days checked.
    assert weekend_days == 522


def test_default_calendars_open_no_public_holiday_in_2026_to_2030() -> None:
    # A reduced day would open a public holiday too; the shipped file lists none.
    import holidays as pyholidays

    a = load_agreements()
    for day in pyholidays.country_holidays("SE", years=range(2026, 2031)):
        for cid, cal in a.calendars.items():
            assert cal.intervals_on(day) == (), f"{cid} opens on the public holiday {day}"


@pytest.mark.usefixtures("examples")  # without them: a skip locally, a failure in CI
def test_example_agreements_load() -> None:
    a = load_agreements(EXAMPLE)
    assert a.source == str(EXAMPLE)
    assert set(a.queues) == {"kundreskontra", "avgifter"}
    assert set(a.mailboxes) == {"kundreskontra"}
    m = a.mailboxes["kundreskontra"]
    assert m.calendar is a.calendars["kontor"]
    assert (m.response_target_seconds, m.priority_response_target_seconds) == (8 * H, 4 * H)
    assert m.priority_keywords == DEFAULT_PRIORITY_KEYWORDS  # omitted in the file
    # The spec's example on this calendar: Fri 15:30 -> Mon 09:00 = 0.5 h + 1 h.
    cal = a.calendars["kontor"]
    assert cal.business_seconds(
        datetime(2026, 1, 16, 15, 30, tzinfo=TZ), datetime(2026, 1, 19, 9, tzinfo=TZ)
    ) == pytest.approx(1.5 * H)


def test_parse_base() -> None:
    a = parse_agreements(BASE)
    assert a.source == "<memory>"
    assert a.queues["kundreskontra"].calendar is a.calendars["kontor"]
    assert a.queues["kundreskontra"].short_abandon_seconds == 5


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 30 * 60),
        ("8h", 8 * 3600),
        ("2d", 2 * 86400),  # a d is 24 h of open time
        ("1h30m", 3600 + 30 * 60),
        ("1d2h3m4s", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("1.5h", 5400),  # decimal amounts
        (" 8h ", 8 * 3600),  # surrounding spaces
        ("1h 30m", 5400),  # spaces between parts are ignored
        (3600, 3600),  # plain int: seconds
        (90.5, 90.5),  # plain float: seconds
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["8 hours", "8", "h", "", "8x", "-5m", "1h30", "8h-", "0s", "0m0s", 0, -60, "eight hours"]
)
def test_parse_duration_rejects(value: str | int) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90), ("30m", 1800), ("8h", 28800), ("2d", 172800), ("1h30m", 5400), (7200, 7200)],
)
def test_response_target_durations(value: str | int, seconds: float) -> None:
    m = parse_agreements(with_("mailboxes.kundreskontra.response_target", value)).mailboxes["kundreskontra"]
    assert m.response_target_seconds == seconds


def test_priority_keywords_default_when_omitted() -> None:
    assert "priority_keywords" not in BASE["mailboxes"]["kundreskontra"]
    m = parse_agreements(BASE).mailboxes["kundreskontra"]
    assert m.priority_keywords == ("anstånd", "makuler", "avbetalning")


def test_priority_keywords_given() -> None:
    m = parse_agreements(with_("mailboxes.kundreskontra.priority_keywords", ["inkasso"])).mailboxes["kundreskontra"]
    assert m.priority_keywords == ("inkasso",)


def test_priority_response_target_defaults_to_response_target() -> None:
    m = parse_agreements(with_("mailboxes.kundreskontra.priority_response_target", DELETE)).mailboxes["kundreskontra"]
    assert m.priority_response_target_seconds == 8 * H


def test_optional_sections() -> None:
    # queues and mailboxes may be omitted; short_abandon_seconds defaults to 0; holidays to none.
    raw = with_("queues.kundreskontra.short_abandon_seconds", DELETE)
    del raw["mailboxes"]
    del raw["calendars"]["kontor"]["holidays"]
    a = parse_agreements(raw)
    assert a.mailboxes == {}
    assert a.queues["kundreskontra"].short_abandon_seconds == 0
    assert a.calendars["kontor"].holidays is None


# -- errors name the key path -------------------------------------------------------------------

Q = "queues.kundreskontra"
M = "mailboxes.kundreskontra"
C = "calendars.kontor"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (f"{Q}.calendar", "x", "queues.kundreskontra.calendar: unknown calendar 'x'"),  # the spec's example
        (f"{M}.calendar", "x", "mailboxes.kundreskontra.calendar: unknown calendar 'x'"),
        (f"{Q}.service_level_target", 1.5, f"{Q}.service_level_target: must be a fraction between 0 and 1, got 1.5"),
        (f"{Q}.answer_rate_target", -0.1, f"{Q}.answer_rate_target: must be a fraction between 0 and 1"),
        (f"{Q}.service_level_seconds", -1, f"{Q}.service_level_seconds: must not be negative"),
        (f"{Q}.short_abandon_seconds", -5, f"{Q}.short_abandon_seconds: must not be negative"),
        (f"{C}.hours.fri", ["16:00-08:00"], f"{C}.hours.fri: invalid interval '16:00-08:00': end must be after start"),
        (f"{C}.hours.fri", ["0800-1600"], f"{C}.hours.fri: invalid interval '0800-1600' (expected HH:MM-HH:MM)"),
        (f"{C}.hours.fri", ["08:00-25:00"], f"{C}.hours.fri: invalid interval '08:00-25:00'"),
        (f"{C}.hours.mon", ["08:00-12:00", "11:00-16:30"], f"{C}.hours.mon: intervals overlap"),
        # Overlap is found after sorting, whatever order the intervals are written in.
        (f"{C}.hours.mon", ["13:00-16:30", "08:00-13:30"], f"{C}.hours.mon: intervals overlap"),
        (f"{C}.hours.mnd", ["08:00-16:30"], f"{C}.hours.mnd: unknown weekday"),
        (f"{C}.closed", ["julafton", "paskafton"], f"{C}.closed[1]: unknown day 'paskafton'"),
        (f"{C}.closed", ["2026-02-30"], f"{C}.closed[0]: unknown day '2026-02-30'"),
        (f"{C}.reduced", {"paskafton": ["08:00-13:00"]}, f"{C}.reduced.paskafton: unknown day 'paskafton'"),
        (
            f"{C}.reduced",
            {"valborgsmassoafton": ["13:00-08:00"]},
            f"{C}.reduced.valborgsmassoafton: invalid interval '13:00-08:00'",
        ),
        (f"{C}.holidays", "XX", f"{C}.holidays: unknown country code 'XX'"),
        # A day both closed and reduced (BASE closes midsommarafton and julafton).
        (f"{C}.reduced", {"julafton": ["08:00-12:00"]}, f"{C}.reduced.julafton: also listed under closed"),
        # 24 Dec 2026 is julafton: the ISO date and the named day are the same day.
        (
            f"{C}.reduced",
            {"2026-12-24": ["08:00-12:00"]},
            f"{C}.reduced.2026-12-24: also listed under closed (closed[1] 'julafton' is the same day, 2026-12-24)",
        ),
        # Fri 19 Jun 2026 is midsommarafton (the Friday between 19 and 25 June), closed[0].
        (
            f"{C}.reduced",
            {"valborgsmassoafton": ["08:00-13:00"], "2026-06-19": ["08:00-12:00"]},
            f"{C}.reduced.2026-06-19: also listed under closed (closed[0] 'midsommarafton' is the same day, 2026-06-19)",
        ),
        (f"{Q}.extra_service_levels", [20, 0], f"{Q}.extra_service_levels: each must be a positive, finite number"),
        (f"{Q}.extra_service_levels", [-5], f"{Q}.extra_service_levels: each must be a positive, finite number"),
        (f"{Q}.extra_service_levels", [math.inf], f"{Q}.extra_service_levels: each must be a positive, finite number"),
        (f"{Q}.extra_service_levels", [math.nan], f"{Q}.extra_service_levels: each must be a positive, finite number"),
        # 20 and 20.0 are one threshold (and one report key, "20").
        (f"{Q}.extra_service_levels", [20, 120, 20.0], f"{Q}.extra_service_levels: 20 is listed more than once"),
        (f"{Q}.extra_service_levels", [7.5, 7.5], f"{Q}.extra_service_levels: 7.5 is listed more than once"),
        (f"{M}.response_target", "8 hours", f"{M}.response_target: invalid duration '8 hours'"),
        (f"{M}.response_target", 0, f"{M}.response_target: invalid duration '0': must be positive"),
        (f"{M}.priority_response_target", "4 timmar", f"{M}.priority_response_target: invalid duration '4 timmar'"),
        ("timezone", "Europe/Stokholm", "timezone: unknown time zone 'Europe/Stokholm'"),
        ("timezone", "", "timezone: unknown time zone ''"),
        # Wrong type / unknown key / missing key at the top level (no dict ids in the path).
        ("timezone", 5, "timezone: expected `str`, got `int`"),
        ("colour", "red", "unknown key `colour`"),
        ("timezone", DELETE, "missing required key `timezone`"),
        ("calendars", DELETE, "missing required key `calendars`"),
    ],
)
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(AgreementsError, match="^" + re.escape(message)):
        parse_agreements(with_(path, value))


# msgspec reports a path inside a map of ids as `$.queues[...]`; the loader names the id.
@pytest.mark.parametrize(
    ("path", "value", "pattern"),
    [
        pytest.param(
            f"{Q}.colour",
            "red",
            # Either form names the whole path; which one is not decided by the spec.
            r"^queues\.kundreskontra(\.colour: unknown key|: unknown key `colour`)",
            id="unknown-queue-key",
        ),
        pytest.param(
            f"{C}.colour",
            "red",
            r"^calendars\.kontor(\.colour: unknown key|: unknown key `colour`)",
            id="unknown-calendar-key",
        ),
        pytest.param(
            f"{Q}.service_level_seconds",
            "sixty",
            r"^queues\.kundreskontra\.service_level_seconds: expected `float`, got `str`",
            id="wrong-type-in-queue",
        ),
        pytest.param(
            f"{C}.hours.mon",
            "08:00-16:30",
            r"^calendars\.kontor\.hours\.mon: expected `array`, got `str`",
            id="wrong-type-in-hours",
        ),
        pytest.param(
            f"{M}.name",
            DELETE,
            r"^mailboxes\.kundreskontra: missing required key `name`",
            id="missing-mailbox-key",
        ),
    ],
)
def test_errors_inside_id_maps_name_the_id(path: str, value: Any, pattern: str) -> None:
    with pytest.raises(AgreementsError, match=pattern):
        parse_agreements(with_(path, value))


# -- closed and reduced (spec/agreements.md: a day in both is an error) -------------------------


def closed_and_reduced(closed: list[Any], reduced: dict[str, list[str]]) -> dict[str, Any]:
    raw = with_(f"{C}.closed", closed)
    raw["calendars"]["kontor"]["reduced"] = reduced
    return raw


@pytest.mark.parametrize(
    ("closed", "reduced", "message"),
    [
        pytest.param(
            ["julafton"], {"julafton": ["08:00-12:00"]}, f"{C}.reduced.julafton: also listed under closed", id="named"
        ),
        pytest.param(
            ["2026-12-23"],
            {"2026-12-23": ["08:00-12:00"]},
            f"{C}.reduced.2026-12-23: also listed under closed",
            id="iso",
        ),
        # A YAML date (unquoted 2026-12-23) is the same ISO date.
        pytest.param(
            [date(2026, 12, 23)],
            {"2026-12-23": ["08:00-12:00"]},
            f"{C}.reduced.2026-12-23: also listed under closed",
            id="yaml-date",
        ),
        # closed names julafton, reduced gives its 2026 date (24 Dec).
        pytest.param(
            ["julafton"],
            {"2026-12-24": ["08:00-12:00"]},
            f"{C}.reduced.2026-12-24: also listed under closed (closed[0] 'julafton' is the same day, 2026-12-24)",
            id="named-closed-iso-reduced",
        ),
        # closed gives a date, reduced names the day it is: skartorsdag 2026 is Thu 2 Apr (Easter
        # Sunday 5 Apr 2026, minus 3 days).
        pytest.param(
            ["julafton", "2026-04-02"],
            {"skartorsdag": ["08:00-12:00"]},
            f"{C}.reduced.skartorsdag: also listed under closed (closed[1] '2026-04-02' is the same day, 2026-04-02)",
            id="iso-closed-named-reduced",
        ),
        # The first reduced day in the file's order is the one named.
        pytest.param(
            ["nyarsafton", "julafton"],
            {"valborgsmassoafton": ["08:00-13:00"], "julafton": ["08:00-12:00"], "nyarsafton": ["08:00-12:00"]},
            f"{C}.reduced.julafton: also listed under closed",
            id="first-of-several",
        ),
    ],
)
def test_closed_and_reduced_messages(closed: list[Any], reduced: dict[str, list[str]], message: str) -> None:
    with pytest.raises(AgreementsError, match="^" + re.escape(message) + "$"):
        parse_agreements(closed_and_reduced(closed, reduced))


@pytest.mark.parametrize(
    ("closed", "reduced"),
    [
        (["julafton"], {"2026-12-23": ["08:00-12:00"]}),  # the day before julafton 2026
        (["julafton"], {"2025-12-23": ["08:00-12:00"]}),
        (["2026-12-24"], {"nyarsafton": ["08:00-12:00"]}),  # 24 Dec is never nyarsafton
        (["2026-12-24"], {"2027-12-24": ["08:00-12:00"]}),  # the same day of another year
        (["midsommarafton"], {"2026-06-26": ["08:00-12:00"]}),  # a week after midsommarafton 2026
    ],
)
def test_closed_and_reduced_on_different_days_load(closed: list[Any], reduced: dict[str, list[str]]) -> None:
    parse_agreements(closed_and_reduced(closed, reduced))


def test_file_with_closed_and_reduced_names_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(UNQUOTED_DATES.replace("2026-12-28:", "2026-12-23:"), encoding="utf-8")
    with pytest.raises(AgreementsError) as caught:
        load_agreements(path)
    assert str(caught.value) == f"{path}: calendars.kontor.reduced.2026-12-23: also listed under closed"


# -- extra service levels ------------------------------------------------------------------------


def test_extra_service_levels_default_and_given() -> None:
    assert parse_agreements(BASE).queues["kundreskontra"].extra_service_levels == ()  # omitted in BASE
    q = parse_agreements(with_(f"{Q}.extra_service_levels", [20, 7.5, 120])).queues["kundreskontra"]
    assert q.extra_service_levels == (20.0, 7.5, 120.0)  # in the order written, as floats


@pytest.mark.parametrize(
    ("seconds", "key"),
    [
        (20, "20"),  # an int as written
        (20.0, "20"),  # the same threshold as 20: the same key
        (7.5, "7.5"),
        (120, "120"),
        (600, "600"),  # not 6e+02
        (600.0, "600"),
        (0.25, "0.25"),
        (1e-05, "0.00001"),  # repr gives 1e-05: no exponent either way
        (1e16, "10000000000000000"),  # repr gives 1e+16
        (86400, "86400"),
    ],
)
def test_level_key(seconds: float, key: str) -> None:
    assert level_key(seconds) == key


# -- queue and mailbox ids (issue 7 item 19) -------------------------------------------------------
# An id is a Kafka key part (`mailbox/thread`), a Prometheus label, a file name (the IMAP
# checkpoint) and a warehouse value: `/`, spaces, upper case and other characters that are unsafe
# there are refused when the file is read, with the key path, instead of failing later.

ID_RULE = "use lower-case letters a-z, digits, '_' and '-', starting with a letter or digit, at most 64"


def renamed(section: str, new_id: str) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw[section] = {new_id: raw[section]["kundreskontra"]}
    return raw


@pytest.mark.parametrize("section", ["queues", "mailboxes"])
@pytest.mark.parametrize(
    "bad_id", ["kund/reskontra", "Kundreskontra", "kund reskontra", "löner", "-kund", "_kund", "", "k" * 65, "a.b"]
)
def test_unsafe_queue_or_mailbox_ids_are_refused(section: str, bad_id: str) -> None:
    kind = section[:-2] if section == "mailboxes" else section[:-1]  # mailbox / queue
    message = f"{section}.{bad_id}: invalid {kind} id '{bad_id}' ({ID_RULE})"
    with pytest.raises(AgreementsError, match="^" + re.escape(message) + "$"):
        parse_agreements(renamed(section, bad_id))


@pytest.mark.parametrize("section", ["queues", "mailboxes"])
@pytest.mark.parametrize("good_id", ["kassa_bank", "tid-projekt", "q1", "1177", "k" * 64])
def test_safe_queue_or_mailbox_ids_load(section: str, good_id: str) -> None:
    assert set(getattr(parse_agreements(renamed(section, good_id)), section)) == {good_id}


def test_a_non_text_id_is_refused() -> None:
    # YAML reads `1177:` as the number 1177; ids are text, and the message names the path.
    message = "queues.1177: invalid queue id 1177 (an id is text: write it in quotes, '1177')"
    with pytest.raises(AgreementsError, match="^" + re.escape(message) + "$"):
        parse_agreements(renamed("queues", 1177))  # type: ignore[arg-type]


def test_unsafe_id_in_a_file_names_the_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "timezone: Europe/Stockholm\ncalendars: {k: {}}\n"
        "mailboxes:\n  ekonomi/kund:\n    name: X\n    calendar: k\n    response_target: 8h\n",
        encoding="utf-8",
    )
    with pytest.raises(AgreementsError) as caught:
        load_agreements(path)
    assert str(caught.value) == f"{path}: mailboxes.ekonomi/kund: invalid mailbox id 'ekonomi/kund' ({ID_RULE})"


@pytest.mark.parametrize("raw", [None, [], "timezone: Europe/Stockholm", 5])
def test_not_a_mapping(raw: Any) -> None:
    with pytest.raises(AgreementsError, match="must be a mapping"):
        parse_agreements(raw)


# -- reading files ------------------------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(AgreementsError) as info:
        load_agreements(path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read agreements file")
    assert "\n" not in message


def test_load_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("timezone: Europe/Stockholm\ncalendars: [kontor\n", encoding="utf-8")
    with pytest.raises(AgreementsError) as info:
        load_agreements(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid YAML (")
    assert "\n" not in message


def test_load_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(AgreementsError, match=re.escape(f"{path}: ") + ".*must be a mapping"):
        load_agreements(path)


@pytest.mark.usefixtures("examples")  # without them: a skip locally, a failure in CI
def test_load_prefixes_validation_errors_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace("calendar: kontor", "calendar: x", 1), encoding="utf-8")
    with pytest.raises(AgreementsError, match="^" + re.escape(f"{path}: queues.kundreskontra.calendar: unknown")):
        load_agreements(path)


UNQUOTED_DATES = """\
timezone: Europe/Stockholm
calendars:
  kontor:
    holidays: SE
    closed: [julafton, 2026-12-23]
    hours:
      wed: ["08:00-16:30"]
      mon: ["08:00-16:30"]
    reduced:
      2026-12-28: ["08:00-12:00"]
queues: {}
mailboxes: {}
"""


def test_unquoted_iso_dates_in_yaml(tmp_path: Path) -> None:
    # YAML reads 2026-12-23 as a date, not text; the loader must accept it all the same.
    path = tmp_path / "a.yaml"
    path.write_text(UNQUOTED_DATES, encoding="utf-8")
    cal = load_agreements(path).calendars["kontor"]
    assert cal.intervals_on(date(2026, 12, 23)) == ()  # Wed, closed by the ISO date
    assert cal.intervals_on(date(2026, 12, 16)) == (Interval.parse("08:00-16:30"),)  # a normal Wed
    assert cal.intervals_on(date(2026, 12, 28)) == (Interval.parse("08:00-12:00"),)  # Mon, reduced


def test_unquoted_iso_date_in_parse_agreements() -> None:
    # The same with a date object handed straight to parse_agreements.
    cal = parse_agreements(with_(f"{C}.closed", [date(2026, 12, 21)])).calendars["kontor"]
    assert cal.intervals_on(date(2026, 12, 21)) == ()  # Mon 21 Dec closed
    assert cal.intervals_on(date(2026, 12, 14)) != ()  # Mon 14 Dec open
