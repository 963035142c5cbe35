"""The supervisors' live wall (Prometheus): one row of big tiles per process, then the mailboxes.

Built on the stream worker's metrics exactly as docs/live-metrics.md names and aggregates them,
with the expressions of dashboards/kpi_promql.py (which the alert rules use too). Service level
and answer rate follow spec/metrics.md: SL = answered_in_sl / (answered_in_sl + answered_late +
abandoned), answer rate = (answered_in_sl + answered_late) / the same base; a zero base shows
"–", never 0.

The rows repeat by the `queue` variable; the thresholds differ per process, so each tile carries
one override per process (matched by the series name, the queue id from `legendFormat`) with
red below the agreed target, amber within 5 points above it and green above that.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import common as cm

from dashboards import kpi_promql
from dashboards.grafana.common import (
    AMBER,
    GREEN,
    NEUTRAL,
    PROMETHEUS,
    RED,
    Layout,
    age_steps,
    mailbox_variable,
    new_dashboard,
    override,
    promql,
    queue_variable,
    steps,
    target_steps,
    thresholds_value,
    to_json,
    value_text,
)
from dashboards.thresholds import WAIT_AMBER_SHARE
from schemas.agreements import Agreements

UID = "availability-wall"
TITLE = "Tillgänglighet – väggen"

Q = 'queue=~"$queue"'
M = 'mailbox=~"$mailbox"'
CLOSED = "#808080"  # a grey tile: closed is not an alarm

OPEN = kpi_promql.queue_open(Q)
READY = kpi_promql.per("queue", "availability_queue_agents", Q, kpi_promql.READY)

QUEUE_EXPRS = {
    "open": OPEN,
    "waiting": kpi_promql.per("queue", "availability_queue_waiting", Q),
    "oldest_wait": kpi_promql.per("queue", "availability_queue_oldest_wait_seconds", Q),
    "agents_ready": f"({READY} or 0 * {OPEN}) and on (queue) ({OPEN} == 1)",
    "sl_30m": kpi_promql.service_level("30m", Q),
    # The worker's outlook (docs/forecasting.md), only while open.
    "sl_next_30m": kpi_promql.outlook("availability_queue_expected_service_level", Q),
    "sl_today": kpi_promql.service_level(None, Q),
    "ar_30m": kpi_promql.answer_rate("30m", Q),
    "ar_today": kpi_promql.answer_rate(None, Q),
}

MAILBOX_EXPRS = {
    "open_cases": kpi_promql.per("mailbox", "availability_mailbox_open_cases", M),
    "oldest_open": kpi_promql.per("mailbox", "availability_mailbox_oldest_open_business_seconds", M),
    "breached": kpi_promql.per("mailbox", "availability_mailbox_breached_cases", M),
    "breaching_within_hour": kpi_promql.per("mailbox", "availability_mailbox_breaching_within_hour", M),
}

LAST_EVENT = kpi_promql.per(None, "availability_source_last_seen_timestamp_seconds") + " * 1000"


def _tile(title: str, expr: str, legend: str, description: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .with_target(promql(expr, legend=legend))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields(""))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE)
        .justify_mode(cm.BigValueJustifyMode.CENTER)
        .orientation(cm.VizOrientation.AUTO)
        .no_value("–")
    )


def _named_tiles(title: str, expr: str, description: str) -> stat.Panel:
    """One tile per mailbox, named by the mailbox id."""
    return (
        _tile(title, expr, "{{mailbox}}", description)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .orientation(cm.VizOrientation.VERTICAL)
    )


def _per_queue(panel: stat.Panel, agreements: Agreements, thresholds: dict[str, db.ThresholdsConfig]) -> stat.Panel:
    for queue_id in agreements.queues:
        name, props = override(queue_id, thresholds=thresholds_value(thresholds[queue_id]))
        panel = panel.override_by_name(name, props)
    return panel


def build(agreements: Agreements) -> db.Dashboard:
    dashboard = (
        new_dashboard(
            UID,
            TITLE,
            agreements,
            description="Live: köer, handläggare, servicenivå och funktionsbrevlådor (Prometheus).",
            tags=["live"],
        )
        .time("now-1h", "now")
        .refresh("30s")
        .with_variable(queue_variable(agreements))
        .with_variable(mailbox_variable(agreements))
    )
    queues = agreements.queues.values()
    sl_targets = {q.id: target_steps(q.service_level_target) for q in queues}
    ar_targets = {q.id: target_steps(q.answer_rate_target) for q in queues}
    waits = {q.id: age_steps(q.service_level_seconds, WAIT_AMBER_SHARE) for q in queues}

    layout = Layout(dashboard)
    layout.row("${queue:text}", repeat="queue")
    e = QUEUE_EXPRS
    tiles: list[stat.Panel] = [
        _tile("Öppet", e["open"], "{{queue}}", "Om processens telefontid är öppen just nu.")
        .mappings(value_text({"1": ("Öppet", GREEN), "0": ("Stängt", CLOSED)}))
        .thresholds(steps((None, NEUTRAL))),
        _tile("Väntande samtal", e["waiting"], "{{queue}}", "Samtal i kö just nu.")
        .thresholds(steps((None, NEUTRAL)))
        .decimals(0),
        _per_queue(
            _tile(
                "Längsta väntetid",
                e["oldest_wait"],
                "{{queue}}",
                "Den längsta pågående väntetiden. Gul från halva servicenivåtiden, röd när den passerats.",
            ).unit("s"),
            agreements,
            waits,
        ),
        _tile(
            "Lediga handläggare",
            e["agents_ready"],
            "{{queue}}",
            "Inloggade handläggare i läget ready som betjänar kön (visas när kön är öppen).",
        )
        .thresholds(steps((None, RED), (1, GREEN)))
        .decimals(0),
        _per_queue(
            _tile(
                "Servicenivå 30 min",
                e["sl_30m"],
                "{{queue}}",
                "Besvarade inom servicenivåtiden / (besvarade + avbrutna), kontakter avslutade de senaste "
                "30 minuterna; korta avbrott och återuppringningar räknas inte. Röd under målet, gul inom "
                "5 procentenheter över.",
            )
            .unit("percentunit")
            .decimals(0),
            agreements,
            sl_targets,
        ),
        _per_queue(
            _tile(
                "Väntat nästa 30 min",
                e["sl_next_30m"],
                "{{queue}}",
                "Servicenivån som väntas för samtalen de närmaste 30 minuterna (Erlang A): från samtalen "
                "senaste halvtimmen och samma tid tidigare veckor, inloggade handläggare, väntande samtal, "
                "handläggningstid och uppringarnas tålamod. Samma färger som servicenivån.",
            )
            .unit("percentunit")
            .decimals(0),
            agreements,
            sl_targets,
        ),
        _per_queue(
            _tile(
                "Servicenivå idag",
                e["sl_today"],
                "{{queue}}",
                "Samma mått för kontakter som först köade idag (lokal tid).",
            )
            .unit("percentunit")
            .decimals(0),
            agreements,
            sl_targets,
        ),
        _per_queue(
            _tile(
                "Svarsfrekvens 30 min",
                e["ar_30m"],
                "{{queue}}",
                "Besvarade / (besvarade + avbrutna), kontakter avslutade de senaste 30 minuterna.",
            )
            .unit("percentunit")
            .decimals(0),
            agreements,
            ar_targets,
        ),
        _per_queue(
            _tile(
                "Svarsfrekvens idag",
                e["ar_today"],
                "{{queue}}",
                "Samma mått för kontakter som först köade idag (lokal tid).",
            )
            .unit("percentunit")
            .decimals(0),
            agreements,
            ar_targets,
        ),
    ]
    # Nine tiles on the 24 columns: the open flag and the waiting count are narrower.
    for tile, width in zip(tiles, (2, 2, 3, 3, 3, 2, 3, 3, 3), strict=True):
        layout.add(tile, width, 5)

    m = MAILBOX_EXPRS
    oldest = _named_tiles(
        "Äldsta öppna ärende (arbetstid)",
        m["oldest_open"],
        "Arbetstid sedan det äldsta obesvarade ärendet kom in. Gul från 75 % av svarstiden, röd när den passerats.",
    ).unit("s")
    for mailbox in agreements.mailboxes.values():
        name, props = override(
            mailbox.id, thresholds=thresholds_value(age_steps(mailbox.response_target_seconds, 0.75))
        )
        oldest = oldest.override_by_name(name, props)
    layout.row("Funktionsbrevlådor")
    layout.add(
        _named_tiles("Öppna ärenden", m["open_cases"], "Obesvarade ärenden just nu.")
        .thresholds(steps((None, NEUTRAL)))
        .decimals(0),
        12,
        6,
    )
    layout.add(oldest, 12, 6)
    layout.add(
        _named_tiles("Brutna svarstider", m["breached"], "Öppna ärenden som redan passerat sin svarstid.")
        .thresholds(steps((None, GREEN), (1, RED)))
        .decimals(0),
        12,
        6,
    )
    layout.add(
        _named_tiles(
            "Bryter inom en timme",
            m["breaching_within_hour"],
            "Öppna ärenden som passerar sin svarstid inom nästa arbetstimme.",
        )
        .thresholds(steps((None, GREEN), (1, AMBER)))
        .decimals(0),
        12,
        6,
    )
    layout.row("Dataflöde")
    layout.add(
        _tile("Senaste händelse", LAST_EVENT, "", "När strömningen senast tog emot en händelse från någon källa.")
        .unit("dateTimeFromNow")
        .thresholds(steps((None, NEUTRAL))),
        6,
        4,
    )
    return dashboard


def dashboard_json(agreements: Agreements) -> dict[str, object]:
    return to_json(build(agreements))
