"""The warehouse's DDL for a ClickHouse cluster (schemas/cluster.py): what each statement of the
DDL files becomes, the sharding keys, the users, and the committed files (deploy/clickhouse/).

Pure text; tests/warehouse/test_cluster_ddl_parses.py runs the same statements in ClickHouse."""

from __future__ import annotations

import re
from typing import Any

import pytest

from availability.cli.generate import ROOT, drifted
from schemas import cluster
from schemas.cluster import SHARDING_KEYS, ClusterDDLError, cluster_statements
from stream_jobs.warehouse import Warehouse, ddl_statements

C = "availability"
FILES = cluster.ddl_files()
# Every CREATE TABLE the migrator runs, as a single server gets it: name -> statement.
CREATES = {
    m.group(1): s
    for s in [cluster.SCHEMA_MIGRATIONS_DDL, *(s for sql in FILES.values() for s in cluster.statements(sql))]
    if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
}


def test_statements_are_split_as_the_migrator_splits_them():
    for name, sql in FILES.items():
        assert cluster.statements(sql) == ddl_statements(sql), name


class _Recorder:
    """A client that holds every DDL file already: migrate() only creates schema_migrations."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def command(self, sql: str) -> None:
        self.commands.append(sql)

    def query(self, sql: str) -> Any:
        return type("Result", (), {"result_rows": [(name,) for name in FILES]})()

    def close(self) -> None:
        pass


def test_schema_migrations_is_the_statement_the_migrator_runs():
    client = _Recorder()
    wh = Warehouse(client, "recorder")
    try:
        assert wh.migrate() == []
    finally:
        wh.close()
    assert client.commands == [cluster.SCHEMA_MIGRATIONS_DDL]


def test_the_single_server_ddl_is_left_as_it_is():
    # The migrator of one server runs the files as written: nothing of the cluster is in them.
    for name, sql in FILES.items():
        for statement in ddl_statements(sql):
            assert not re.search(r"ON CLUSTER|Replicated|Distributed|_local\b", statement), (name, statement)


# -- sharding keys ------------------------------------------------------------------------------


def _order_by(create: str) -> set[str]:
    found = re.search(r"ORDER BY \(?(.*?)\)?\s*$", create, re.S)
    assert found, create
    return set(re.findall(r"\w+", found.group(1))) - {"toDate"}


def _key_columns(key: str) -> set[str]:
    return set(re.findall(r"\w+", key)) - {"cityHash64", "rand"}


def test_every_table_has_a_sharding_key_and_no_key_is_left_over():
    assert set(SHARDING_KEYS) == set(CREATES)


@pytest.mark.parametrize("table", sorted(CREATES))
def test_a_sharding_key_uses_only_the_columns_that_identify_a_row(table):
    # ReplacingMergeTree collapses rows with the same sorting key, and only within a shard: a
    # key made of sorting-key columns sends every version of a row to the same shard.
    key, create = SHARDING_KEYS[table], CREATES[table]
    if "ReplacingMergeTree" in create:
        assert _key_columns(key), key
        assert _key_columns(key) <= _order_by(create), (table, key)
        assert key.startswith("cityHash64(")
    else:
        assert key == "rand()"  # plain MergeTree, append-only (schema_migrations)


def test_the_facts_of_a_call_share_the_shard_of_its_events_key():
    # 006 copies call_facts into call_contacts per shard when ClickHouse runs INSERT ... SELECT
    # shard by shard: both tables must place a call on the same shard.
    assert SHARDING_KEYS["call_facts"] == SHARDING_KEYS["call_contacts"] == "cityHash64(call_id)"
    assert SHARDING_KEYS["events"] == "cityHash64(key)"
    assert SHARDING_KEYS["mail_cases"] == "cityHash64(mailbox, thread_id)"


# -- CREATE TABLE ------------------------------------------------------------------------------


def _parts(create: str) -> dict[str, str]:
    m = re.fullmatch(
        r"CREATE TABLE IF NOT EXISTS (?P<name>\w+)(?P<on> ON CLUSTER \w+)?\s*(?P<columns>\(.*\))\s*"
        r"ENGINE = (?P<engine>\w+)(?:\((?P<args>[^)]*)\))?\s*(?P<tail>.*)",
        create,
        re.S,
    )
    assert m, create
    return {k: (v or "") for k, v in m.groupdict().items()}


@pytest.mark.parametrize("table", sorted(CREATES))
def test_a_table_becomes_a_replicated_local_table_and_a_distributed_one(table):
    single = _parts(CREATES[table])
    local, distributed = cluster_statements(CREATES[table], C)
    got = _parts(local)
    assert got["name"] == f"{table}_local" and got["on"] == f" ON CLUSTER {C}"
    assert " ".join(got["columns"].split()) == " ".join(single["columns"].split())
    assert got["engine"] == "Replicated" + single["engine"]
    path, replica, *args = [a.strip() for a in got["args"].split(",")] if got["args"] else []
    assert (path, replica) == (f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local'", "'{replica}'")
    assert ", ".join(args) == single["args"].strip()  # the version (and is_deleted) column kept
    assert got["tail"] == single["tail"]  # PARTITION BY, ORDER BY: unchanged
    assert distributed == (
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {C} AS {table}_local\n"
        f"ENGINE = Distributed('{C}', currentDatabase(), {table}_local, {SHARDING_KEYS[table]})"
    )


def test_call_contacts_by_hand():
    [create] = [s for s in cluster.statements(FILES["006_contract_v2.sql"]) if "call_contacts\n(" in s]
    local, distributed = cluster_statements(create, "prod")
    assert local.startswith(
        "CREATE TABLE IF NOT EXISTS call_contacts_local ON CLUSTER prod\n(\n    call_id          String,"
    )
    assert local.endswith(
        "    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3)\n)\n"
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_contacts_local', "
        "'{replica}', derived_at, deleted)\n"
        "ORDER BY (call_id, seq)"
    )
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS call_contacts ON CLUSTER prod AS call_contacts_local\n"
        "ENGINE = Distributed('prod', currentDatabase(), call_contacts_local, cityHash64(call_id))"
    )


def test_the_engine_arguments_and_the_settings_after_them_are_kept():
    create = "CREATE TABLE loads (load_id String, finished UInt8) ENGINE = ReplacingMergeTree(finished) ORDER BY load_id SETTINGS index_granularity = 1024"
    local, _ = cluster_statements(create, C)
    assert local.endswith(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/loads_local', '{replica}', finished)\n"
        "ORDER BY load_id SETTINGS index_granularity = 1024"
    )
    assert local.startswith("CREATE TABLE loads_local ON CLUSTER availability\n")  # no IF NOT EXISTS added
    local, _ = cluster_statements("CREATE TABLE schema_migrations (name String) ENGINE = MergeTree() ORDER BY name", C)
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/schema_migrations_local', '{replica}')\n"
        in local
    )


# -- ALTER, DROP, INSERT, CREATE DATABASE ------------------------------------------------------


def test_a_column_added_goes_to_the_local_table_then_to_the_distributed_one():
    [add] = [s for s in cluster.statements(FILES["006_contract_v2.sql"]) if s.startswith("ALTER")]
    assert cluster_statements(add, C) == [
        "ALTER TABLE mail_cases_local ON CLUSTER availability ADD COLUMN IF NOT EXISTS working_day_deadline "
        "Nullable(DateTime64(3, 'UTC')) AFTER target_seconds",
        "ALTER TABLE mail_cases ON CLUSTER availability ADD COLUMN IF NOT EXISTS working_day_deadline "
        "Nullable(DateTime64(3, 'UTC')) AFTER target_seconds",
    ]


def test_an_index_goes_to_the_local_table_only():
    add, materialize = [s for s in cluster.statements(FILES["004_loads_and_key_index.sql"]) if s.startswith("ALTER")]
    assert cluster_statements(add, C) == [
        "ALTER TABLE events_local ON CLUSTER availability "
        "ADD INDEX IF NOT EXISTS events_key_bloom key TYPE bloom_filter(0.01) GRANULARITY 1"
    ]
    assert cluster_statements(materialize, C) == [
        "ALTER TABLE events_local ON CLUSTER availability MATERIALIZE INDEX events_key_bloom"
    ]


def test_a_column_dropped_leaves_the_distributed_table_first_and_mixed_commands_are_split():
    assert cluster_statements(
        "ALTER TABLE loads DROP COLUMN command, ADD INDEX i load_id TYPE set(0) GRANULARITY 1", C
    ) == [
        "ALTER TABLE loads ON CLUSTER availability DROP COLUMN command",
        "ALTER TABLE loads_local ON CLUSTER availability DROP COLUMN command, ADD INDEX i load_id TYPE set(0) GRANULARITY 1",
    ]
    assert cluster_statements(
        "ALTER TABLE loads MODIFY COLUMN files Array(String) DEFAULT [], COMMENT COLUMN files 'a, b'", C
    )[1] == (
        "ALTER TABLE loads ON CLUSTER availability MODIFY COLUMN files Array(String) DEFAULT [], COMMENT COLUMN files 'a, b'"
    )


def test_a_dropped_table_goes_with_its_local_table():
    [drop] = [s for s in cluster.statements(FILES["006_contract_v2.sql"]) if s.startswith("DROP")]
    assert cluster_statements(drop, C) == [
        "DROP TABLE IF EXISTS call_facts ON CLUSTER availability SYNC",
        "DROP TABLE IF EXISTS call_facts_local ON CLUSTER availability SYNC",
    ]


def test_a_data_migration_runs_once_against_the_distributed_tables():
    inserts = [s for s in cluster.statements(FILES["006_contract_v2.sql"]) if s.startswith("INSERT")]
    assert len(inserts) == 2
    for insert in inserts:
        assert cluster_statements(insert, C) == [insert]


def test_a_database_is_created_on_the_cluster():
    assert cluster_statements("CREATE DATABASE IF NOT EXISTS availability", C) == [
        "CREATE DATABASE IF NOT EXISTS availability ON CLUSTER availability"
    ]
    assert cluster_statements("CREATE DATABASE IF NOT EXISTS `test-1`", C) == [  # as Warehouse.open writes it
        "CREATE DATABASE IF NOT EXISTS `test-1` ON CLUSTER availability"
    ]
    assert cluster_statements("CREATE DATABASE x ENGINE = Atomic", "c2") == [
        "CREATE DATABASE x ON CLUSTER c2 ENGINE = Atomic"
    ]


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("RENAME TABLE loads TO loads_old", "RENAME has no cluster form"),
        ("CREATE MATERIALIZED VIEW v TO loads AS SELECT * FROM events", "views have no cluster form"),
        ("CREATE VIEW v AS SELECT 1", "views have no cluster form"),
        ("TRUNCATE TABLE loads", "does not know this kind of statement"),
        ("OPTIMIZE TABLE loads FINAL", "does not know this kind of statement"),
        ("ALTER TABLE loads UPDATE finished = 1 WHERE 1", "ALTER TABLE loads UPDATE"),
        ("ALTER TABLE events MODIFY TTL toDate(time) + INTERVAL 1 YEAR", "knows ADD/DROP/MODIFY/RENAME/COMMENT COLUMN"),
        ("ALTER TABLE loads ADD COLUMN x UInt8, DELETE WHERE 1", "DELETE WHERE 1"),
        (
            "CREATE TABLE new_facts (a String) ENGINE = ReplacingMergeTree ORDER BY a",
            "no sharding key for table new_facts",
        ),
        ("CREATE TABLE loads (a String) ENGINE = Memory", "only *MergeTree tables"),
        ("CREATE TABLE loads (a String) ENGINE = ReplicatedMergeTree ORDER BY a", "already ReplicatedMergeTree"),
        (
            "CREATE TABLE loads (a String) ENGINE = MergeTree ORDER BY a AS SELECT 'x'",
            "AS SELECT would fill every replica",
        ),
        ("CREATE TABLE loads AS events", "does not know this kind"),
        ("CREATE TABLE other.loads (a String) ENGINE = MergeTree ORDER BY a", "does not know this kind"),
        ("ALTER TABLE loads ON CLUSTER x ADD COLUMN a UInt8", "already ON CLUSTER"),
        ("SELECT 1", "does not know this kind of statement"),
    ],
)
def test_a_statement_the_transform_does_not_know_is_refused(statement, says):
    with pytest.raises(ClusterDDLError, match=re.escape(says)):
        cluster_statements(statement, C)


@pytest.mark.parametrize("name", ["", "my-cluster", "{cluster}", "a b", "c;DROP"])
def test_a_cluster_name_must_be_an_identifier(name):
    with pytest.raises(ClusterDDLError, match="cluster name"):
        cluster_statements("CREATE DATABASE x", name)
    with pytest.raises(ClusterDDLError, match="cluster name"):
        cluster.cluster_ddl(name)


# -- the whole schema ---------------------------------------------------------------------------


def _file_statements(text: str) -> list[str]:
    return ddl_statements(text)  # the generated files hold no `;` and no `--` inside a statement


def test_the_cluster_schema_is_every_file_in_order_each_recorded_as_applied():
    text = cluster.cluster_ddl(C)
    headers = re.findall(r"^-- schemas/ddl/(\S+)$", text, re.M)
    assert headers == sorted(FILES)
    expected = cluster_statements(cluster.SCHEMA_MIGRATIONS_DDL, C)
    for name, sql in FILES.items():
        expected += [s for statement in cluster.statements(sql) for s in cluster_statements(statement, C)]
        expected.append(f"INSERT INTO schema_migrations (name) VALUES ('{name}')")
    strip = lambda s: "\n".join(line.rstrip() for line in s.splitlines())  # noqa: E731
    assert _file_statements(text) == [strip(s) for s in expected]


def test_every_statement_of_the_cluster_schema_is_on_the_cluster_but_the_data():
    for statement in _file_statements(cluster.cluster_ddl("prod")):
        if statement.startswith("INSERT"):
            assert "ON CLUSTER" not in statement
        else:
            assert " ON CLUSTER prod" in statement, statement
            assert "ON CLUSTER availability" not in statement


# -- users -------------------------------------------------------------------------------------


def test_the_read_only_user():
    sql = cluster.readonly_user_sql("grafana", "availability", None)
    assert sql == (
        "CREATE USER IF NOT EXISTS grafana\n"
        "    IDENTIFIED WITH sha256_password BY {reader_password:String}\n"
        "    SETTINGS readonly = 2, max_execution_time = 60 MAX 300;\n"
        "GRANT SELECT ON availability.* TO grafana;\n"
    )


def test_the_read_only_user_on_a_cluster_runs_distributed_subqueries_globally():
    sql = cluster.readonly_user_sql("grafana", "wh", "prod")
    assert "CREATE USER IF NOT EXISTS grafana ON CLUSTER prod\n" in sql
    assert "SETTINGS readonly = 2, max_execution_time = 60 MAX 300, distributed_product_mode = 'global';" in sql
    assert "GRANT ON CLUSTER prod SELECT ON wh.* TO grafana;" in sql


def test_the_read_only_user_with_readonly_1_may_change_max_execution_time_only():
    sql = cluster.readonly_user_sql("grafana", "availability", None, readonly=1)
    assert "SETTINGS readonly = 1, max_execution_time = 60 MAX 300 CHANGEABLE_IN_READONLY;" in sql


def test_the_writer():
    assert cluster.writer_user_sql("availability", "availability", None) == (
        "CREATE USER IF NOT EXISTS availability\n"
        "    IDENTIFIED WITH sha256_password BY {writer_password:String};\n"
        "GRANT SELECT, INSERT, CREATE TABLE, ALTER TABLE, DROP TABLE, CREATE DATABASE ON availability.* TO availability;\n"
    )
    on_cluster = cluster.writer_user_sql("w", "wh", "prod")
    assert "CREATE USER IF NOT EXISTS w ON CLUSTER prod\n" in on_cluster
    assert (
        "SETTINGS distributed_foreground_insert = 1, load_balancing = 'in_order', distributed_product_mode = 'global';"
        in on_cluster
    )
    assert on_cluster.endswith("GRANT ON CLUSTER prod CLUSTER ON *.* TO w;\n")


def test_no_password_is_written_and_names_are_checked():
    for sql in (cluster.users_sql(None), cluster.users_sql(C)):
        assert re.findall(r"BY ([^;\s]+)", sql) == ["{reader_password:String}", "{writer_password:String}"]
    with pytest.raises(ClusterDDLError):
        cluster.readonly_user_sql("grafana; DROP USER default", "availability", None)
    with pytest.raises(ClusterDDLError):
        cluster.writer_user_sql("w", "avail-ability", None)


# -- the committed files -----------------------------------------------------------------------


def test_the_committed_files_are_what_the_code_generates():
    files = cluster.generated_files()
    assert sorted(str(p) for p in files) == [
        "deploy/clickhouse/cluster.sql",
        "deploy/clickhouse/users-cluster.sql",
        "deploy/clickhouse/users.sql",
    ]
    assert drifted(ROOT, files, stale=()) == [], "run: availability generate"
    assert (ROOT / "deploy/clickhouse/README.md").is_file()
