"""Every ClickHouse query of the generated dashboards, run on the embedded engine.

The queries are taken from the committed JSON (dashboards/generated/*.json: what Grafana gets),
Grafana's macros and template variables expanded the way the ClickHouse plugin expands them,
and run against a warehouse holding a simulated week (simulator -> ingest boundary -> Deriver).
Each must return what its panel needs; the daily service level, answer rate and mail KPIs are
checked against the monthly report's SQL (dashboards/report.py) restricted to one day.

Expansions (grafana/clickhouse-datasource pkg/macros/macros.go, and the frontend's variable
formatting in src/data/CHDatasource.ts):

- `$__timeFilter(c)`    -> `c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)`
- `$__timeFilter_ms(c)` -> `c >= fromUnixTimestamp64Milli(<from ms>) AND c <= fromUnixTimestamp64Milli(<to ms>)`
- `$__timeInterval(c)`  -> `toStartOfInterval(toDateTime(c), INTERVAL <interval s> second)`
- `$__timeInterval_ms(c)` -> `toStartOfInterval(toDateTime64(c, 3), INTERVAL <interval ms> millisecond)`
- `$__fromTime` / `$__toTime` -> `toDateTime(<s>)`; `_ms` -> `fromUnixTimestamp64Milli(<ms>)`
- `$__dateFilter(c)`    -> `c >= toDate('<from date>') AND c <= toDate('<to date>')`
- `$__interval_s`       -> `<interval s>`
- `${v:sqlstring}`      -> Grafana's sqlstring format: `'a','b'` (quotes doubled), one value `'a'`
- `${v}` / `$v`         -> the plugin's own format: a multi-value selection `'a','b'`, a single
                           (repeated-panel) value unquoted

sqlds finds a macro's arguments up to the first `)`, so arguments with parentheses are
rejected here as they would be mis-parsed there.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from availability.cli.generate import ROOT
from dashboards.grafana.files import OUT_DIR, datasource_type, targets
from dashboards.report import MAILBOXES_SQL, QUEUES_SQL
from ingest.boundary import Boundary, Rejection
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate
from schemas.agreements import Agreements, load_agreements
from schemas.events import encode
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import Warehouse, ms

WEEK = date(2026, 3, 2)  # Monday; the simulated week is Mon 2 - Sun 8 March 2026 (CET)
DAYS = 7
SEED = 20260302
CHECK_DAY = date(2026, 3, 3)  # the day hand-checked against the report's SQL
DEFAULT_INTERVAL_S = 3600  # a week on a ~1000 px wide panel; panels may set a larger minimum

# -- Grafana's expansion --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What Grafana sends with a query: the time range, the interval and the variables."""

    start: datetime
    end: datetime
    interval_s: int
    variables: Mapping[str, str | Sequence[str]]


def _dt(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _dt64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({ms(t)})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC).strftime('%Y-%m-%d')}')"


def _filter(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


MACROS = {
    "timeFilter": lambda r, a: _filter(a[0], _dt(r.start), _dt(r.end)),
    "timeFilter_ms": lambda r, a: _filter(a[0], _dt64(r.start), _dt64(r.end)),
    "dateFilter": lambda r, a: _filter(a[0], _date(r.start), _date(r.end)),
    "timeInterval": lambda r, a: f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {r.interval_s} second)",
    "timeInterval_ms": lambda r, a: (
        f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {r.interval_s * 1000} millisecond)"
    ),
    "fromTime": lambda r, a: _dt(r.start),
    "toTime": lambda r, a: _dt(r.end),
    "fromTime_ms": lambda r, a: _dt64(r.start),
    "toTime_ms": lambda r, a: _dt64(r.end),
    "interval_s": lambda r, a: str(r.interval_s),
}
_MACRO = re.compile(r"\$__(\w+)(?:\(([^)]*)\))?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def _sqlstring(value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def _plugin_format(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else "'" + "','".join(value) + "'"


def expand(sql: str, request: Request) -> str:
    """The SQL the ClickHouse server receives from the plugin for this request."""

    def variable(match: re.Match[str]) -> str:
        name, fmt = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), None)
        if name.startswith("__"):
            return match.group(0)  # a macro, expanded below (the backend runs after the frontend)
        assert name in request.variables, f"unknown variable ${name}"
        assert fmt in (None, "sqlstring"), f"${{{name}:{fmt}}}: format not handled by this test"
        value = request.variables[name]
        return _sqlstring(value) if fmt == "sqlstring" else _plugin_format(value)

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        assert name in MACROS, f"$__{name}: not a macro of the ClickHouse plugin"
        arguments = [a.strip() for a in args.split(",")] if args is not None else []
        assert all("(" not in a for a in arguments), f"$__{name}({args}): sqlds cuts arguments at the first ')'"
        return str(MACROS[name](request, arguments))

    expanded = _MACRO.sub(macro, _VARIABLE.sub(variable, sql))
    assert "$" not in expanded, f"unexpanded: {expanded}"
    return expanded


