"""Building blocks shared by the Grafana dashboards (grafana-foundation-sdk, Grafana 11.6 models).

The datasources are referred to by fixed uids (`prometheus`, `clickhouse`), which
`dashboards/grafana/provision.py` and deploy/grafana/provisioning/datasources create. The SDK ships no
builder for the ClickHouse plugin, so `ClickHouseQuery` is the plugin's (v4) query model.

Everything that depends on the service agreements (template variable values, red/amber/green
thresholds, targets) is read from them when the dashboards are generated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Self

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards.thresholds import target_bounds
from schemas.agreements import Agreements

PROMETHEUS_UID = "prometheus"
CLICKHOUSE_UID = "clickhouse"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
PROMETHEUS = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
CLICKHOUSE = dm.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=CLICKHOUSE_UID)
# The ClickHouse plugin treats a query without pluginVersion >= 4.0.0 as a v3 query and migrates it.
CLICKHOUSE_QUERY_VERSION = "4.0.0"

# Template variables, formatted for ClickHouse as a quoted list (Grafana's `sqlstring` format:
# `'a','b'`, quotes doubled) and for PromQL as the regex Grafana builds for a multi-value variable.
QUEUE_IN = "${queue:sqlstring}"
MAILBOX_IN = "${mailbox:sqlstring}"

GREEN, AMBER, RED = "green", "orange", "red"
NEUTRAL = "blue"


# -- ClickHouse queries -----------------------------------------------------------------------


class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL query of the grafana-clickhouse-datasource plugin (v4 query model)."""

    def __init__(self, raw_sql: str, ref_id: str, fmt: Literal["timeseries", "table"]) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.fmt = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID},
            "editorType": "sql",
            # sqlutil.FormatQueryOption: 0 time series (long frames are widened by the string
            # columns), 1 table.
            "format": 0 if self.fmt == "timeseries" else 1,
            "pluginVersion": CLICKHOUSE_QUERY_VERSION,
            "queryType": self.fmt,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class ClickHouse(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, *, ref_id: str = "A", fmt: Literal["timeseries", "table"] = "timeseries") -> None:
        self._internal = ClickHouseQuery(_sql(raw_sql), ref_id, fmt)

    def build(self) -> ClickHouseQuery:
        return self._internal


def _sql(text: str) -> str:
    lines = text.strip("\n").splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:].rstrip() for line in lines)


def promql(expr: str, *, legend: str = "", ref_id: str = "A", table: bool = False) -> prom.Dataquery:
    """An instant PromQL query (the wall shows current values)."""
    query = prom.Dataquery().expr(" ".join(expr.split())).instant().ref_id(ref_id).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    if table:
        query = query.format(PromQueryFormat.TABLE)
    return query


def bottom_legend() -> cb.VizLegendOptions:
    """The legend every time series and bar chart uses: a list under the graph."""
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def local_day(column: str, tz: str) -> str:
    """The start of the local day (in time zone `tz`) of a timestamp column: the period a
    contact or case belongs to on the daily panels."""
    return f"toStartOfDay(toTimeZone(assumeNotNull({column}), '{tz}'))"


