"""The warehouse's DDL (schemas/ddl) for a ClickHouse cluster, and the users Grafana and the
workers log in as.

A single server (or chDB) runs the DDL files as written. On a cluster each table `t` becomes a
replicated table `t_local` on every server (`Replicated*MergeTree`, its replicas kept equal
through Keeper) and a `Distributed` table `t` over them, so every query of the project
(`FROM call_contacts FINAL`, `FROM events`, ...) and every insert runs unchanged against `t`.

FINAL (and a ReplacingMergeTree merge) only collapses rows within one shard, so each table's
sharding key is a function of the columns that identify its rows (`SHARDING_KEYS`): every
version of a row lands on the shard that holds the others.

Pure text transforms, no client library: the migrator (stream_jobs/warehouse.py) runs what
`cluster_statements` returns; `availability generate` writes `generated_files()`
(deploy/clickhouse/, whose README says how to apply them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

DEFAULT_CLUSTER = "availability"  # the cluster of deploy/clickhouse/cluster.sql (remote_servers)
DEFAULT_DATABASE = "availability"  # as stream_jobs/warehouse.py DEFAULT_DATABASE
READER = "grafana"  # the users of deploy/compose/clickhouse/availability-users.xml
WRITER = "availability"
LOCAL_SUFFIX = "_local"
# {shard} and {replica} are each server's macros (<macros> in its config); {database} is the
# table's database, so two databases on one cluster never share a Keeper path.
KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/"
REPLICA_NAME = "{replica}"
# The passwords are query parameters, given when the file is applied (README.md), never in it:
# applied without them it fails ("Substitution ... is not set") instead of creating a user with
# a known password.
READER_PASSWORD = "{reader_password:String}"
WRITER_PASSWORD = "{writer_password:String}"
# Grafana's plugin (clickhouse-go) sends max_execution_time = its query timeout + 5 s with every
# query (60 s by default): a timeout up to 295 s in the data source is accepted, none longer.
MAX_EXECUTION_TIME, MAX_EXECUTION_TIME_LIMIT = 60, 300

# The statement Warehouse.migrate() runs before any DDL file (it records the files applied).
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime DEFAULT now())"
    " ENGINE = MergeTree ORDER BY name"
)

# The sharding key of each table: an integer expression of the columns that identify a row, so
# that all its versions (and, for the facts, all rows of one call or thread) share a shard.
SHARDING_KEYS: dict[str, str] = {
    # ORDER BY (kind, toDate(time), key, source, id). By the entity key (call id, agent,
    # mailbox/thread_id): an entity's events, and the duplicates of each, on one shard.
    "events": "cityHash64(key)",
    # ORDER BY call_id. The same key as call_contacts: 006 copies call_facts into call_contacts
    # with INSERT ... SELECT, which ClickHouse may run shard by shard (parallel_distributed_insert_select),
    # so a call's rows must live on the same shard in both tables.
    "call_facts": "cityHash64(call_id)",
    # ORDER BY (first_queued_at, call_id, seq), ReplacingMergeTree(derived_at, deleted). By call,
    # not by contact or time: a call's contacts, their re-derivations and the `deleted` rows that
    # withdraw them (under an old first queued time too) meet.
    "call_contacts": "cityHash64(call_id)",
    # 009 copies call_contacts aside (ORDER BY call_id, seq) and back: the same key.
    "call_contacts_by_call": "cityHash64(call_id)",
    # ORDER BY (opened_at, mailbox, thread_id, seq): a thread's cases together, as its events are.
    "mail_cases": "cityHash64(mailbox, thread_id)",
    "mail_cases_by_thread": "cityHash64(mailbox, thread_id)",
    # ORDER BY (interval_start, queue), ReplacingMergeTree(computed_at): the recomputes of an
    # interval's row meet. A recompute is one INSERT ... SELECT over the Distributed tables, not
    # run shard by shard (parallel_distributed_insert_select is off), so each row is whole.
    "queue_intervals": "cityHash64(queue, interval_start)",
    "mailbox_intervals": "cityHash64(mailbox, interval_start)",
    # ORDER BY load_id, ReplacingMergeTree(finished): the start and finish rows of a load meet.
    "loads": "cityHash64(load_id)",
    # ORDER BY (topic, partition), ReplacingMergeTree(next_offset); read with max() per key.
    "stream_positions": "cityHash64(topic, partition)",
    # ORDER BY (source, id, other_digest): each other version of an event once, whichever shard.
    "event_conflicts": "cityHash64(source, id, other_digest)",
    # ORDER BY (source, origin), ReplacingMergeTree(rejected_at): an input rejected again meets
    # its earlier row.
    "source_rejects": "cityHash64(source, origin)",
    # ORDER BY fingerprint, ReplacingMergeTree(recorded_at): a fingerprint's rows meet.
    "agreements_seen": "cityHash64(fingerprint)",
    # Plain MergeTree, append-only (one row per DDL file), never merged or read with FINAL:
    # any shard will do.
    "schema_migrations": "rand()",
}

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CLUSTER_NAME = re.compile(rf"{_IDENT}\Z")
_CREATE_TABLE = re.compile(rf"CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s*\(", re.I)
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*(?P<engine>[A-Za-z]*MergeTree)\b\s*", re.I)
# A database's name may be quoted, as Warehouse.open writes it (`name`).
_CREATE_DATABASE = re.compile(rf"CREATE\s+DATABASE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT}\b|`[^`]+`)", re.I)
_ALTER_TABLE = re.compile(rf"ALTER\s+TABLE\s+(?P<name>{_IDENT})\s+(?P<commands>\S.*)", re.I | re.S)
_DROP_TABLE = re.compile(rf"DROP\s+TABLE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_IDENT})\s*", re.I)
_INSERT = re.compile(rf"INSERT\s+INTO\s+(?P<name>{_IDENT})\b", re.I)
# ALTER commands that a Distributed table takes (its columns mirror the local table's) ...
_COLUMN_COMMAND = re.compile(r"(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
# ... and those only the local table has: a Distributed table has no index and no mutations.
_INDEX_COMMAND = re.compile(r"(ADD|DROP|MATERIALIZE|CLEAR)\s+INDEX\b", re.I)


class ClusterDDLError(ValueError):
    """A DDL statement the cluster transform does not know: it must be taught, not guessed."""


def statements(sql: str) -> list[str]:
    """The statements of a DDL file without its comments: what Warehouse.migrate() runs
    (stream_jobs/warehouse.py ddl_statements, which `schemas` cannot import)."""
    without_comments = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def ddl_files() -> dict[str, str]:
    """File name -> text of every DDL file, in the order they are applied."""
    ddl = resources.files("schemas") / "ddl"
    names = sorted(f.name for f in ddl.iterdir() if f.name.endswith(".sql"))
    return {name: (ddl / name).read_text(encoding="utf-8") for name in names}


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """One single-server statement (as `statements` or ddl_statements gives it) -> the statements
    that do the same on the cluster, in the order to run them. Raises ClusterDDLError for a
    statement it does not know."""
    _check_cluster(cluster)
    text = statement.strip().rstrip(";").strip()
    if _INSERT.match(text):
        # No ON CLUSTER for data: it runs once, against the Distributed tables (FINAL reads per
        # shard are complete because a call's rows share a shard in every table).
        return [text]
    if re.search(r"\bON\s+CLUSTER\b", text, re.I):
        raise ClusterDDLError(f"{_head(text)}: already ON CLUSTER; the DDL files are written for one server")
    if m := _CREATE_TABLE.match(text):
        return _create_table(text, m, cluster)
    if m := _ALTER_TABLE.fullmatch(text):
        return _alter_table(m.group("name"), m.group("commands"), cluster, text)
    if m := _DROP_TABLE.fullmatch(text):
        ie, name = m.group("ie") or "", m.group("name")
        # The Distributed table first, so nothing reads through it into a dropped table. SYNC:
        # the replicated table's Keeper path is freed now, not ~8 minutes later (Atomic databases).
        return [
            f"DROP TABLE {ie}{name} ON CLUSTER {cluster} SYNC",
            f"DROP TABLE {ie}{_local(name)} ON CLUSTER {cluster} SYNC",
        ]
    if m := _CREATE_DATABASE.match(text):
        return [f"{text[: m.end()]} ON CLUSTER {cluster}{text[m.end() :]}"]
    raise ClusterDDLError(f"{_head(text)}: {_unknown_kind(text)}")


def cluster_ddl(cluster: str = DEFAULT_CLUSTER) -> str:
    """The whole schema for a cluster, in the order Warehouse.migrate() applies it: the
    schema_migrations table, then each DDL file's statements followed by the row that records
    it (so a migrator started later applies none of them again). Applied with `clickhouse-client
    --database DB --queries-file` (deploy/clickhouse/README.md)."""
    _check_cluster(cluster)
    parts = [
        f"-- The warehouse's tables for the ClickHouse cluster `{cluster}` (remote_servers): each table t is a\n"
        f"-- replicated t{LOCAL_SUFFIX} on every server and a Distributed t over them. Generated from\n"
        "-- schemas/ddl/*.sql by schemas/cluster.py (`availability generate`); do not edit.\n"
        "-- Apply with the database selected: deploy/clickhouse/README.md.\n",
        "-- schema_migrations (stream_jobs/warehouse.py, Warehouse.migrate)\n"
        + _render(cluster_statements(SCHEMA_MIGRATIONS_DDL, cluster)),
    ]
    for name, sql in ddl_files().items():
        body = [s for statement in statements(sql) for s in cluster_statements(statement, cluster)]
        body.append(f"INSERT INTO schema_migrations (name) VALUES ('{name}')")
        parts.append(f"-- schemas/ddl/{name}\n" + _render(body))
    return "\n".join(parts)


# -- users ---------------------------------------------------------------------------------


def readonly_user_sql(
    user: str = READER, database: str = DEFAULT_DATABASE, cluster: str | None = None, *, readonly: Literal[1, 2] = 2
) -> str:
    """The read-only user of Grafana's ClickHouse data source: SELECT on the database only.

    readonly = 2: reads, and settings changed per query (the plugin's client sets
    max_execution_time on every query, which readonly = 1 refuses), but no write, no DDL, and
    not `readonly` itself. max_execution_time is bounded. `readonly=1` instead lets it change
    max_execution_time only (CHANGEABLE_IN_READONLY, which needs the server's
    settings_constraints_replace_previous, as deploy/compose/clickhouse/availability-users.xml)."""
    on = _on_cluster(cluster)
    limit = f"max_execution_time = {MAX_EXECUTION_TIME} MAX {MAX_EXECUTION_TIME_LIMIT}"
    settings = [f"readonly = {readonly}", limit + (" CHANGEABLE_IN_READONLY" if readonly == 1 else "")]
    if cluster:
        settings.append(_PRODUCT_MODE)
    return _user_sql(user, database, on, READER_PASSWORD, settings, ["SELECT"])


def writer_user_sql(user: str = WRITER, database: str = DEFAULT_DATABASE, cluster: str | None = None) -> str:
    """The user of the workers, `process` and the migrations: reads and writes the database's
    tables, creates and alters them (schemas/ddl), and creates the database itself
    (Warehouse.open runs CREATE DATABASE IF NOT EXISTS); nothing outside it. On a cluster also
    the CLUSTER privilege (every ON CLUSTER statement needs it) and the settings that keep the
    Deriver reading what it wrote."""
    on = _on_cluster(cluster)
    settings: list[str] = []
    if cluster:
        settings = [
            # An INSERT into a Distributed table returns once the shards hold the rows, not when
            # they are queued on this server: the next batch's reads must see this batch.
            "distributed_foreground_insert = 1",
            # Reads go to the replica the writes went to (the first healthy one in remote_servers).
            "load_balancing = 'in_order'",
            _PRODUCT_MODE,
        ]
    grants = ["SELECT", "INSERT", "CREATE TABLE", "ALTER TABLE", "DROP TABLE", "CREATE DATABASE"]
    sql = _user_sql(user, database, on, WRITER_PASSWORD, settings, grants)
    if cluster:
        sql += f"GRANT{on} CLUSTER ON *.* TO {_ident(user)};\n"
    return sql


def users_sql(cluster: str | None = None, database: str = DEFAULT_DATABASE) -> str:
    """Both users, as deploy/clickhouse/users.sql (one server) or users-cluster.sql."""
    where = f"every server of the cluster `{cluster}`" if cluster else "one server"
    head = (
        f"-- The warehouse's users on {where}: `{READER}` (Grafana, read-only)\n"
        f"-- and `{WRITER}` (the workers, `process`, the migrations), database `{database}`.\n"
        "-- Generated by schemas/cluster.py (`availability generate`); do not edit.\n"
        "-- The passwords are query parameters, given when applying: deploy/clickhouse/README.md.\n"
    )
    return "\n".join([head, readonly_user_sql(READER, database, cluster), writer_user_sql(WRITER, database, cluster)])


# -- the generated files -------------------------------------------------------------------

OUT_DIR = Path("deploy/clickhouse")  # repository-relative


def generated_files() -> dict[Path, str]:
    """Repository-relative path -> text of every file this module generates."""
    return {
        OUT_DIR / "cluster.sql": cluster_ddl(DEFAULT_CLUSTER),
        OUT_DIR / "users.sql": users_sql(None),
        OUT_DIR / "users-cluster.sql": users_sql(DEFAULT_CLUSTER),
    }


# -- the transforms ------------------------------------------------------------------------

# IN and JOIN subqueries over a Distributed table inside a query over another (the report's
# `caller_ref IN reached`) are refused by default; GLOBAL runs the subquery once, over all shards.
_PRODUCT_MODE = "distributed_product_mode = 'global'"


@dataclass(frozen=True)
class _Span:
    start: int
    end: int  # just after the closing parenthesis


def _create_table(text: str, m: re.Match[str], cluster: str) -> list[str]:
    name, ine = m.group("name"), m.group("ine") or ""
    columns = _parenthesised(text, m.end() - 1)
    engine = _ENGINE.match(text, columns.end)
    if engine is None:
        raise ClusterDDLError(
            f"{_head(text)}: only *MergeTree tables have a cluster form (a local table + Distributed)"
        )
    kind = engine.group("engine")
    if kind.lower().startswith(("replicated", "shared")):
        raise ClusterDDLError(f"{_head(text)}: already {kind}; the DDL files are written for one server")
    if name not in SHARDING_KEYS:
        raise ClusterDDLError(
            f"{_head(text)}: no sharding key for table {name}: add one to SHARDING_KEYS in schemas/cluster.py"
        )
    args = ""
    tail_from = engine.end()
    if text.startswith("(", engine.end()):
        span = _parenthesised(text, engine.end())
        args = text[span.start + 1 : span.end - 1].strip()
        tail_from = span.end
    local = _local(name)
    replicated = ", ".join(x for x in (f"'{KEEPER_PATH}{local}'", f"'{REPLICA_NAME}'", args) if x)
    tail = text[tail_from:].strip()
    if re.search(r"\bAS\s+SELECT\b", tail, re.I):
        raise ClusterDDLError(
            f"{_head(text)}: CREATE TABLE ... AS SELECT would fill every replica; create, then INSERT"
        )
    create_local = (
        f"CREATE TABLE {ine}{local} ON CLUSTER {cluster}\n{text[columns.start : columns.end]}\n"
        f"ENGINE = Replicated{kind}({replicated})" + (f"\n{tail}" if tail else "")
    )
    create_distributed = (
        f"CREATE TABLE {ine}{name} ON CLUSTER {cluster} AS {local}\n"
        f"ENGINE = Distributed('{cluster}', currentDatabase(), {local}, {SHARDING_KEYS[name]})"
    )
    return [create_local, create_distributed]


def _alter_table(name: str, commands_text: str, cluster: str, text: str) -> list[str]:
    commands = _split_commands(commands_text)
    for command in commands:
        if not (_COLUMN_COMMAND.match(command) or _INDEX_COMMAND.match(command)):
            raise ClusterDDLError(
                f"ALTER TABLE {name} {_head(command)}: the cluster DDL knows ADD/DROP/MODIFY/RENAME/COMMENT COLUMN "
                "and ADD/DROP/MATERIALIZE/CLEAR INDEX; teach schemas/cluster.py where this one goes"
            )
    local = f"ALTER TABLE {_local(name)} ON CLUSTER {cluster} " + ", ".join(commands)
    columns = [c for c in commands if _COLUMN_COMMAND.match(c)]
    if not columns:
        return [local]
    distributed = f"ALTER TABLE {name} ON CLUSTER {cluster} " + ", ".join(columns)
    # A column is added below first and dropped above first: the Distributed table never names
    # a column its local tables lack.
    dropping = any(re.match(r"DROP\s+COLUMN\b", c, re.I) for c in columns)
    return [distributed, local] if dropping else [local, distributed]


def _split_commands(text: str) -> list[str]:
    """ALTER's commands: split at the commas outside parentheses and quotes."""
    parts: list[str] = []
    start = 0
    for i, ch, depth in _outside_quotes(text):
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    if any(not p for p in parts):
        raise ClusterDDLError(f"an empty ALTER command in: {_head(text)}")
    return parts