def interval_seconds(panel: Mapping[str, Any]) -> int:
    """The panel's minimum interval (`1h`, `30m`, `1d`) or the default."""
    text = panel.get("interval")
    if not text:
        return DEFAULT_INTERVAL_S
    number, unit = re.fullmatch(r"(\d+)([smhd])", text).groups()  # type: ignore[union-attr]
    return max(int(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit], DEFAULT_INTERVAL_S)


# -- the queries of the generated dashboards -----------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: Mapping[str, Any]
    target: Mapping[str, Any]

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel['id']}:{self.target['refId']}"


def clickhouse_queries() -> list[PanelQuery]:
    found = []
    for path in sorted((ROOT / OUT_DIR).glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel, target in targets(dashboard):
            if datasource_type(panel, target) == "grafana-clickhouse-datasource":
                found.append(PanelQuery(str(dashboard["uid"]), panel, target))
    return found


QUERIES = clickhouse_queries()


def test_the_generated_dashboards_have_clickhouse_queries():
    assert {q.dashboard for q in QUERIES} == {"availability-history", "availability-mailbox"}
    assert len(QUERIES) >= 12


# -- a warehouse with a simulated week -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="module")
def week(chdb_dir: str, shipped: Agreements) -> Iterator[Warehouse]:
    database = f"test_dash_{uuid.uuid4().hex[:10]}"
    wh = Warehouse.open(chdb_dir, database=database)
    boundary = Boundary(shipped, Pseudonymiser(b"dashboard-test-key", shipped))
    events = []
    for raw in simulate(shipped, WEEK, DAYS, SEED):
        accepted = boundary.accept(encode(raw))
        assert not isinstance(accepted, Rejection), accepted
        events.append(accepted)
    deriver = Deriver(wh, shipped)
    for i in range(0, len(events), 2000):
        deriver.apply(events[i : i + 2000])
    wh.flush()
    yield wh
    wh.client.command(f"DROP DATABASE IF EXISTS `{database}`")
    wh.close()


def local_midnight(day: date, agreements: Agreements) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=agreements.timezone)


def week_request(agreements: Agreements, panel: Mapping[str, Any], **variables: str | Sequence[str]) -> Request:
    start = local_midnight(WEEK, agreements)
    end = local_midnight(WEEK + timedelta(days=DAYS), agreements) - timedelta(seconds=1)
    values: dict[str, str | Sequence[str]] = {"queue": list(agreements.queues), "mailbox": list(agreements.mailboxes)}
    return Request(start, end, interval_seconds(panel), values | variables)


@dataclass
class Result:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run(wh: Warehouse, query: PanelQuery, request: Request) -> Result:
    wh.flush()
    result = wh.client.query(expand(str(query.target["rawSql"]), request))
    return Result(list(result.column_names), [t.name for t in result.column_types], list(result.result_rows))


def find(title_prefix: str) -> PanelQuery:
    [query] = [q for q in QUERIES if str(q.panel["title"]).startswith(title_prefix)]
    return query


# -- every query ----------------------------------------------------------------------------------

