"""The cluster DDL and the users (schemas/cluster.py, deploy/clickhouse/) in the real engine (chDB).

- Every statement parses (`formatQuery`), the query-parameter passwords included; the users'
  settings and constraints pass the engine's checks, and a password not given stops the file.
- The replicated tables are created by the engine, with Keeper in memory (`testkeeper`) and the
  {shard}/{replica} macros: all tables of two databases, so no two share a Keeper path. chDB
  cannot replicate (clickhouse-local ignores interserver_http_port): its replicas stay read-only,
  so nothing is written to them, and the process is ended right after (its replication threads
  tend to abort it).
- The whole schema runs with the replicated engines replaced by their plain ones and ON CLUSTER
  left out (chDB refuses distributed DDL), over a cluster of this one server: the migrator then
  has nothing to apply, 006 moves a fact through the Distributed tables, FINAL collapses a
  contact's versions, and the monthly report is the one server's report. Over two shards (the
  same server twice, so every row is read twice: only whether a query runs is checked) the
  report needs the users' distributed_product_mode, and every Grafana query runs with the
  read-only user's settings.

Each engine check runs in a child process: its chDB has its own configuration, and one process
holds one chDB."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from availability.cli.generate import ROOT
from schemas import cluster
from stream_jobs.warehouse import Warehouse, ddl_statements

C = cluster.DEFAULT_CLUSTER
CHILD_TIMEOUT = 240
MARK = "RESULT "


def parses(wh: Warehouse, statement: str) -> str:
    """ClickHouse's own formatting of the statement; raises on a syntax error."""
    [(formatted,)] = wh.query("SELECT formatQuery({statement:String})", {"statement": statement})
    return str(formatted)


def test_a_syntax_error_fails_the_check(warehouse: Warehouse):
    with pytest.raises(Exception, match=r"SYNTAX_ERROR|Syntax error"):
        parses(warehouse, "CREATE TABLE t ON CLUSTER c AS t_local ENGINE = Distributed(c, currentDatabase(), t_local,)")


def test_every_statement_of_the_cluster_schema_parses(warehouse: Warehouse):
    statements = ddl_statements(cluster.cluster_ddl(C))
    # 18 CREATE TABLE x 2 (009: 2 copies aside, and 2 guards that make a dropped table again when
    # a stopped run resumes), 8 ALTER, 5 DROP x 2 (006 and 009: old tables, copies), 8 data
    # (copies and fills), 9 files recorded.
    assert len(statements) == 18 * 2 + 8 + 5 * 2 + 8 + 9
    for statement in statements:
        formatted = parses(warehouse, statement)
        if statement.startswith(("CREATE", "ALTER", "DROP")):
            assert f"ON CLUSTER {C}" in formatted, formatted
    engines = [parses(warehouse, s) for s in statements if s.startswith("CREATE TABLE")]
    assert sum("ENGINE = Distributed('availability', currentDatabase(), " in e for e in engines) == 18
    assert (
        sum("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/" in e for e in engines) == 17
    )


@pytest.mark.parametrize("name", ["users.sql", "users-cluster.sql"])
def test_the_users_parse(warehouse: Warehouse, name: str):
    statements = ddl_statements((ROOT / "deploy/clickhouse" / name).read_text(encoding="utf-8"))
    assert [s.split()[0] for s in statements] == ["CREATE", "GRANT", "CREATE", "GRANT"] + (
        ["GRANT"] if "cluster" in name else []
    )
    for statement in statements:
        formatted = parses(warehouse, statement)
        assert ("ON CLUSTER availability" in formatted) == ("cluster" in name), formatted
        if statement.startswith("CREATE USER"):
            assert "IDENTIFIED WITH sha256_password BY {" in formatted  # the parameter, no password


def test_the_read_only_user_with_readonly_1_parses(warehouse: Warehouse):
    for statement in ddl_statements(cluster.readonly_user_sql("grafana", "availability", C, readonly=1)):
        assert "CHANGEABLE_IN_READONLY" in parses(warehouse, statement) or statement.startswith("GRANT")


# -- in the engine --------------------------------------------------------------------------------


def test_the_users_settings_and_password_parameters_are_the_engines(tmp_path: Path):
    # chDB has no writable user storage, so a CREATE USER fails at the very end (code 514) once
    # its password parameter is substituted and its settings and constraints are checked (an
    # unknown setting or value fails before, with its own code).
    result = in_child("users", tmp_path)
    assert result["unset"].startswith("Code: 456."), result["unset"]  # UNKNOWN_QUERY_PARAMETER
    assert result["bogus"].startswith("Code: 115."), result["bogus"]  # UNKNOWN_SETTING: the check is real
    assert len(result["created"]) == 4  # two users, one server and a cluster (ON CLUSTER left out)
    for outcome in result["created"]:
        assert outcome.startswith("Code: 514."), outcome  # ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND


