"""clickhouse-go (the Go driver Grafana's ClickHouse data source uses) as a test client.

`build(cache_dir)` compiles tests/integration/clickhouse_go (the `chquery` command) once per
source version; `query(binary, addr, ...)` runs one statement through it over ClickHouse's HTTP
interface and returns what the driver decoded. See clickhouse_go/PROTOCOL.md for what the driver
sends and expects.

    binary = build(tmp_path_factory.getbasetemp() / "go")
    result = query(binary, "127.0.0.1:8123", "grafana", "secret", "SELECT {x:String} AS x", params={"x": "a"})
    assert result.error is None and result.rows == [["a"]]

Values come back as chquery prints them: integers up to 64 bits as ints, wider integers and
decimals as strings, times as RFC 3339 strings with a numeric offset, NaN/±Inf as "nan"/"inf"/"-inf".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import unavailable

SOURCE = Path(__file__).resolve().parent / "clickhouse_go"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Result:
    """One chquery run. `error` is None on success; `code` is the ClickHouse exception code the
    driver parsed (0: an error that is not a server exception, e.g. a decode failure), `status`
    the HTTP status of a non-200 answer."""

    columns: list[Column] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    code: int | None = None
    status: int | None = None
    returncode: int = 0
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as {column name: value}."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build(cache_dir: Path) -> Path:
    """The chquery binary, built into cache_dir unless a build of the same sources is there.

    Uses the committed go.sum (-mod=readonly): the module proxy (or a warm module cache) must
    have the pinned versions. No `go` on PATH is `unavailable`; a failed build raises with Go's output.
    """
    go = shutil.which("go")
    if go is None:
        unavailable("go not installed: the clickhouse-go client test needs Go (https://go.dev/dl/) on PATH")
    binary = cache_dir / f"chquery-{source_hash()}"
    if binary.is_file():
        return binary
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so concurrent sessions never run a half-written file.
    fd, partial = tempfile.mkstemp(prefix=".chquery-", dir=cache_dir)
    os.close(fd)
    try:
        proc = subprocess.run(
            [go, "build", "-mod=readonly", "-o", partial, "."],
            cwd=SOURCE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"go build of {SOURCE} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        os.replace(partial, binary)
    finally:
        Path(partial).unlink(missing_ok=True)
    return binary


def command(
    binary: Path,
    addr: str,
    user: str,
    password: str,
    sql: str,
    *,
    database: str = "default",
    settings: Mapping[str, object] | None = None,
    params: Mapping[str, str] | None = None,
    execute: bool = False,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """chquery's argument list (for a failure message, or to run it by hand)."""
    args = [str(binary), "-addr", addr, "-user", user, "-password", password, "-database", database]
    args += ["-query", sql] if sql else []
    for name, value in (settings or {}).items():
        args += ["-setting", f"{name}={value}"]
    for name, value in (params or {}).items():
        args += ["-param", f"{name}={value}"]
    if execute:
        args.append("-exec")
    return [*args, *extra]


def query(
    binary: Path,
    addr: str,
    user: str,
    password: str,
    sql: str,
    *,
    database: str = "default",
    settings: Mapping[str, object] | None = None,
    params: Mapping[str, str] | None = None,
    execute: bool = False,
    timeout: float = 60,
    extra: tuple[str, ...] = (),
) -> Result:
    """Run `sql` through clickhouse-go over HTTP at addr (host:port).

    settings go to every request as URL parameters (max_execution_time is always sent);
    params fill `{name:Type}` placeholders (sent as `param_name`, parsed by the server as Type);
    execute runs it with conn.Exec (no result set). `extra` is more chquery flags, e.g.
    ("-compression", "none") or ("-ping",) with sql="". A subprocess timeout raises.
    """
    args = command(
        binary,
        addr,
        user,
        password,
        sql,
        database=database,
        settings=settings,
        params=params,
        execute=execute,
        extra=extra,
    )
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    columns: list[Column] = []
    rows: list[list[Any]] = []
    error: str | None = None
    code: int | None = None
    status: int | None = None
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        try:
            message: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"chquery printed a line that is not JSON: {line!r}\nstderr: {proc.stderr}") from exc
        if "columns" in message:
            columns = [Column(c["name"], c["type"]) for c in message["columns"]]
        elif "row" in message:
            rows.append(message["row"])
        elif "error" in message:
            error, code, status = message["error"], message.get("code", 0), message.get("status")
    if proc.returncode != 0 and error is None:
        # Killed, or a usage error (exit 2) that the flag package reports on stderr.
        error = proc.stderr.strip() or f"chquery exited {proc.returncode}"
        code = 0
    return Result(
        columns=columns,
        rows=rows,
        error=error,
        code=code,
        status=status,
        returncode=proc.returncode,
        stderr=proc.stderr,
    )