_NUMERIC = re.compile(r"^(Nullable\()?(U?Int\d+|Float\d+|Decimal.*|Bool)\)?$")
_TIME = re.compile(r"^DateTime(64)?(\(.*\))?$")


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.id)
def test_query_returns_what_its_panel_needs(week: Warehouse, shipped: Agreements, query: PanelQuery):
    repeat = query.panel.get("repeat")
    # A repeated panel gets one value of its variable per copy; the others get the selection "All".
    selections = [{repeat: value} for value in week_request(shipped, query.panel).variables[repeat]] if repeat else [{}]
    overridden = {
        o["matcher"]["options"] for o in query.panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"
    }
    total_rows = 0
    for selection in selections:
        result = run(week, query, week_request(shipped, query.panel, **selection))
        total_rows += len(result.rows)
        assert overridden <= set(result.columns), f"overrides name missing columns: {overridden - set(result.columns)}"
        if query.target["format"] == 0:  # time series: a non-null time column, then labels and values
            assert query.target["queryType"] == "timeseries"
            assert result.columns[0] == "time" and _TIME.match(result.types[0]), (result.columns, result.types)
            values = [c for c, t in zip(result.columns[1:], result.types[1:], strict=True) if _NUMERIC.match(t)]
            labels = [c for c, t in zip(result.columns[1:], result.types[1:], strict=True) if not _NUMERIC.match(t)]
            assert values, result.types
            assert set(labels) <= {"queue", "mailbox"}, labels  # what the panels' display names use
            times = [row[0] for row in result.rows]
            assert times == sorted(times), "long frames must be sorted by time to be widened"
        else:
            assert query.target["format"] == 1 and query.target["queryType"] == "table"
            assert result.columns
        x_field = query.panel.get("options", {}).get("xField")
        if x_field:
            assert x_field in result.columns
    assert total_rows > 0, "no rows for a simulated week"


# -- hand checks against the monthly report's definitions ----------------------------------------


def _day_bounds(day: date, agreements: Agreements) -> tuple[datetime, datetime]:
    return local_midnight(day, agreements), local_midnight(day + timedelta(days=1), agreements)


def _report_day(wh: Warehouse, agreements: Agreements, day: date) -> dict[str, dict[str, Any]]:
    """QUEUES_SQL of the monthly report, for one local day instead of a month."""
    start, end = _day_bounds(day, agreements)
    return {row["queue"]: row for row in wh.records(QUEUES_SQL, {"start": ms(start), "end": ms(end)})}


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _on_day(result: Result, day: date, agreements: Agreements, key: str) -> dict[str, dict[str, Any]]:
    midnight = local_midnight(day, agreements).astimezone(UTC)
    return {row[key]: row for row in result.records() if _as_utc(row["time"]) == midnight}


@pytest.mark.parametrize(
    ("title", "column"), [("Servicenivå per dag", "service_level"), ("Svarsfrekvens per dag", "answer_rate")]
)
def test_daily_queue_kpi_is_the_reports_definition_for_that_day(week, shipped, title, column):
    query = find(title)
    result = run(week, query, week_request(shipped, query.panel))
    panel = _on_day(result, CHECK_DAY, shipped, "queue")
    report = _report_day(week, shipped, CHECK_DAY)
    assert report, "the simulated Tuesday has calls"
    assert set(panel) == set(report)
    checked = 0
    for queue, row in report.items():
        expected = row[column]
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            assert panel[queue][column] is None
        else:
            assert panel[queue][column] == pytest.approx(expected)
            checked += 1
    assert checked >= 3


# The order of one call's events at the same instant (metrics.md, "Events at the same instant").
_LIFECYCLE = {"offered": 0, "queued": 1, "transferred": 2, "answered": 3}  # the rest end a wait: 4, `ended` 5
_ENDS_WAIT = ("answered", "abandoned", "callback_requested", "exited", "ended")