def test_the_replicated_tables_are_created_by_the_engine(tmp_path: Path):
    result = in_child("replicated", tmp_path)
    created = result["created"]
    assert len(created) == 2 * 36  # 18 local + 18 Distributed tables (the copies and guards of 009), in two databases
    engines = {name: (engine, full) for name, engine, full in result["tables"]}
    for table, key in cluster.SHARDING_KEYS.items():
        engine, full = engines[f"{table}_local"]
        assert engine == ("ReplicatedMergeTree" if table == "schema_migrations" else "ReplicatedReplacingMergeTree")
        # {database} is written into the stored definition at creation; {shard} and {replica} stay
        # macros, expanded by each server.
        assert full.startswith(f"{engine}('/clickhouse/tables/{{shard}}/wh/{table}_local', '{{replica}}'")
        engine, full = engines[table]
        assert (engine, full) == ("Distributed", f"Distributed('{C}', 'wh', '{table}_local', {key})")
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wh/call_contacts_local', '{replica}', derived_at, deleted)"
        in (engines["call_contacts_local"][1])
    )
    # The macros expanded: a second table on events_local's Keeper path is refused by that path.
    assert "/clickhouse/tables/01/wh/events_local/replicas/r1" in result["again"], result["again"]
    assert "REPLICA_ALREADY_EXISTS" in result["again"]


def test_the_cluster_schema_runs_and_answers_like_one_server(tmp_path: Path):
    result = in_child("distributed", tmp_path)
    assert result["migrate"] == []  # every file recorded as applied
    # 006 through the Distributed tables: the newer version of the call, its contact and its
    # internal transfer; call_facts and its local table are gone.
    assert result["migrated"] == [["c1", 1, False, "answered"], ["c1", 2, True, "abandoned"]]
    assert result["call_facts"] == 0
    # Written and read through the Distributed table: the newest version, the deleted one left out.
    assert result["final"] == [["c2", 1, "answered"]]
    assert result["engine_full"] == f"Distributed('{C}', 'cl', 'call_contacts_local', cityHash64(call_id))"
    assert result["events"] > 1000
    assert result["report_equal"], "the report over the Distributed tables differs from one server's"
    assert result["two_shards"]["deny"].startswith("Code: 288."), result["two_shards"]["deny"]
    assert "DISTRIBUTED_IN_JOIN_SUBQUERY_DENIED" in result["two_shards"]["deny"]
    assert result["two_shards"]["writer"] == "ran"
    assert result["two_shards"]["grafana_queries"] >= 12


# -- the child processes -----------------------------------------------------------------------

CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  {extra}
  <remote_servers>
    <availability>
      <shard><internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port></replica></shard>
    </availability>
    <two_shards>
      <shard><internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port></replica></shard>
      <shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>9000</port></replica></shard>
    </two_shards>
  </remote_servers>
