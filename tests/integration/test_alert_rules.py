"""The generated alerting files pass Prometheus's and Alertmanager's own checks, and the
rules pass their unit tests (tests/alerts/availability.test.yml) in promtool.

promtool and amtool come with Debian's `prometheus` and `prometheus-alertmanager` packages.
Without them the tests are skipped locally and fail in CI (env CI set; .ci/run sets it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dashboards.alerting.files import ALERTMANAGER_CONFIG, PROMETHEUS_RULES
from dashboards.alerting.rules import rules
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / PROMETHEUS_RULES
RULE_TESTS = ROOT / "tests" / "alerts" / "availability.test.yml"
ALERTMANAGER = ROOT / ALERTMANAGER_CONFIG


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (apt-get install {package})")
    return path


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{output}"
    return output


def test_promtool_accepts_the_rule_file() -> None:
    output = run(tool("promtool", "prometheus"), "check", "rules", RULES)
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_unit_tests_cover_every_rule() -> None:
    text = RULE_TESTS.read_text(encoding="utf-8")
    untested = [rule.alert for rule in rules() if f"alertname: {rule.alert}\n" not in text]
    assert not untested, f"no promtool test for {untested}"
    run(tool("promtool", "prometheus"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_amtool_accepts_the_alertmanager_config() -> None:
    output = run(tool("amtool", "prometheus-alertmanager"), "check-config", ALERTMANAGER)
    assert "SUCCESS" in output
