"""Warehouse tests run on the embedded ClickHouse engine (chDB), a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from stream_jobs.warehouse import Warehouse


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def new_warehouse(chdb_dir: str) -> Iterator[Callable[[], Warehouse]]:
    """Opens fresh, empty warehouses (one database each); all are dropped after the test."""
    opened: list[tuple[Warehouse, str]] = []

    def open_one() -> Warehouse:
        database = f"test_{uuid.uuid4().hex[:12]}"
        wh = Warehouse.open(chdb_dir, database=database)
        opened.append((wh, database))
        return wh

    yield open_one
    for wh, database in opened:
        wh.flush()  # writes still on the writer thread would land in a dropped database
        wh.client.command(f"DROP DATABASE IF EXISTS `{database}`")
        wh.close()


@pytest.fixture
def warehouse(new_warehouse: Callable[[], Warehouse]) -> Warehouse:
    return new_warehouse()