</clickhouse>
"""
# Keeper in memory, and the macros a server of shard 01 would have.
KEEPER = """<zookeeper><implementation>testkeeper</implementation></zookeeper>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <interserver_http_port>9009</interserver_http_port>"""
_REPLICATED = re.compile(
    r"Replicated(\w*MergeTree)\('/clickhouse/tables/\{shard\}/\{database\}/\w+', '\{replica\}'(?:, )?"
)


def in_child(check: str, tmp_path: Path) -> dict[str, Any]:
    """Run `_child(check)` in a new process; its result line, or the test fails with its output."""
    code = "import sys; from tests.warehouse.test_cluster_ddl_parses import _child; _child(sys.argv[1], sys.argv[2])"
    child = subprocess.Popen(
        [sys.executable, "-c", code, check, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = child.communicate(timeout=CHILD_TIMEOUT)  # the child ends itself after its result
    except subprocess.TimeoutExpired:
        child.kill()
        output, _ = child.communicate()
    for line in output.splitlines():
        if line.startswith(MARK):
            return dict(json.loads(line[len(MARK) :]))
    pytest.fail(f"no result from the {check} check:\n" + "\n".join(output.splitlines()[-40:]))


def _child(check: str, tmp: str) -> None:
    """In the child: run the check, print its result, and end at once (no engine shutdown)."""
    result = {"replicated": _replicated, "distributed": _distributed, "users": _users}[check](Path(tmp))
    print(MARK + json.dumps(result, default=str), flush=True)
    os._exit(0)


def _config(tmp: Path, extra: str) -> Path:
    path = tmp / "config.xml"
    path.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    return path


def _runnable(statement: str, name: str, *, replicated: bool) -> str:
    """A cluster statement as chDB can run it: no ON CLUSTER; without Keeper, no replication."""
    statement = statement.replace(f" ON CLUSTER {name}", "")
    return statement if replicated else _REPLICATED.sub(r"\1(", statement)


def _schema(name: str) -> list[tuple[str, list[str]]]:
    """(section, its statements) of cluster_ddl(name), in order: the DDL files' sections are
    named by the file."""
    sections = re.split(r"^-- (?:schemas/ddl/)?(\S+).*$", cluster.cluster_ddl(name), flags=re.M)
    return [(title, ddl_statements(body)) for title, body in zip(sections[1::2], sections[2::2], strict=True)]


def _replicated(tmp: Path) -> dict[str, Any]:
    import chdb

    global _keep  # the connection lives until the process ends: closing it waits on replication
    _keep = conn = chdb.connect(f"{tmp}/data?config-file={_config(tmp, KEEPER)}")
    created = []
    for database in ("wh", "wh2"):
        conn.query(f"CREATE DATABASE {database}")
        conn.query(f"USE {database}")
        for _, statements in _schema(C):
            for statement in statements:
                if statement.startswith("CREATE TABLE"):
                    conn.query(_runnable(statement, C, replicated=True))
                    created.append(statement.split()[5])
    sql = "SELECT name, engine, engine_full FROM system.tables WHERE database = 'wh' ORDER BY name"
    tables = json.loads(str(conn.query(sql, "JSONCompact")))["data"]
    try:
        conn.query("CREATE TABLE wh.again AS wh.events_local")  # the same engine, the same Keeper path
        again = "created"
    except Exception as exc:
        again = str(exc)
    return {"created": created, "tables": tables, "again": again}


_keep: Any = None

# The default user may manage users (the users' statements need it); no storage takes new ones.
USERS_XML = """<clickhouse>
  <profiles><default/></profiles>
  <quotas><default/></quotas>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile>
    <quota>default</quota><access_management>1</access_management></default></users>