def _first_contacts(raw: list[dict[str, Any]]) -> list[tuple[str, datetime, str, float]]:
    """(queue, first queued, outcome, wait s) of each call's first contact, from the raw events.

    A rule of its own, written from metrics.md, not from stream_jobs: the contact starts at the
    call's first `call.queued`, is counted in the last queue a transfer moved it to, and ends at
    the first answer, abandon, callback request, flow-out or `call.ended` after that (a hang-up
    while waiting is an abandon); the wait runs from the first queueing. Later contacts of a call
    (a re-queue after an answer is an internal transfer) are in no KPI, so they are not needed."""
    calls: dict[str, list[tuple[datetime, int, str, dict[str, Any]]]] = {}
    for e in raw:
        kind = e["type"].removeprefix("call.")
        if e["type"].startswith("call."):
            rank = _LIFECYCLE.get(kind, 5 if kind == "ended" else 4)
            calls.setdefault(e["data"]["call_id"], []).append(
                (datetime.fromisoformat(e["time"]), rank, kind, e["data"])
            )
    contacts = []
    for steps in calls.values():
        steps.sort(key=lambda s: (s[0], s[1]))
        kinds = [kind for _, _, kind, _ in steps]
        if "queued" not in kinds or "answered" in kinds[: kinds.index("queued")]:
            continue  # never queued, or answered before it was queued: no contact of the KPIs
        first = kinds.index("queued")
        queued_at, queue = steps[first][0], steps[first][3]["queue"]
        for at, _, kind, data in steps[first + 1 :]:
            if kind == "transferred":
                queue = data["to_queue"]
            elif kind in _ENDS_WAIT:
                contacts.append((queue, queued_at, kind, (at - queued_at).total_seconds()))
                break
    return contacts


def test_daily_service_level_by_hand_for_one_queue(week, shipped):
    """The panel's number from the raw events, by metrics.md's definition, counted in Python.

    Nothing here reads the derivation's facts (call_contacts): the contacts come from the
    simulated events themselves (_first_contacts), so a wrong flag in the derivation
    (in_service_level, short_abandon, queue_open) or a wrong sum in the panel's SQL both show."""
    query = find("Servicenivå per dag")
    raw = [json.loads(encode(e)) for e in simulate(shipped, WEEK, DAYS, SEED)]  # what `week` was built from
    start, end = _day_bounds(CHECK_DAY, shipped)
    day = [c for c in _first_contacts(raw) if start <= c[1] < end]
    busiest = max(shipped.queues, key=lambda q: sum(1 for c in day if c[0] == q))
    queue = shipped.queues[busiest]
    # Open: first queued inside one of the day's opening intervals (local minutes after midnight);
    # every shipped queue has the calendar `telefontid`. Closed-hours contacts are in no KPI.
    hours = queue.calendar.intervals_on(CHECK_DAY)

    def is_open(t: datetime) -> bool:
        local = t.astimezone(shipped.timezone)
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(i.start <= minute < i.end for i in hours)

    mine = [c for c in day if c[0] == busiest and is_open(c[1])]
    # metrics.md: short abandon = abandoned (or hung up while waiting) with wait < short_abandon_seconds;
    # service level = answered with wait <= service_level_seconds / (offered - short abandons - callbacks).
    short = sum(1 for _, _, kind, wait in mine if kind in ("abandoned", "ended") and wait < queue.short_abandon_seconds)
    callbacks = sum(1 for _, _, kind, _ in mine if kind == "callback_requested")
    within = sum(1 for _, _, kind, wait in mine if kind == "answered" and wait <= queue.service_level_seconds)
    base = len(mine) - short - callbacks
    panel = _on_day(run(week, query, week_request(shipped, query.panel)), CHECK_DAY, shipped, "queue")
    assert hours and base > 10 and 0 < within < base, (hours, base, within)  # a day with both kinds of contact
    assert panel[busiest]["service_level"] == pytest.approx(within / base)


def test_queue_filter_and_single_queue_selection(week, shipped):
    query = find("Servicenivå per dag")
    one = run(week, query, week_request(shipped, query.panel, queue=["kundreskontra"]))
    assert {r["queue"] for r in one.records()} == {"kundreskontra"}


