"""The generated Grafana dashboards: no drift from the code, structure, thresholds from the
agreements, PromQL on exactly the stream worker's metrics (docs/live-metrics.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from availability.cli import main
from availability.cli.generate import ROOT, drifted
from dashboards.grafana.files import OUT_DIR, datasource_type, files, generate, promql_expressions, render, targets
from schemas.agreements import Agreements, load_agreements
from tests.conftest import unavailable

LIVE_METRICS = ROOT / "docs" / "live-metrics.md"


@pytest.fixture(scope="module")
def shipped() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="module")
def dashboards(shipped: Agreements) -> dict[str, dict[str, Any]]:
    return generate(shipped)


def test_committed_json_is_what_the_code_generates(shipped):
    assert drifted(ROOT, files(shipped), (f"{OUT_DIR}/*.json",)) == [], (
        "dashboards/generated is out of date: run availability generate"
    )


def test_check_reports_drift_and_writing_fixes_it(tmp_path, capsys):
    assert main(["generate", "--check", "--root", str(tmp_path)]) == 1  # nothing written yet
    assert main(["generate", "--root", str(tmp_path)]) == 0
    assert main(["generate", "--check", "--root", str(tmp_path)]) == 0
    written = sorted((tmp_path / OUT_DIR).iterdir())
    assert [p.name for p in written] == sorted(p.name for p in (ROOT / OUT_DIR).glob("*.json"))
    for path in written:
        assert path.read_bytes() == (ROOT / OUT_DIR / path.name).read_bytes()
    wall = tmp_path / OUT_DIR / "availability-wall.json"
    wall.write_text(wall.read_text().replace("Väntande samtal", "Väntande"), encoding="utf-8")
    (tmp_path / OUT_DIR / "old.json").write_text("{}")
    capsys.readouterr()
    assert main(["generate", "--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "availability-wall.json" in err and "old.json" in err


def test_generation_is_deterministic(shipped, dashboards):
    assert [render(d) for d in generate(shipped).values()] == [render(d) for d in dashboards.values()]
    text = render(dashboards["availability-wall.json"])
    assert json.loads(text) == dashboards["availability-wall.json"] and text.endswith("}\n")


def test_dashboards_are_well_formed(dashboards):
    assert {d["uid"] for d in dashboards.values()} == {
        "availability-wall",
        "availability-history",
        "availability-mailbox",
    }
    for dashboard in dashboards.values():
        assert dashboard["timezone"] == "Europe/Stockholm" and dashboard["schemaVersion"] >= 41
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
            if panel["type"] == "row":
                assert panel["collapsed"] is False and panel["panels"] == []
                continue
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and all(refs) and len(refs) == len(set(refs)), panel["title"]
            assert panel["title"] and panel.get("description")
        for panel, target in targets(dashboard):
            assert target["datasource"] == panel["datasource"]
            assert (datasource_type(panel, target), target["datasource"]["uid"]) in {
                ("prometheus", "prometheus"),
                ("grafana-clickhouse-datasource", "clickhouse"),
            }


def _variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    return variable


def test_template_variables_list_the_agreements(shipped, dashboards):
    for file, names in {
        "availability-wall.json": ("queue", "mailbox"),
        "availability-history.json": ("queue", "mailbox"),
        "availability-mailbox.json": ("mailbox",),
    }.items():
        for name in names:
            variable = _variable(dashboards[file], name)
            ids = list(shipped.queues if name == "queue" else shipped.mailboxes)
            assert variable["type"] == "custom" and variable["multi"] and variable["includeAll"]
            assert [o["value"] for o in variable["options"]] == ["$__all", *ids]
            assert variable["query"].count(" : ") == len(ids)


def test_wall_repeats_a_row_per_process(dashboards):
    wall = dashboards["availability-wall.json"]
    rows = [p for p in wall["panels"] if p["type"] == "row"]
    assert rows[0]["repeat"] == "queue" and rows[0]["title"] == "${queue:text}"
    per_queue = wall["panels"][1 : wall["panels"].index(rows[1])]
    assert len(per_queue) == 9 and sum(p["gridPos"]["w"] for p in per_queue) == 24
    for panel in per_queue:
        assert panel["type"] == "stat" and panel["options"]["colorMode"] == "background"
        [target] = panel["targets"]
        assert target["instant"] is True and target["legendFormat"] == "{{queue}}"
        assert 'queue=~"$queue"' in target["expr"]


def _steps(panel: dict[str, Any], name: str) -> list[tuple[float | None, str]]:
    [props] = [o["properties"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == name]
    [thresholds] = [p["value"] for p in props if p["id"] == "thresholds"]
    return [(s["value"], s["color"]) for s in thresholds["steps"]]


def test_wall_thresholds_come_from_the_agreements(shipped, dashboards):
    panels = {p.get("title"): p for p in dashboards["availability-wall.json"]["panels"]}
    for queue in shipped.queues.values():
        for title, target in (
            ("Servicenivå 30 min", queue.service_level_target),
            ("Servicenivå idag", queue.service_level_target),
            ("Svarsfrekvens 30 min", queue.answer_rate_target),
            ("Svarsfrekvens idag", queue.answer_rate_target),
        ):
            assert _steps(panels[title], queue.id) == [
                (None, "red"),
                (pytest.approx(target), "orange"),
                (pytest.approx(target + 0.05), "green"),
            ]
        assert _steps(panels["Längsta väntetid"], queue.id) == [
            (None, "green"),
            (queue.service_level_seconds / 2, "orange"),
            (queue.service_level_seconds, "red"),
        ]
    for mailbox in shipped.mailboxes.values():
        assert _steps(panels["Äldsta öppna ärende (arbetstid)"], mailbox.id)[-1] == (
            mailbox.response_target_seconds,
            "red",
        )


# -- PromQL ---------------------------------------------------------------------------------------


def _documented_aggregations() -> dict[str, str]:
    """metric -> `sum`, `max` or `min`, from the tables of docs/live-metrics.md."""
    found = {}
    for line in LIVE_METRICS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[2] in ("`sum`", "`max`", "`min`"):
            for metric in re.findall(r"availability_\w+", cells[0]):
                found[metric] = cells[2].strip("`")
    return found


def test_promql_uses_only_documented_metrics_with_their_aggregation():
    documented = _documented_aggregations()
    assert len(documented) >= 15
    exprs = promql_expressions(expand=False)
    used = {m for e in exprs for m in re.findall(r"availability_\w+", e)}
    assert used <= set(documented), used - set(documented)
    aggregated = [
        (agg, metric)
        for e in exprs
        for agg, metric in re.findall(r"\b(sum|max|min)(?: by \([^)]*\))? ?\((?:increase\()?(availability_\w+)", e)
    ]
    assert {m for _, m in aggregated} == used  # every series is aggregated across workers
    for agg, metric in aggregated:
        assert agg == documented[metric], f"{metric}: {agg}, docs/live-metrics.md says {documented[metric]}"


def test_promql_expressions_expand_the_variables(shipped):
    raw = promql_expressions(shipped, expand=False)
    expanded = promql_expressions(shipped)
    assert any("$queue" in e for e in raw) and any("$mailbox" in e for e in raw)
    assert not any("$" in e for e in expanded)
    assert any(f'queue=~"({"|".join(shipped.queues)})"' in e for e in expanded)
    assert len(expanded) == len(raw) >= 15


def test_promql_parses_with_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (apt-get install prometheus)")
    rules = [{"record": f"dashboard:expr_{i}:check", "expr": e} for i, e in enumerate(promql_expressions())]
    path = tmp_path / "dashboard_exprs.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


# -- ClickHouse SQL -------------------------------------------------------------------------------


def test_clickhouse_queries_read_final_and_are_bounded_by_the_time_range(dashboards):
    queries = [
        t["rawSql"]
        for d in dashboards.values()
        for p, t in targets(d)
        if datasource_type(p, t) == "grafana-clickhouse-datasource"
    ]
    assert queries
    for sql in queries:
        for table in re.findall(r"FROM (\w+)", sql):
            assert re.search(rf"FROM {table} FINAL\b", sql), f"{table} without FINAL: {sql}"
        assert "$__timeFilter(" in sql, sql
        assert "${queue:sqlstring}" in sql or "${mailbox:sqlstring}" in sql, sql