</clickhouse>
"""


def _users(tmp: Path) -> dict[str, Any]:
    import chdb

    (tmp / "users.xml").write_text(USERS_XML, encoding="utf-8")
    extra = (
        f'<user_directories replace="replace"><users_xml><path>{tmp}/users.xml</path></users_xml></user_directories>'
    )
    conn = chdb.connect(f"{tmp}/data?config-file={_config(tmp, extra)}")

    def outcome(statement: str) -> str:
        try:
            conn.query(statement)
        except Exception as exc:
            return str(exc)
        return "ran"

    result = {"unset": outcome(ddl_statements(cluster.users_sql(None))[0])}
    conn.query("SET param_reader_password = 'r-0123456789abcdef'")
    conn.query("SET param_writer_password = 'w-0123456789abcdef'")
    result["bogus"] = outcome("CREATE USER u IDENTIFIED WITH sha256_password BY 'x' SETTINGS no_such_setting = 1")
    result["created"] = [
        outcome(s.replace(f" ON CLUSTER {C}", ""))
        for users in (cluster.users_sql(None), cluster.users_sql(C))
        for s in ddl_statements(users)
        if s.startswith("CREATE USER")
    ]
    return result


def _distributed(tmp: Path) -> dict[str, Any]:
    import clickhouse_connect

    from dashboards.report import monthly_report
    from ingest.boundary import Boundary, Rejection
    from ingest.pseudonymise import Pseudonymiser
    from ingest.simulator import simulate
    from schemas.agreements import load_agreements
    from schemas.events import encode
    from stream_jobs.core.deriver import Deriver
    from tests.warehouse.test_dashboard_queries import QUERIES, expand, week_request

    client = clickhouse_connect.get_client(
        dsn=f"chdb://{tmp}/data", chdb_options={"config-file": str(_config(tmp, ""))}
    )
    result: dict[str, Any] = {}

    def apply(database: str, name: str, before_006: str | None = None) -> None:
        client.command(f"CREATE DATABASE {database}")
        client.database = database
        for file, statements in _schema(name):
            if file == "006_contract_v2.sql" and before_006:
                client.command(before_006)
            for statement in statements:
                client.command(_runnable(statement, name, replicated=False))

    # Two versions of a call fact, then 006 copies the newer into call_contacts.
    fact = (
        "INSERT INTO call_facts (call_id, queue, first_queued_at, outcome, queue_open, wait_seconds, internal_queue, "
        "internal_queued_at, internal_outcome, internal_wait, derived_at) VALUES "
        "('c1', 'q', '2026-03-02 08:00:00', 'abandoned', true, 9, [], [], [], [], '2026-03-02 08:01:00'), "
        "('c1', 'q', '2026-03-02 08:00:00', 'answered', true, 5, ['r'], ['2026-03-02 08:05:00'], ['abandoned'], [3], "
        "'2026-03-02 09:00:00')"
    )
    apply("cl", C, before_006=fact)
    wh = Warehouse(client, "cluster")
    result["migrate"] = wh.migrate()
    result["migrated"] = wh.query("SELECT call_id, seq, internal, outcome FROM call_contacts FINAL ORDER BY seq")
    result["call_facts"] = int(client.command("SELECT count() FROM system.tables WHERE name LIKE 'call_facts%'"))
    client.command(
        "INSERT INTO call_contacts (call_id, seq, outcome, first_queued_at, derived_at, deleted) VALUES "
        "('c2', 1, 'waiting', '2026-03-02 10:00:00', '2026-03-02 10:00:01', 0), "
        "('c2', 1, 'answered', '2026-03-02 10:00:00', '2026-03-02 10:01:00', 0), "
        "('c2', 2, 'waiting', '2026-03-02 10:02:00', '2026-03-02 10:02:00', 0), "
        "('c2', 2, 'waiting', '2026-03-02 10:02:00', '2026-03-02 10:03:00', 1)"
    )
    result["final"] = wh.query("SELECT call_id, seq, outcome FROM call_contacts FINAL WHERE call_id = 'c2'")
    [(result["engine_full"],)] = wh.query(
        "SELECT engine_full FROM system.tables WHERE database = 'cl' AND name = 'call_contacts'"
    )
    client.command("TRUNCATE TABLE call_contacts_local")

    # Two simulated days into one server and into the cluster: the same report.
    agreements = load_agreements()
    boundary = Boundary(agreements, Pseudonymiser(b"cluster-ddl-test-key-0123456789", agreements))
    accepted = [boundary.accept(encode(e)) for e in simulate(agreements, date(2026, 3, 2), 2, 20260302)]
    events = [e for e in accepted if not isinstance(e, Rejection)]
    result["events"] = len(events)
    now = datetime(2026, 4, 2, tzinfo=UTC)
    reports = []
    client.command("CREATE DATABASE single")
    for database in ("single", "cl"):
        client.database = database
        store = Warehouse(client, database)
        store.migrate()
        deriver = Deriver(store, agreements)
        for i in range(0, len(events), 2000):
            deriver.apply(events[i : i + 2000])
        store.flush()
        reports.append(json.dumps(monthly_report(store, agreements, "2026-03", now), default=str, sort_keys=True))
    result["report_equal"] = reports[0] == reports[1]

    # Two shards: the report as the writer, every Grafana query as the read-only user.
    apply("two", "two_shards")
    two = Warehouse(client, "two")
    deriver = Deriver(two, agreements)
    deriver.apply(events[:3000])
    two.flush()
    shards: dict[str, Any] = {}
    try:
        monthly_report(two, agreements, "2026-03", now)
        shards["deny"] = "ran"
    except Exception as exc:
        shards["deny"] = str(exc)
    for key, value in _settings(cluster.writer_user_sql("w", "two", C)).items():
        client.set_client_setting(key, value)
    monthly_report(two, agreements, "2026-03", now)
    shards["writer"] = "ran"
    reader = _settings(cluster.readonly_user_sql("g", "two", C))
    for query in QUERIES:
        client.query(expand(str(query.target["rawSql"]), week_request(agreements, query.panel)), settings=reader)
    shards["grafana_queries"] = len(QUERIES)
    result["two_shards"] = shards
    return result


def _settings(user_sql: str) -> dict[str, Any]:
    """The SETTINGS of a CREATE USER as a client's settings (defaults; constraints left out)."""
    found = re.search(r"SETTINGS (.*?);", user_sql)
    assert found, user_sql
    out: dict[str, Any] = {}
    for item in found.group(1).split(", "):
        name, value = re.match(r"(\w+) = ('[^']*'|\d+)", item).groups()  # type: ignore[union-attr]
        out[name] = value.strip("'") if value.startswith("'") else int(value)
    return out


def test_the_migrator_takes_a_cluster_only_with_a_server(tmp_path: Path) -> None:
    """AVAILABILITY_CLICKHOUSE_CLUSTER reaches Warehouse.open; an embedded directory has no cluster,
    which is one line, not a half-made warehouse."""
    from availability.settings import Settings
    from schemas.errors import WarehouseError

    assert Settings(_env_file=None, clickhouse_cluster="availability").clickhouse_cluster == "availability"  # type: ignore[call-arg]
    with pytest.raises(WarehouseError, match="a cluster needs a ClickHouse server URL"):
        Warehouse.open(str(tmp_path / "wh"), cluster="availability")
    assert not (tmp_path / "wh").exists()
