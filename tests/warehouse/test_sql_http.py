"""The worker's read-only ClickHouse HTTP interface over an embedded warehouse, without Kafka:
what it answers, what the engine refuses, and the limits a client cannot lift.

Each request goes over real HTTP on 127.0.0.1 to the server in this process; the answers are
the engine's own (chDB), so a refusal here is ClickHouse's refusal."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_jobs.holder import Holder, announce, held_by, withdraw
from stream_jobs.warehouse import Warehouse, WarehouseHeld
from stream_jobs.worker.sql_http import CODES, Answer, Query, SqlEngine, SqlLimits, SqlServer

USER, PASSWORD = "grafana", "s3cret"


def serve(path: Path, limits: SqlLimits | None = None) -> SqlServer:
    server = SqlServer(
        SqlEngine(str(path), limits or SqlLimits()), "availability", port=0, user=USER, password=PASSWORD
    )
    server.start()
    return server


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse.open(str(tmp_path / "wh")) as wh:
        wh.client.command(
            "INSERT INTO loads (load_id, started_at, files, command, finished) VALUES ('a', now(), [], 'x', 1)"
        )
        yield wh


@pytest.fixture
def server(warehouse: Warehouse) -> Iterator[SqlServer]:
    assert warehouse.directory is not None
    server = serve(warehouse.directory)
    yield server
    server.stop()


def ask(
    server: SqlServer,
    sql: str = "",
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = (USER, PASSWORD),
    path: str = "/",
) -> tuple[int, dict[str, str], bytes]:
    url = server.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
    request = urllib.request.Request(url, data=sql.encode() if sql else None, headers=headers or {})
    if auth is not None:
        request.add_unredirected_header("Authorization", "Basic " + _basic(*auth))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_select_answers_in_the_format_asked_with_clickhouse_headers(server: SqlServer) -> None:
    status, headers, body = ask(server, "SELECT count() AS n FROM loads", params={"default_format": "JSONEachRow"})
    assert (status, json.loads(body)) == (200, {"n": 1})
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "0"
    assert headers["X-ClickHouse-Query-Id"] and headers["X-ClickHouse-Timezone"]
    # The query's own FORMAT clause wins over default_format, as on a server; the database is the warehouse's.
    status, headers, body = ask(server, "SELECT currentDatabase() FORMAT CSV", params={"default_format": "JSON"})
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b'"availability"\n', "CSV")
    # The query in the URL (GET), with a parameter, in TabSeparated by default.
    status, _, body = ask(server, params={"query": "SELECT {x:UInt8} + 1", "param_x": "41"})
    assert (status, body) == (200, b"42\n")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO loads (load_id) VALUES ('b')",
        "DROP TABLE loads",
        "ALTER TABLE loads DELETE WHERE 1",
        "TRUNCATE TABLE loads",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "SYSTEM FLUSH LOGS",
        "OPTIMIZE TABLE loads FINAL",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "INSERT INTO FUNCTION file('/tmp/availability-sql-test.csv', 'CSV') SELECT 1",
        "SET readonly = 0",
        "SELECT 1 SETTINGS max_execution_time = 1000",
    ],
)
def test_writes_ddl_system_files_and_setting_changes_are_refused_by_the_engine(server: SqlServer, sql: str) -> None:
    status, headers, body = ask(server, sql)
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164", body  # READONLY
    assert b"(READONLY)" in body
    status, _, body = ask(server, "SELECT count() FROM loads")
    assert body == b"1\n"  # nothing changed


def test_into_outfile_is_refused_as_a_server_refuses_it_and_writes_nothing(server: SqlServer, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    for sql in (f"SELECT 1 INTO OUTFILE '{target}'", f"select 1 union all select 2 /* x */ into   outfile '{target}'"):
        status, headers, body = ask(server, sql)
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "358"), body
    assert not target.exists()
    # The words inside a string are not the clause.
    status, _, body = ask(server, "SELECT 'INTO OUTFILE ''x''' FORMAT TSVRaw")
    assert (status, body) == (200, b"INTO OUTFILE 'x'\n")


def test_a_wrong_password_or_user_is_refused_before_anything_runs(server: SqlServer) -> None:
    for auth in ((USER, "wrong"), ("default", ""), ("other", PASSWORD)):
        status, headers, body = ask(server, "SELECT 1", auth=auth)
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516"), body
    status, _, _ = ask(server, "SELECT 1", auth=None)
    assert status == 403
    # The other ways clients log in: headers, and URL parameters.
    assert (
        ask(server, "SELECT 1", auth=None, headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD})[0] == 200
    )
    assert ask(server, "SELECT 1", auth=None, params={"user": USER, "password": PASSWORD})[0] == 200
    # Health checks need no login, as on a server.
    assert ask(server, auth=None, path="/ping")[2] == b"Ok.\n"
    assert ask(server, auth=None)[2] == b"Ok.\n"


def test_a_client_can_lower_the_limits_but_not_raise_them(server: SqlServer) -> None:
    def setting(name: str, **params: str) -> str:
        status, _, body = ask(server, f"SELECT getSetting('{name}')", params=params)
        assert status == 200, body
        return body.decode().strip()

    assert setting("max_execution_time") == "60"
    assert setting("max_execution_time", max_execution_time="10") == "10"  # Grafana's plugin sends its timeout
    assert setting("max_execution_time", max_execution_time="100000") == "60"
    assert setting("max_execution_time", max_execution_time="0") == "60"  # 0 would mean no limit
    assert setting("readonly", readonly="0") == "1"
    assert setting("max_threads", max_threads="64") == str(SqlLimits().max_threads)
    assert setting("output_format_json_quote_64bit_integers", output_format_json_quote_64bit_integers="1") == "true"
    status, headers, _ = ask(server, "SELECT 1", params={"no_such_setting": "1"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")  # UNKNOWN_SETTING, as a server says


def test_a_query_over_its_time_limit_is_stopped_by_the_engine(warehouse: Warehouse) -> None:
    assert warehouse.directory is not None
    server = serve(warehouse.directory, SqlLimits(max_seconds=1))
    try:
        started = time.monotonic()
        status, headers, body = ask(
            server, "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))"
        )
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (408, "159"), body  # TIMEOUT_EXCEEDED
        assert time.monotonic() - started < 10
    finally:
        server.stop()


def test_queries_beyond_the_bound_wait_then_are_refused(warehouse: Warehouse) -> None:
    assert warehouse.directory is not None
    server = serve(warehouse.directory, SqlLimits(max_concurrent=1, queue_seconds=0.5))
    try:
        slow = threading.Thread(target=ask, args=(server, "SELECT sleep(2)"))
        slow.start()
        time.sleep(0.5)  # the slow one holds the only slot
        status, headers, body = ask(server, "SELECT 1")
        slow.join()
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "202"), body
        assert ask(server, "SELECT 1")[2] == b"1\n"  # the slot is free again
    finally:
        server.stop()


def test_the_answer_is_compressed_when_the_client_asks(server: SqlServer) -> None:
    status, headers, body = ask(
        server, "SELECT number FROM numbers(1000)",
        params={"enable_http_compression": "1"}, headers={"Accept-Encoding": "gzip"},
    )  # fmt: skip
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body).splitlines()[-1] == b"999"


def test_the_codes_this_server_raises_are_the_engines(warehouse: Warehouse) -> None:
    names = warehouse.query(f"SELECT arrayMap(c -> errorCodeToName(c), {sorted(CODES.values())})")[0][0]
    assert names == [name for name, _ in sorted(CODES.items(), key=lambda item: item[1])]


def test_another_process_holding_the_directory_is_named_with_the_url_to_use(tmp_path: Path) -> None:
    path = tmp_path / "wh"
    Warehouse.open(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import chdb, sys, time; c = chdb.connect(sys.argv[1]); print(1, flush=True); time.sleep(60)",
         str(path)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"1\n"
        found = held_by(path)
        assert found is not None and found.pid == holder.pid and found.sql_url is None
        with pytest.raises(WarehouseHeld) as refused:
            Warehouse.open(str(path), create=False)
        assert str(refused.value).startswith(f"--warehouse {path}: held by `") and "wait until it ends" in str(
            refused.value
        )
        # A worker's holder file names its SQL interface; one left by another process is ignored.
        record = json.loads(announce(path, "availability stream", "http://127.0.0.1:8123", "/x").read_text())
        assert held_by(path).sql_url is None  # type: ignore[union-attr]  # written by this process, not the holder
        (path / "holder.json").write_text(json.dumps(record | {"pid": holder.pid}))
        line = Holder(holder.pid, "availability stream", "then", "http://127.0.0.1:8123").line(str(path))
        assert str(held_by(path).line(str(path))).split(" (pid")[0] == line.split(" (pid")[0]  # type: ignore[union-attr]
        assert "--warehouse http://127.0.0.1:8123" in held_by(path).line(str(path))  # type: ignore[union-attr]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]  # else the garbage collector does, with a ResourceWarning
    assert held_by(path) is None  # the lock went with the process
    withdraw(path / "holder.json")
    Warehouse.open(str(path), create=False).close()


def test_a_result_without_rows_still_names_its_columns(server: SqlServer) -> None:
    """A server sends a header block for an empty Native result; chDB sends nothing, so clients
    (clickhouse-connect here, clickhouse-go in tests/integration/test_serving.py) saw no columns."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=server.url.replace("http://", f"http://{USER}:{PASSWORD}@"))
    empty = client.query("SELECT load_id, started_at FROM loads WHERE load_id = {id:String}", parameters={"id": "no"})
    assert (empty.column_names, empty.result_rows) == (("load_id", "started_at"), [])
    assert [t.name for t in empty.column_types] == ["String", "DateTime64(3, 'UTC')"]
    one = client.query("SELECT load_id FROM loads")
    assert (one.column_names, one.result_rows) == (("load_id",), [("a",)])
    # Other formats are the engine's own, with or without rows.
    assert ask(server, "SELECT load_id FROM loads WHERE 0 FORMAT JSONCompact")[0] == 200
    assert ask(server, "SELECT load_id FROM loads WHERE 0")[2] == b""  # TabSeparated: nothing, as a server


def test_a_failure_of_the_server_itself_is_answered_in_clickhouses_shape(warehouse: Warehouse) -> None:
    class Broken(SqlEngine):
        def run(self, q: Query) -> Answer:
            raise RuntimeError("a bug")

    assert warehouse.directory is not None
    server = SqlServer(
        Broken(str(warehouse.directory), SqlLimits()), "availability", port=0, user=USER, password=PASSWORD
    )
    server.start()
    try:
        status, headers, body = ask(server, "SELECT 1")
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "1001")
        assert body == b"Code: 1001. DB::Exception: RuntimeError: a bug. (STD_EXCEPTION)\n"
        assert ask(server, auth=None, path="/ping")[2] == b"Ok.\n"  # it goes on answering
    finally:
        server.stop()
