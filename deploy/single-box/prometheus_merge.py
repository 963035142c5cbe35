"""Merge the single box's scrape jobs into a Prometheus configuration (deploy/single-box/install.sh).

    python3 prometheus_merge.py PROMETHEUS_YML SCRAPE_YML RULE_FILE OUT

Writes to OUT the configuration PROMETHEUS_YML with every job of SCRAPE_YML (replacing a job of
the same name, keeping all others), RULE_FILE under `rule_files` and Alertmanager on
localhost:9093 under `alerting` (when none is configured), and prints `changed` or `unchanged`
(what it read already had all of that: OUT is then a copy of it). Comments of PROMETHEUS_YML are
not kept (YAML round trips drop them); install.sh keeps the original beside it once.
Only the standard library and PyYAML (a dependency of the availability package).
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

import yaml

ALERTMANAGER = "localhost:9093"


def merge(config: dict[str, Any], jobs: list[dict[str, Any]], rule_file: str) -> dict[str, Any]:
    merged = dict(config)
    names = {job["job_name"] for job in jobs}
    kept = [job for job in merged.get("scrape_configs") or [] if job.get("job_name") not in names]
    merged["scrape_configs"] = kept + jobs
    rules = list(merged.get("rule_files") or [])
    if rule_file not in rules:
        rules.append(rule_file)
    merged["rule_files"] = rules
    if not (merged.get("alerting") or {}).get("alertmanagers"):
        merged["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]}
    return merged


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    config_path, scrape_path, rule_file, out = argv
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    with open(scrape_path, encoding="utf-8") as f:
        jobs = yaml.safe_load(f)["scrape_configs"]
    merged = merge(config, jobs, rule_file)
    if merged == config:
        shutil.copyfile(config_path, out)
        print("unchanged")
        return 0
    header = (
        "# Prometheus configuration. The availability jobs, rule file and Alertmanager were merged in by\n"
        "# deploy/single-box/install.sh (prometheus_merge.py); the file as it was before is kept beside\n"
        "# this one as prometheus.yml.before-availability.\n"
    )
    with open(out, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump(merged, f, sort_keys=False, default_flow_style=False, allow_unicode=True)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