def test_period_table_matches_the_report_for_the_week(week, shipped):
    query = find("Perioden per process")
    start = local_midnight(WEEK, shipped)
    end = local_midnight(WEEK + timedelta(days=DAYS), shipped)
    request = Request(
        start, end - timedelta(seconds=1), DEFAULT_INTERVAL_S, week_request(shipped, query.panel).variables
    )
    table = {r["queue"]: r for r in run(week, query, request).records()}
    report = {r["queue"]: r for r in week.records(QUEUES_SQL, {"start": ms(start), "end": ms(end)})}
    assert set(table) == set(report)
    for queue, expected in report.items():
        row = table[queue]
        for key in ("offered", "answered", "abandoned", "short_abandoned", "callbacks", "out_of_hours"):
            assert row[key] == expected[key], (queue, key)
        for key, target in (
            ("service_level", shipped.queues[queue].service_level_target),
            ("answer_rate", shipped.queues[queue].answer_rate_target),
        ):
            assert row[f"{key}_target"] == target
            if expected[key] is None:
                assert row[key] is None and row[f"{key}_met"] is None
            else:
                assert row[key] == pytest.approx(expected[key])
                assert row[f"{key}_met"] == (expected[key] >= target)


def test_demand_tables_add_up_to_offered_and_out_of_hours(week, shipped):
    period = find("Perioden per process")
    totals = run(week, period, week_request(shipped, period.panel)).records()
    for title, key in (("Erbjudna kontakter per timme", "offered"), ("Utanför öppettid per timme", "out_of_hours")):
        query = find(title)
        cells = run(week, query, week_request(shipped, query.panel)).records()
        assert sum(sum(v for k, v in row.items() if k != "hour") for row in cells) == sum(r[key] for r in totals)


def test_mail_kpis_per_day_are_the_reports_definitions(week, shipped):
    start, end = _day_bounds(CHECK_DAY, shipped)
    ids = list(shipped.mailboxes)
    params = {
        "start": ms(start),
        "end": ms(end),
        "eval": ms(datetime(2030, 1, 1, tzinfo=UTC)),  # every reply of the week is known
        "mailboxes": ids,
        "clocks": [0.0] * len(ids),
    }
    report = {r["mailbox"]: r for r in week.records(MAILBOXES_SQL, params)}

    share = find("Andel besvarade inom svarstid")
    panel = _on_day(run(week, share, week_request(shipped, share.panel)), CHECK_DAY, shipped, "mailbox")
    checked = 0
    for mailbox, row in report.items():
        if row["answered"]:
            assert panel[mailbox]["within_target_share"] == pytest.approx(row["within_target"] / row["answered"])
            checked += 1
    assert checked >= 3

    median = find("Median ledtid per dag")
    mailbox = max(report, key=lambda m: report[m]["answered"])
    rows = _on_day(run(week, median, week_request(shipped, median.panel, mailbox=mailbox)), CHECK_DAY, shipped, "time")
    [row] = rows.values()
    assert row["median_lead_seconds"] == pytest.approx(report[mailbox]["median_lead_seconds"])
    assert row["response_target_seconds"] == shipped.mailboxes[mailbox].response_target_seconds


# -- the expansion itself ----------------------------------------------------------------------------


def test_expansion_follows_the_plugin():
    request = Request(
        datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC), 600, {"queue": ["a", "o'b"], "m": "x"}
    )
    assert expand("$__timeFilter(t)", request) == "t >= toDateTime(1772409600) AND t <= toDateTime(1772496000)"
    assert expand("$__timeInterval(t)", request) == "toStartOfInterval(toDateTime(t), INTERVAL 600 second)"
    assert (
        expand("$__fromTime, $__toTime_ms", request)
        == "toDateTime(1772409600), fromUnixTimestamp64Milli(1772496000000)"
    )
    assert expand("q IN (${queue:sqlstring})", request) == "q IN ('a','o''b')"
    assert expand("q IN (${queue}) AND m = '$m'", request) == "q IN ('a','o'b') AND m = 'x'"
    with pytest.raises(AssertionError, match="first"):
        expand("$__timeFilter(toDate(t))", request)
