"""The worker serves what it owns: while `availability stream` holds the embedded warehouse and
reads a real Kafka topic, the monthly report comes through its ClickHouse HTTP interface exactly as
from the directory, clickhouse-go (Grafana's driver) and curl read it, and writes, DDL and a wrong
password are refused. Other commands on the held directory get one line naming the worker and the
URL to use instead."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, free_port, unavailable
from tests.integration import clickhouse_go
from tests.integration.streaming import Worker, cli, environment

pytestmark = pytest.mark.integration

AGREEMENTS = str(EXAMPLES / "agreements.yaml")
MONTH = "2026-04"  # the worked example's
AS_OF = "2027-01-01T00:00:00Z"
USER, PASSWORD = "grafana", "a-read-only-secret"


def report_json(env: dict[str, str], warehouse: str) -> dict[str, object]:
    out = cli(
        env, "report", "--month", MONTH, "--agreements", AGREEMENTS, "--warehouse", warehouse, "--format", "json",
        "--as-of", AS_OF,
    ).stdout  # fmt: skip
    result: dict[str, object] = json.loads(out)
    return result


def curl(url: str, sql: str, user: str = USER, password: str = PASSWORD) -> tuple[int, str, str]:
    """(HTTP status, X-ClickHouse-Exception-Code or "", body) of one query by curl."""
    if shutil.which("curl") is None:
        unavailable("curl not installed (apt-get install curl)")
    done = subprocess.run(
        ["curl", "-sS", "-u", f"{user}:{password}", "--data-binary", sql, "-D", "-", url + "/"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    head, _, body = done.stdout.partition("\n\n")  # text mode made the CRLFs newlines
    status = int(head.split()[1])
    codes = [
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.lower().startswith("x-clickhouse-exception-code")
    ]
    return status, codes[0] if codes else "", body


def test_the_report_and_every_client_read_the_worker_while_it_runs(
    tmp_path: Path, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    go_binary = clickhouse_go.build(tmp_path_factory.getbasetemp() / "clickhouse-go")
    env = environment(
        kafka_bootstrap, f"test-{uuid.uuid4().hex[:8]}.", AVAILABILITY_SQL_USER=USER, AVAILABILITY_SQL_PASSWORD=PASSWORD
    )
    events = EXAMPLES / "events.jsonl"
    cli(env, "topics", "create")
    cli(env, "publish", str(events), "--agreements", AGREEMENTS)
    warehouse = tmp_path / "wh"
    with events.open() as f:
        lines = sum(1 for line in f if line.strip())

    with Worker(env, warehouse, AGREEMENTS, free_port()) as worker:
        worker.wait_for(lambda: worker.processed() >= lines, "every published event stored")
        url = worker.sql_url

        # The directory is held: one line naming the worker and the URL instead of chDB's lock error.
        held = cli(env, "report", "--month", MONTH, "--warehouse", str(warehouse), check=False)
        said = [line for line in held.stderr.splitlines() if line.strip()]
        assert held.returncode != 0 and len(said) == 1, held.stderr
        assert f"pid {worker.process.pid}" in said[0] and f"--warehouse {url}" in said[0], said[0]
        assert "Cannot lock" not in held.stderr and "Traceback" not in held.stderr
        held = cli(env, "process", str(events), "--warehouse", str(warehouse), check=False)
        assert held.returncode != 0 and f"--warehouse {url}" in held.stderr, held.stderr

        # The report through the worker (clickhouse-connect over HTTP; the login comes from the settings).
        served = report_json(env, url)

        # clickhouse-go, as Grafana's ClickHouse data source reads it.
        addr = url.removeprefix("http://")
        counted = clickhouse_go.query(
            go_binary, addr, USER, PASSWORD,
            "SELECT queue, count() AS contacts, min(first_queued_at) AS first FROM call_contacts FINAL "
            "WHERE NOT deleted GROUP BY queue ORDER BY queue",
            database="availability",
        )  # fmt: skip
        assert counted.ok, counted
        assert [c.type for c in counted.columns] == ["LowCardinality(String)", "UInt64", "DateTime64(3, 'UTC')"]
        by_queue = {row[0]: row[1] for row in counted.rows}
        direct = curl(
            url, "SELECT queue, count() FROM call_contacts FINAL WHERE NOT deleted GROUP BY queue ORDER BY queue"
        )
        assert direct[0] == 200
        assert by_queue == {q: int(n) for q, n in (line.split("\t") for line in direct[2].splitlines())}
        assert sum(by_queue.values()) > 0
        empty = clickhouse_go.query(
            go_binary, addr, USER, PASSWORD, "SELECT queue FROM call_contacts WHERE 0", database="availability"
        )
        assert empty.ok and [(c.name, c.type) for c in empty.columns] == [("queue", "LowCardinality(String)")], empty
        assert empty.rows == []
        parameter = clickhouse_go.query(
            go_binary, addr, USER, PASSWORD, "SELECT {q:String} AS q", params={"q": "it's"}, database="availability"
        )
        assert parameter.ok and parameter.rows == [["it's"]], parameter

        # Refused by the engine, seen by both clients: an INSERT, a DROP; and a wrong password.
        for sql in ("INSERT INTO loads (load_id) VALUES ('x')", "DROP TABLE call_contacts"):
            refused = clickhouse_go.query(go_binary, addr, USER, PASSWORD, sql, database="availability", execute=True)
            assert (refused.ok, refused.code) == (False, 164), refused  # READONLY
            status, code, body = curl(url, sql)
            assert (status, code) == (500, "164") and "(READONLY)" in body
        wrong = clickhouse_go.query(go_binary, addr, USER, "not-the-password", "SELECT 1", database="availability")
        assert (wrong.ok, wrong.code) == (False, 516), wrong  # AUTHENTICATION_FAILED
        assert curl(url, "SELECT 1", password="not-the-password")[:2] == (403, "516")

        assert worker.stop() == 0

    # The same report from the directory once the worker is gone: identical, and nothing was written.
    assert served == report_json(env, str(warehouse))
    assert not (warehouse / "holder.json").exists()


def test_rederive_goes_through_the_worker_and_gives_a_fresh_replays_numbers(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A target changes: the worker is restarted with the new agreements, `rederive` on its
    directory goes through it, and the month's report equals a fresh replay with the new
    agreements. Asked with the old agreements, the worker refuses and changes nothing."""
    old = yaml.safe_load((EXAMPLES / "agreements.yaml").read_text(encoding="utf-8"))
    new = copy.deepcopy(old)
    new["queues"]["kundreskontra"]["service_level_seconds"] = 20  # stricter: fewer calls within it
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new), encoding="utf-8")
    new_agreements = str(tmp_path / "new.yaml")
    env = environment(kafka_bootstrap, f"test-{uuid.uuid4().hex[:8]}.")
    events = EXAMPLES / "events.jsonl"
    with events.open() as f:
        lines = sum(1 for line in f if line.strip())
    cli(env, "topics", "create")
    cli(env, "publish", str(events), "--agreements", AGREEMENTS)
    warehouse = tmp_path / "wh"
    with Worker(env, warehouse, AGREEMENTS, free_port()) as worker:
        worker.wait_for(lambda: worker.processed() >= lines, "every published event stored")
        assert worker.stop() == 0
    cli(env, "process", str(events), "--agreements", new_agreements, "--warehouse", str(tmp_path / "fresh"))
    fresh = report_at(env, str(tmp_path / "fresh"), new_agreements)

    with Worker(env, warehouse, new_agreements, free_port()) as worker:  # restarted with the new agreements
        before = report_at(env, worker.sql_url, new_agreements)
        assert before["agreements_changed"] and before != fresh
        refused = cli(env, "rederive", "--month", MONTH, "--agreements", AGREEMENTS, "--warehouse", str(warehouse),
                      check=False)  # fmt: skip
        said = [line for line in refused.stderr.splitlines() if line.startswith("availability: ")]
        assert refused.returncode == 1 and len(said) == 1 and "restart the worker" in said[0], refused.stderr
        assert report_at(env, worker.sql_url, new_agreements) == before

        done = cli(env, "rederive", "--month", MONTH, "--agreements", new_agreements, "--warehouse", str(warehouse))
        assert f"pid {worker.process.pid}" in done.stderr and "rederived" in done.stderr, done.stderr
        after = report_at(env, worker.sql_url, new_agreements)
        assert after["agreements_changed"] == [] and after == fresh
        cli(env, "rederive", "--month", MONTH, "--agreements", new_agreements, "--warehouse", str(warehouse))
        assert report_at(env, worker.sql_url, new_agreements) == fresh  # again: nothing changes
        assert worker.stop() == 0


def report_at(env: dict[str, str], warehouse: str, agreements: str) -> dict[str, object]:
    out = cli(
        env, "report", "--month", MONTH, "--agreements", agreements, "--warehouse", warehouse, "--format", "json",
        "--as-of", AS_OF,
    ).stdout  # fmt: skip
    result: dict[str, object] = json.loads(out)
    result.pop("evaluated_at", None)
    return result