def _parenthesised(text: str, start: int) -> _Span:
    """The balanced parentheses opening at text[start] (quotes respected)."""
    for i, ch, depth in _outside_quotes(text, start):
        if ch == ")" and depth == 0:
            return _Span(start, i + 1)
    raise ClusterDDLError(f"unbalanced parentheses in: {_head(text)}")


def _outside_quotes(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth after it) of each character outside quotes."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'`\"":
            quote = ch
        else:
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth


def _unknown_kind(text: str) -> str:
    if re.match(r"RENAME\b", text, re.I):
        return (
            "RENAME has no cluster form here: the Distributed table names its local table; "
            "write it as CREATE + INSERT ... SELECT + DROP"
        )
    if re.match(r"CREATE\s+(MATERIALIZED\s+)?VIEW\b", text, re.I):
        return "views have no cluster form here: a materialized view goes on the local tables; teach schemas/cluster.py"
    return "the cluster DDL does not know this kind of statement; teach schemas/cluster.py"


def _render(statements: list[str]) -> str:
    """Statements as a file: `;` after each, no trailing blanks (where comments were)."""
    return "".join("\n".join(line.rstrip() for line in s.splitlines()) + ";\n" for s in statements)


def _user_sql(user: str, database: str, on: str, password: str, settings: list[str], grants: list[str]) -> str:
    # No DEFAULT DATABASE: a login into a database that does not exist yet fails, and the
    # writer creates it (Warehouse.open); every client names its database anyway.
    who, db = _ident(user), _ident(database)
    create = f"CREATE USER IF NOT EXISTS {who}{on}\n    IDENTIFIED WITH sha256_password BY {password}"
    if settings:
        create += "\n    SETTINGS " + ", ".join(settings)
    return f"{create};\nGRANT{on} {', '.join(grants)} ON {db}.* TO {who};\n"


def _on_cluster(cluster: str | None) -> str:
    if cluster is None:
        return ""
    _check_cluster(cluster)
    return f" ON CLUSTER {cluster}"


def _check_cluster(cluster: str) -> None:
    if not _CLUSTER_NAME.match(cluster):
        raise ClusterDDLError(f"cluster name {cluster!r}: letters, digits and _ only, as in remote_servers")


def _ident(name: str) -> str:
    if not re.fullmatch(_IDENT, name):
        raise ClusterDDLError(f"{name!r}: letters, digits and _ only")
    return name


def _local(name: str) -> str:
    return name + LOCAL_SUFFIX


def _head(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= 80 else one_line[:77] + "..."
