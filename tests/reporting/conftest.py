"""Reports to render: the spec's worked example (hand-checked numbers) and a simulated week of the
shipped agreements (every process, day and hour has traffic), each built once per session on the
embedded engine through the real replay and report."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboards.report import monthly_report
from ingest.boundary import Boundary
from ingest.pseudonymise import Pseudonymiser
from ingest.simulator import simulate, write_jsonl
from schemas.agreements import Agreements, load_agreements
from stream_jobs.core.deriver import Deriver
from stream_jobs.replay import replay
from stream_jobs.warehouse import Warehouse
from tests.conftest import shared_examples

KEY = b"reporting-tests-key-reporting-tests-key"


def _report(tmp: Path, events: Path, agreements: Agreements, month: str, now: datetime | None) -> dict[str, Any]:
    with Warehouse.open(str(tmp / "wh")) as wh:
        boundary = Boundary(agreements, Pseudonymiser(KEY, agreements))
        replay([events], boundary, Deriver(wh, agreements), lambda r: None, lambda n: None)
        wh.flush()
        return monthly_report(wh, agreements, month, now=now)


@pytest.fixture(scope="session")
def example_agreements() -> Agreements:
    return load_agreements(shared_examples() / "agreements.yaml")


@pytest.fixture(scope="session")
def example_report(tmp_path_factory: pytest.TempPathFactory, example_agreements: Agreements) -> dict[str, Any]:
    """The worked example (../shared/examples): the month of expected-report.json."""
    events = shared_examples() / "events.jsonl"
    return _report(tmp_path_factory.mktemp("example"), events, example_agreements, "2026-04", None)


@pytest.fixture(scope="session")
def shipped_agreements() -> Agreements:
    return load_agreements()


@pytest.fixture(scope="session")
def week_report(tmp_path_factory: pytest.TempPathFactory, shipped_agreements: Agreements) -> dict[str, Any]:
    """A simulated first week of May 2026 (Valborg, 1 May, a weekend) with the shipped agreements,
    reported for May as if on 2026-05-08 (open mail cases judged then)."""
    tmp = tmp_path_factory.mktemp("week")
    events = tmp / "week.jsonl"
    with events.open("wb") as handle:
        write_jsonl(simulate(shipped_agreements, date(2026, 4, 30), 8, seed=7), handle)
    return _report(tmp, events, shipped_agreements, "2026-05", datetime(2026, 5, 8, 12, tzinfo=UTC))
