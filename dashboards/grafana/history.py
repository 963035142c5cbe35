"""The history dashboard (ClickHouse): daily KPIs per process, demand, unmet demand, mail lead times.

Every KPI is the monthly report's definition (dashboards/kpi_sql.py, which dashboards/report.py
composes too; spec/metrics.md) applied to a local day of the agreements' time zone instead of a month:

- a contact belongs to the local day in which it was **first queued**; contacts first queued
  while the queue was closed (`out_of_hours`) are in no KPI, only in the unmet-demand panels;
- base = offered − short_abandoned − callbacks; service level = answered within
  `service_level_seconds` / base; answer rate = answered / base; a zero base is null;
- a mail case belongs to the local day it opened; lead time is business time to the first reply.

`call_contacts` and `mail_cases` are ReplacingMergeTree tables: every query reads them with FINAL;
internal transfers (queued again after an answer) are in no panel.
The time range applies through the ClickHouse plugin's `$__timeFilter(col)`; the variables
through `${queue:sqlstring}` / `${mailbox:sqlstring}` (a quoted list, however many are selected).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import kpi_sql
from dashboards.grafana.common import (
    CLICKHOUSE,
    GREEN,
    MAILBOX_IN,
    QUEUE_IN,
    RED,
    ClickHouse,
    Layout,
    local_day,
    mailbox_variable,
    new_dashboard,
    num_list,
    override,
    queue_variable,
    sql_list,
    timezone,
    to_json,
    value_text,
)
from schemas.agreements import Agreements

UID = "availability-history"
TITLE = "Tillgänglighet – historik"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("Mån", "Tis", "Ons", "Tor", "Fre", "Lör", "Sön")


def daily_queue_sql(ratio: str, alias: str, tz: str) -> str:
    """A ratio over `base` (kpi_sql.SERVICE_LEVEL, ANSWER_RATE) per local day and queue."""
    return f"""
        WITH {kpi_sql.BASE} AS base
        SELECT
            {local_day("first_queued_at", tz)} AS time,
            queue,
            {ratio} AS {alias}
        FROM {kpi_sql.CONTACTS}
        WHERE {kpi_sql.ORDINARY} AND queue IN ({QUEUE_IN}) AND $__timeFilter(first_queued_at)
        GROUP BY time, queue
        ORDER BY time, queue
    """


def period_sql(agreements: Agreements) -> str:
    ids = sql_list(agreements.queues)
    sl_targets = num_list(q.service_level_target for q in agreements.queues.values())
    ar_targets = num_list(q.answer_rate_target for q in agreements.queues.values())
    return f"""
        WITH {kpi_sql.BASE} AS base
        SELECT
            queue,
            {kpi_sql.OFFERED} AS offered,
            {kpi_sql.ANSWERED} AS answered,
            {kpi_sql.ABANDONED} AS abandoned,
            {kpi_sql.SHORT_ABANDONED} AS short_abandoned,
            {kpi_sql.CALLBACKS} AS callbacks,
            {kpi_sql.FLOWED_OUT} AS flowed_out,
            {kpi_sql.OUT_OF_HOURS} AS out_of_hours,
            {kpi_sql.SERVICE_LEVEL} AS service_level,
            transform(queue, {ids}, {sl_targets}, nan) AS service_level_target,
            if(base = 0, NULL, service_level >= service_level_target) AS service_level_met,
            {kpi_sql.ANSWER_RATE} AS answer_rate,
            transform(queue, {ids}, {ar_targets}, nan) AS answer_rate_target,
            if(base = 0, NULL, answer_rate >= answer_rate_target) AS answer_rate_met
        FROM {kpi_sql.CONTACTS}
        WHERE {kpi_sql.ORDINARY} AND queue IN ({QUEUE_IN}) AND $__timeFilter(first_queued_at)
        GROUP BY queue
        ORDER BY queue
    """


def offered_interval_sql() -> str:
    return f"""
        WITH assumeNotNull(first_queued_at) AS queued_at
        SELECT
            $__timeInterval(queued_at) AS time,
            queue,
            count() AS offered
        FROM {kpi_sql.CONTACTS}
        WHERE {kpi_sql.ORDINARY} AND queue_open AND queue IN ({QUEUE_IN}) AND $__timeFilter(first_queued_at)
        GROUP BY time, queue
        ORDER BY time, queue
    """


def weekday_hour_sql(condition: str, tz: str) -> str:
    """Contacts per local hour of day (rows) and weekday (columns)."""
    counts = ",\n            ".join(f"countIf(toDayOfWeek(local) = {i}) AS {d}" for i, d in enumerate(WEEKDAYS, 1))
    return f"""
        WITH toTimeZone(assumeNotNull(first_queued_at), '{tz}') AS local
        SELECT
            formatDateTime(local, '%H:00') AS hour,
            {counts}
        FROM {kpi_sql.CONTACTS}
        WHERE {kpi_sql.ORDINARY} AND {condition} AND queue IN ({QUEUE_IN}) AND $__timeFilter(first_queued_at)
        GROUP BY hour
        ORDER BY hour
    """


def out_of_hours_daily_sql(tz: str) -> str:
    return f"""
        SELECT
            {local_day("first_queued_at", tz)} AS time,
            queue,
            {kpi_sql.OUT_OF_HOURS} AS out_of_hours
        FROM {kpi_sql.CONTACTS}
        WHERE {kpi_sql.ORDINARY} AND queue IN ({QUEUE_IN}) AND $__timeFilter(first_queued_at)
        GROUP BY time, queue
        HAVING out_of_hours > 0
        ORDER BY time, queue
    """


def median_lead_sql(agreements: Agreements, tz: str) -> str:
    ids = sql_list(agreements.mailboxes)
    targets = num_list(m.response_target_seconds for m in agreements.mailboxes.values())
    return f"""
        SELECT
            {local_day("opened_at", tz)} AS time,
            if(countIf({kpi_sql.REPLIED}) = 0, NULL,
               {kpi_sql.median_lead()}) AS median_lead_seconds,
            max(transform(mailbox, {ids}, {targets}, nan)) AS response_target_seconds
        FROM mail_cases FINAL
        WHERE mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        GROUP BY time
        ORDER BY time
    """


def within_target_sql(tz: str) -> str:
    return f"""
        SELECT
            {local_day("opened_at", tz)} AS time,
            mailbox,
            {kpi_sql.ratio(f"countIf({kpi_sql.within_target()})", f"countIf({kpi_sql.REPLIED})")}
                AS within_target_share
        FROM mail_cases FINAL
        WHERE mailbox IN ({MAILBOX_IN}) AND $__timeFilter(opened_at)
        GROUP BY time, mailbox
        ORDER BY time, mailbox
    """


def _series(
    title: str, description: str, query: ClickHouse, *, label: str | None, calcs: list[str] | None = None
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(query)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(calcs or [])  # a mean of daily ratios is not the period's ratio: none
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )
    # A long frame is widened into one series per value of its string column: name it by that.
    return panel.display_name(f"${{__field.labels.{label}}}") if label else panel


def _ratio_per_day(title: str, description: str, sql: str, label: str) -> timeseries.Panel:
    return (
        _series(title, description, ClickHouse(sql), label=label)
        .unit("percentunit")
        .min(0)
        .max(1)
        .draw_style(cm.GraphDrawStyle.LINE)
        .show_points(cm.VisibilityMode.ALWAYS)
        .point_size(6)
        .span_nulls(False)
    )


def _bars(panel: timeseries.Panel) -> timeseries.Panel:
    return (
        panel.draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
        .decimals(0)
    )


def _heat_table(title: str, description: str, sql: str) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(sql, fmt="table"))
        .cell_options(cm.TableColoredBackgroundCellOptions())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.CONTINUOUS_BL_YL_RD))
        .decimals(0)
    )
    name, props = override("hour", displayName="Timme", custom__cellOptions={"type": "auto"})
    panel = panel.override_by_name(name, props)
    for column, label in zip(WEEKDAYS, WEEKDAY_NAMES, strict=True):
        name, props = override(column, displayName=label)
        panel = panel.override_by_name(name, props)
    return panel


def _period_table(agreements: Agreements) -> table.Panel:
    panel = (
        table.Panel()
        .title("Perioden per process")
        .description(
            "Kontakter som först köade i perioden. Servicenivå och svarsfrekvens enligt månadsrapportens "
            "definitioner; målen ur serviceavtalen. Utanför öppettid räknas bara i egen kolumn."
        )
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(period_sql(agreements), fmt="table"))
    )
    names = {q.id: (q.name, "text") for q in agreements.queues.values()}
    met = value_text({"true": ("Ja", GREEN), "false": ("Nej", RED), "1": ("Ja", GREEN), "0": ("Nej", RED)})
    columns = [
        override("queue", displayName="Process", mappings=value_text(names)),
        override("offered", displayName="Erbjudna"),
        override("answered", displayName="Besvarade"),
        override("abandoned", displayName="Avbrutna"),
        override("short_abandoned", displayName="Korta avbrott"),
        override("callbacks", displayName="Återuppringning"),
        override("flowed_out", displayName="Utflödade"),
        override("out_of_hours", displayName="Utanför öppettid"),
        override("service_level", displayName="Servicenivå", unit="percentunit", decimals=1),
        override("service_level_target", displayName="Mål SL", unit="percentunit", decimals=0),
        override(
            "service_level_met",
            displayName="SL nådd",
            mappings=met,
            custom__cellOptions={"type": "color-background"},
        ),
        override("answer_rate", displayName="Svarsfrekvens", unit="percentunit", decimals=1),
        override("answer_rate_target", displayName="Mål svar", unit="percentunit", decimals=0),
        override(
            "answer_rate_met",
            displayName="Svar nådd",
            mappings=met,
            custom__cellOptions={"type": "color-background"},
        ),
    ]
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
            description="Historik per dag ur ClickHouse: servicenivå, svarsfrekvens, efterfrågan, ledtider.",
            tags=["history"],
        )
        .time("now-30d/d", "now/d")
        .with_variable(queue_variable(agreements))
        .with_variable(mailbox_variable(agreements))
    )
    layout = Layout(dashboard)
    layout.row("Telefoni: servicenivå och svarsfrekvens per dag")
    layout.add(
        _ratio_per_day(
            "Servicenivå per dag",
            "Besvarade inom servicenivåtiden / (erbjudna − korta avbrott − återuppringningar), per lokal dag "
            "då kontakten först köade. Kontakter utanför öppettid ingår inte.",
            daily_queue_sql(kpi_sql.SERVICE_LEVEL, "service_level", tz),
            "queue",
        ),
        12,
        9,
    )
    layout.add(
        _ratio_per_day(
            "Svarsfrekvens per dag",
            "Besvarade / (erbjudna − korta avbrott − återuppringningar), per lokal dag då kontakten först köade.",
            daily_queue_sql(kpi_sql.ANSWER_RATE, "answer_rate", tz),
            "queue",
        ),
        12,
        9,
    )
    layout.add(_period_table(agreements), 24, 8)

    layout.row("Efterfrågan")
    layout.add(
        _bars(
            _series(
                "Erbjudna kontakter",
                "Kontakter som först köade medan kön var öppen, per intervall.",
                ClickHouse(offered_interval_sql()),
                label="queue",
                calcs=["sum"],
            )
        ).interval("1h"),
        24,
        8,
    )
    layout.add(
        _heat_table(
            "Erbjudna kontakter per timme och veckodag",
            "Antal kontakter i perioden som först köade medan kön var öppen, per lokal timme och veckodag.",
            weekday_hour_sql("queue_open", tz),
        ),
        12,
        10,
    )
    layout.add(
        _heat_table(
            "Utanför öppettid per timme och veckodag",
            "Ej mött efterfrågan: kontakter som köade medan kön var stängd, per lokal timme och veckodag.",
            weekday_hour_sql("NOT queue_open", tz),
        ),
        12,
        10,
    )
    layout.add(
        _bars(
            _series(
                "Utanför öppettid per dag",
                "Ej mött efterfrågan: kontakter som köade medan kön var stängd, per lokal dag.",
                ClickHouse(out_of_hours_daily_sql(tz)),
                label="queue",
                calcs=["sum"],
            )
        ),
        24,
        8,
    )

    layout.row("Funktionsbrevlådor: ledtider")
    layout.add(
        _ratio_per_day(
            "Andel besvarade inom svarstid per dag",
            "Besvarade ärenden med ledtid (arbetstid) inom målet / besvarade ärenden, per lokal dag då ärendet kom in.",
            within_target_sql(tz),
            "mailbox",
        ),
        24,
        8,
    )
    median_name, median_props = override("median_lead_seconds", displayName="Median ledtid")
    target_name, target_props = override(
        "response_target_seconds",
        displayName="Svarstid (mål)",
        custom__lineStyle={"fill": "dash", "dash": [10, 10]},
        custom__showPoints="never",
        color={"mode": "fixed", "fixedColor": RED},
    )
    layout.add(
        _series(
            "Median ledtid per dag – ${mailbox:text}",
            "Median av ledtiden (arbetstid från ärendet kom in till första svar) för besvarade ärenden, per lokal "
            "dag då ärendet kom in, mot brevlådans svarstid (prioriterade ärenden har kortare mål).",
            ClickHouse(median_lead_sql(agreements, tz)),
            label=None,
        )
        .unit("s")
        .show_points(cm.VisibilityMode.ALWAYS)
        .override_by_name(median_name, median_props)
        .override_by_name(target_name, target_props)
        .repeat("mailbox")
        .repeat_direction("h")
        .max_per_row(3),
        8,
        8,
    )
    return dashboard


def dashboard_json(agreements: Agreements) -> dict[str, object]:
    return to_json(build(agreements))
