"""The function-mailbox dashboard: live backlog (Prometheus) above the history of cases (ClickHouse).

Live values are the stream worker's gauges (docs/live-metrics.md): open cases, the business age
of the oldest open case, cases already past their target and cases that will pass it within the
next business hour. The history follows spec/metrics.md: a case belongs to the local day it
opened, its lead time is business time from opening to the first reply, and its target is
`priority_response_target` for priority cases, else `response_target`.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import kpi_promql, kpi_sql
from dashboards.grafana.common import (
    AMBER,
    CLICKHOUSE,
    GREEN,
    MAILBOX_IN,
    NEUTRAL,
    PROMETHEUS,
    RED,
    ClickHouse,
    Layout,
    bottom_legend,
    local_day,
    mailbox_variable,
    new_dashboard,
    override,
    promql,
    steps,
    timezone,
    to_json,
    value_text,
)
from schemas.agreements import Agreements

UID = "availability-mailbox"
TITLE = "Tillgänglighet – funktionsbrevlådor"

M = 'mailbox=~"$mailbox"'
TOTALS = {
    "open_cases": kpi_promql.per(None, "availability_mailbox_open_cases", M),
    "priority_open": kpi_promql.per(None, "availability_mailbox_open_cases", M, kpi_promql.PRIORITY),
    "oldest_open": kpi_promql.per(None, "availability_mailbox_oldest_open_business_seconds", M),
    "breached": kpi_promql.per(None, "availability_mailbox_breached_cases", M),
    "priority_breached": kpi_promql.per(None, "availability_mailbox_breached_cases", M, kpi_promql.PRIORITY),
    "breaching_within_hour": kpi_promql.per(None, "availability_mailbox_breaching_within_hour", M),
}
# The per-mailbox table: one instant query per column, joined on the mailbox label.
PER_MAILBOX = {
    "A": ("Öppna", kpi_promql.per("mailbox", "availability_mailbox_open_cases", M)),
    "B": ("Varav prioriterade", kpi_promql.per("mailbox", "availability_mailbox_open_cases", M, kpi_promql.PRIORITY)),
    "C": (
        "Äldsta öppna (arbetstid)",
        kpi_promql.per("mailbox", "availability_mailbox_oldest_open_business_seconds", M),
    ),
    "D": ("Brutna", kpi_promql.per("mailbox", "availability_mailbox_breached_cases", M)),
    "E": ("Bryter inom en timme", kpi_promql.per("mailbox", "availability_mailbox_breaching_within_hour", M)),
    "F": ("Öppen nu", kpi_promql.mailbox_open(M)),
}

LEAD_BUCKETS = ((1, "0–1 h"), (2, "1–2 h"), (4, "2–4 h"), (8, "4–8 h"), (16, "8–16 h"), (24, "16–24 h"))


def cases_per_day_sql(tz: str) -> str:
    return f"""
        SELECT
            {local_day("opened_at", tz)} AS time,
            count() AS received,
            countIf({kpi_sql.REPLIED}) AS answered,
            countIf({kpi_sql.CLOSED}) AS closed_without_reply,
            countIf(end = '') AS still_open
        FROM mail_cases FINAL
        WHERE mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        GROUP BY time
        ORDER BY time
    """


def lead_distribution_sql() -> str:
    cases = ", ".join(f"hours <= {limit}, '{label}'" for limit, label in LEAD_BUCKETS)
    return f"""
        WITH assumeNotNull(lead_seconds) / 3600 AS hours
        SELECT
            multiIf({cases}, '> {LEAD_BUCKETS[-1][0]} h') AS lead_time,
            countIf(NOT priority) AS normal_cases,
            countIf(priority) AS priority_cases
        FROM mail_cases FINAL
        WHERE {kpi_sql.REPLIED} AND mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        GROUP BY lead_time
        ORDER BY min(hours)
    """


def priority_per_day_sql(tz: str) -> str:
    return f"""
        SELECT
            {local_day("opened_at", tz)} AS time,
            countIf(priority) AS priority_received,
            countIf(priority AND {kpi_sql.within_target()}) AS priority_within_target,
            countIf(priority AND {kpi_sql.REPLIED} AND {kpi_sql.LATE}) AS priority_answered_late
        FROM mail_cases FINAL
        WHERE mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        GROUP BY time
        ORDER BY time
    """


def priority_cases_sql() -> str:
    return f"""
        SELECT
            opened_at,
            mailbox,
            multiIf({kpi_sql.REPLIED}, 'besvarad', {kpi_sql.CLOSED}, 'stängd', 'öppen') AS status,
            lead_seconds,
            target_seconds,
            if({kpi_sql.REPLIED}, {kpi_sql.IN_TIME}, NULL) AS within_target,
            messages
        FROM mail_cases FINAL
        WHERE priority AND mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        ORDER BY opened_at DESC
        LIMIT 500
    """


def _total(title: str, expr: str, description: str, thresholds: db.ThresholdsConfig) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .with_target(promql(expr))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields(""))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE)
        .justify_mode(cm.BigValueJustifyMode.CENTER)
        .thresholds(thresholds)
        .no_value("–")
    )


def _per_mailbox_table(agreements: Agreements) -> table.Panel:
    panel = (
        table.Panel()
        .title("Per brevlåda just nu")
        .description("Varje brevlådas kö just nu; åldern räknas i brevlådans öppettid (arbetstid).")
        .datasource(PROMETHEUS)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}, "indexByName": {}})
        )
        .sort_by([cb.TableSortByFieldState().display_name("Öppna").desc(True)])
    )
    for ref, (_, expr) in PER_MAILBOX.items():
        panel = panel.with_target(promql(expr, ref_id=ref, table=True))
    names = {m.id: (m.name, "text") for m in agreements.mailboxes.values()}
    extra: dict[str, dict[str, object]] = {
        "C": {"unit": "s", "decimals": 1},
        "D": {"thresholds": _json_steps(RED), "custom__cellOptions": {"type": "color-background"}},
        "E": {"thresholds": _json_steps(AMBER), "custom__cellOptions": {"type": "color-background"}},
        "F": {"mappings": value_text({"1": ("öppen", GREEN), "0": ("stängd", "text")})},
    }
    columns = [override("mailbox", displayName="Brevlåda", mappings=value_text(names))]
    for ref, (label, _) in PER_MAILBOX.items():
        properties: dict[str, object] = {"displayName": label, "decimals": 0} | extra.get(ref, {})
        columns.append(override(f"Value #{ref}", **properties))
    for name, props in columns:
        panel = panel.override_by_name(name, props)
    return panel


def build(agreements: Agreements) -> db.Dashboard:
    tz = timezone(agreements)
    dashboard = (
        new_dashboard(
            UID,
            TITLE,
            agreements,
            description="Funktionsbrevlådornas kö just nu (Prometheus) och ärendehistorik (ClickHouse).",
            tags=["mail"],
        )
        .time("now-30d/d", "now/d")
        .refresh("1m")
        .with_variable(mailbox_variable(agreements))
    )
    layout = Layout(dashboard)
    layout.row("Just nu")
    t = TOTALS
    count = steps((None, NEUTRAL))
    alarm = steps((None, GREEN), (1, RED))
    layout.add(_total("Öppna ärenden", t["open_cases"], "Obesvarade ärenden just nu.", count).decimals(0), 4, 5)
    layout.add(
        _total("Varav prioriterade", t["priority_open"], "Öppna prioriterade ärenden (anstånd m.m.).", count).decimals(
            0
        ),
        4,
        5,
    )
    layout.add(
        _total(
            "Äldsta öppna ärende",
            t["oldest_open"],
            "Arbetstid sedan det äldsta obesvarade ärendet kom in (högst bland valda brevlådor).",
            count,
        ).unit("s"),
        4,
        5,
    )
    layout.add(
        _total("Brutna svarstider", t["breached"], "Öppna ärenden som redan passerat sin svarstid.", alarm).decimals(0),
        4,
        5,
    )
    layout.add(
        _total(
            "Prioriterade brutna", t["priority_breached"], "Öppna prioriterade ärenden som passerat svarstiden.", alarm
        ).decimals(0),
        4,
        5,
    )
    layout.add(
        _total(
            "Bryter inom en timme",
            t["breaching_within_hour"],
            "Öppna ärenden som passerar sin svarstid inom nästa arbetstimme.",
            steps((None, GREEN), (1, AMBER)),
        ).decimals(0),
        4,
        5,
    )
    layout.add(_per_mailbox_table(agreements), 24, 9)

    layout.row("Ärenden")
    per_day = (
        timeseries.Panel()
        .title("Ärenden per dag")
        .description(
            "Ärenden per lokal dag då de kom in, med hur de slutade: besvarade, stängda utan svar, fortfarande öppna."
        )
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(cases_per_day_sql(tz)))
        .draw_style(cm.GraphDrawStyle.LINE)
        .show_points(cm.VisibilityMode.ALWAYS)
        .decimals(0)
        .legend(bottom_legend())
    )
    for name, props in (
        override("received", displayName="Inkomna"),
        override("answered", displayName="Besvarade"),
        override("closed_without_reply", displayName="Stängda utan svar"),
        override("still_open", displayName="Fortfarande öppna"),
    ):
        per_day = per_day.override_by_name(name, props)
    layout.add(per_day, 12, 9)

    distribution = (
        barchart.Panel()
        .title("Ledtid, fördelning")
        .description("Besvarade ärenden som kom in i perioden, efter ledtid i arbetstimmar till första svar.")
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(lead_distribution_sql(), fmt="table"))
        .x_field("lead_time")
        .stacking(cm.StackingMode.NORMAL)
        .show_value(cm.VisibilityMode.AUTO)
        .decimals(0)
        .legend(bottom_legend())
    )
    for name, props in (
        override("lead_time", displayName="Ledtid"),
        override("normal_cases", displayName="Ej prioriterade"),
        override("priority_cases", displayName="Prioriterade"),
    ):
        distribution = distribution.override_by_name(name, props)
    layout.add(distribution, 12, 9)

    layout.row("Prioriterade ärenden")
    priority = (
        timeseries.Panel()
        .title("Prioriterade ärenden per dag")
        .description("Prioriterade ärenden per lokal dag då de kom in: inkomna, besvarade inom och över svarstiden.")
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(priority_per_day_sql(tz)))
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .decimals(0)
        .legend(bottom_legend())
    )
    for name, props in (
        override("priority_received", displayName="Inkomna"),
        override("priority_within_target", displayName="Besvarade inom svarstid", color=_fixed(GREEN)),
        override("priority_answered_late", displayName="Besvarade för sent", color=_fixed(RED)),
    ):
        priority = priority.override_by_name(name, props)
    layout.add(priority, 10, 10)

    names = {m.id: (m.name, "text") for m in agreements.mailboxes.values()}
    cases = (
        table.Panel()
        .title("Prioriterade ärenden")
        .description("Prioriterade ärenden som kom in i perioden, senaste först. Ledtid och mål i arbetstid.")
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(priority_cases_sql(), fmt="table"))
    )
    for name, props in (
        override("opened_at", displayName="Inkom"),
        override("mailbox", displayName="Brevlåda", mappings=value_text(names)),
        override(
            "status",
            displayName="Status",
            mappings=value_text(
                {"öppen": ("öppen", AMBER), "besvarad": ("besvarad", GREEN), "stängd": ("stängd", "text")}
            ),
            custom__cellOptions={"type": "color-text"},
        ),
        override("lead_seconds", displayName="Ledtid", unit="s"),
        override("target_seconds", displayName="Svarstid (mål)", unit="s"),
        override(
            "within_target",
            displayName="Inom mål",
            mappings=value_text({"1": ("ja", GREEN), "0": ("nej", RED), "true": ("ja", GREEN), "false": ("nej", RED)}),
            custom__cellOptions={"type": "color-text"},
        ),
        override("messages", displayName="Meddelanden", decimals=0),
    ):
        cases = cases.override_by_name(name, props)
    layout.add(cases, 14, 10)
    return dashboard


def _json_steps(alarm: str) -> dict[str, object]:
    """Green at 0, `alarm` from 1 (a count of cases that should be 0)."""
    return {"mode": "absolute", "steps": [{"value": None, "color": GREEN}, {"value": 1, "color": alarm}]}


def _fixed(color: str) -> dict[str, str]:
    return {"mode": "fixed", "fixedColor": color}


def dashboard_json(agreements: Agreements) -> dict[str, object]:
    return to_json(build(agreements))