def sql_list(values: Iterable[str]) -> str:
    """A ClickHouse array literal of strings."""
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def num_list(values: Iterable[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


# -- field config -----------------------------------------------------------------------------


def steps(*pairs: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(v, c) for v, c in pairs])


def target_steps(target: float) -> db.ThresholdsConfig:
    """Red below the agreed target, amber within 5 points above it, green above that."""
    red_below, amber_below = target_bounds(target)
    return steps((None, RED), (red_below, AMBER), (amber_below, GREEN))


def age_steps(limit_seconds: float, amber_share: float) -> db.ThresholdsConfig:
    """Green, amber from `amber_share` of the limit, red from the limit (a wait or an age)."""
    return steps((None, GREEN), (round(limit_seconds * amber_share, 3), AMBER), (float(limit_seconds), RED))


def thresholds_value(config: db.ThresholdsConfig) -> dict[str, Any]:
    """A thresholds config as an override property value."""
    value: dict[str, Any] = json.loads(JSONEncoder().encode(config.build()))
    return value


def override(name: str, **properties: Any) -> tuple[str, list[dm.DynamicConfigValue]]:
    """An override by field (display) name: `override("x", unit="s", displayName="X")`."""
    return name, [dm.DynamicConfigValue(id_val=key.replace("__", "."), value=v) for key, v in properties.items()]


def value_text(mapping: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value -> (text, color) mappings."""
    options = {k: dm.ValueMappingResult(text=t, color=c, index=i) for i, (k, (t, c)) in enumerate(mapping.items())}
    return [dm.ValueMap(options=options)]


# -- template variables -----------------------------------------------------------------------


def _custom_variable(name: str, label: str, items: Sequence[tuple[str, str]]) -> db.CustomVariable:
    """A multi-value variable with "All": `text : value` pairs (the agreements' names and ids)."""
    query = ", ".join(f"{_escape(text)} : {value}" for value, text in items)
    options = [dm.VariableOption(selected=True, text="All", value="$__all")]
    options += [dm.VariableOption(selected=False, text=text, value=value) for value, text in items]
    return (
        db.CustomVariable(name)
        .label(label)
        .values(query)
        .multi(True)
        .include_all(True)
        .allow_custom_value(False)
        .options(options)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _escape(text: str) -> str:
    return text.replace(",", "\\,").replace(" : ", " - ")


def queue_variable(agreements: Agreements) -> db.CustomVariable:
    return _custom_variable("queue", "Process", [(q.id, q.name) for q in agreements.queues.values()])


def mailbox_variable(agreements: Agreements) -> db.CustomVariable:
    return _custom_variable("mailbox", "Funktionsbrevlåda", [(m.id, m.name) for m in agreements.mailboxes.values()])


def timezone(agreements: Agreements) -> str:
    return str(agreements.timezone.key)


# -- dashboards -------------------------------------------------------------------------------


class Layout:
    """Places panels on the 24-column grid left to right, wrapping, rows full width."""

    def __init__(self, dashboard: db.Dashboard) -> None:
        self.dashboard = dashboard
        self.x = 0
        self.y = 0
        self.line_height = 0

    def row(self, title: str, *, repeat: str | None = None) -> Self:
        self._newline()
        row = db.Row(title).grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y))
        if repeat:
            row = row.repeat(repeat)
        self.dashboard.with_row(row)
        self.y += 1
        return self

    def add(self, panel: cogbuilder.Builder[dm.Panel], w: int, h: int) -> Self:
        if self.x + w > 24:
            self._newline()
        self.dashboard.with_panel(_Positioned(panel, dm.GridPos(h=h, w=w, x=self.x, y=self.y)))
        self.x += w
        self.line_height = max(self.line_height, h)
        return self

    def _newline(self) -> None:
        if self.x:
            self.y += self.line_height
        self.x = 0
        self.line_height = 0


class _Positioned(cogbuilder.Builder[dm.Panel]):
    def __init__(self, panel: cogbuilder.Builder[dm.Panel], pos: dm.GridPos) -> None:
        self.panel = panel
        self.pos = pos

    def build(self) -> dm.Panel:
        built = self.panel.build()
        built.grid_pos = self.pos
        return built


def to_json(dashboard: db.Dashboard) -> dict[str, Any]:
    """The dashboard JSON with panel ids numbered in grid order (stable, unique)."""
    model = dashboard.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    result: dict[str, Any] = json.loads(JSONEncoder().encode(model))
    return result


def new_dashboard(uid: str, title: str, agreements: Agreements, *, description: str, tags: list[str]) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["availability", *tags])
        .timezone(timezone(agreements))
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .week_start("monday")
    )
