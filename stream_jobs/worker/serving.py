"""What a worker that holds an embedded warehouse serves beside ingestion: the read-only SQL
interface (reports, Grafana), the control socket (`rederive`) and the holder file that tells
other commands both addresses (stream_jobs/holder.py)."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas.errors import AvailabilityError
from stream_jobs.core.deriver import Deriver
from stream_jobs.holder import announce, withdraw
from stream_jobs.rederive import rederive_steps
from stream_jobs.warehouse import Warehouse
from stream_jobs.worker.control import ControlError, ControlServer, Jobs
from stream_jobs.worker.sql_http import SqlEngine, SqlLimits, SqlServer

log = logging.getLogger(__name__)
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ServingRefused(AvailabilityError):
    """The SQL interface cannot listen where it was told; the message says what to do."""


@dataclass(frozen=True)
class SqlOptions:
    listen: tuple[str, int] | None = ("127.0.0.1", 8123)  # None: no SQL interface
    user: str = "default"
    password: str = ""
    limits: SqlLimits = field(default_factory=SqlLimits)


class Serving:
    def __init__(self, sql: SqlServer | None, control: ControlServer, holder: Path) -> None:
        self.sql, self.control, self.holder = sql, control, holder

    @classmethod
    def start(
        cls,
        warehouse: Warehouse,
        deriver: Deriver,
        jobs: Jobs,
        options: SqlOptions,
        registry: CollectorRegistry,
        timezone: str,
    ) -> Serving | None:
        """Start serving an embedded warehouse (None for a server, which answers for itself)."""
        directory = warehouse.directory
        if directory is None:
            return None
        sql = None
        if options.listen is not None:
            host, port = options.listen
            sql = SqlServer(
                SqlEngine(str(directory), options.limits),
                warehouse.client.database,
                host=host,
                port=port,
                user=options.user,
                password=options.password,
                observe=_sql_metrics(registry),
            )
            try:
                sql.start()
            except OSError as exc:
                raise ServingRefused(
                    f"--sql-listen {host}:{port}: cannot listen ({exc.strerror or exc}); another worker or a "
                    "ClickHouse server may have it: give another address, or `--sql-listen off`"
                ) from None

        def start_job(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
            month, asked = body.get("month"), body.get("fingerprint")
            if month is not None and not (isinstance(month, str) and _MONTH.match(month)):
                raise ControlError(f"month {month!r} is not YYYY-MM")
            if asked and asked != deriver.fingerprint:
                raise ControlError(
                    f"the worker (agreements {deriver.fingerprint[:12]}) runs other agreements than this command "
                    f"({str(asked)[:12]}): restart the worker with the new agreements (`systemctl restart "
                    "availability-stream`), then run `availability rederive` again"
                )
            return rederive_steps(warehouse, deriver, month=month, timezone=timezone)

        control = ControlServer(jobs, start_job)
        control.start()
        command = " ".join(["availability", *sys.argv[1:]]) if sys.argv[1:] else "availability stream"
        holder = announce(directory, command, sql.url if sql else None, str(control.path))
        if sql is not None:
            log.info("read-only SQL (ClickHouse HTTP interface) on %s as user %s", sql.url, options.user)
        return cls(sql, control, holder)

    def stop(self) -> None:
        withdraw(self.holder)
        for part in (self.sql, self.control):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()


def _sql_metrics(registry: CollectorRegistry) -> Any:
    queries = Counter(
        "availability_sql_queries", "Queries to the worker's read-only SQL interface, by outcome", ["outcome"],
        registry=registry,
    )  # fmt: skip
    seconds = Histogram(
        "availability_sql_query_seconds", "Time to answer a query of the read-only SQL interface",
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=registry,
    )  # fmt: skip

    def observe(outcome: str, took: float) -> None:
        queries.labels(outcome).inc()
        seconds.observe(took)

    return observe
