"""A scrape's outlook is computed on a thread (stream_jobs/worker/app.py `refresh_outlook`): the
worker's event loop, which stores the batches, keeps running while the Erlang A chains of
overloaded queues are solved, and the scrape shows the same numbers as computed on the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from schemas.agreements import load_agreements
from stream_jobs.core.deriver import Deriver
from stream_jobs.core.live import LiveState
from stream_jobs.core.outlook import Prediction, QueueNow, predict_all
from stream_jobs.core.store import MemoryStore
from stream_jobs.worker import app
from stream_jobs.worker.app import refresh_outlook
from tests.conftest import call, ev

NOW = datetime(2026, 4, 14, 8, 30, tzinfo=UTC)  # Tue 10:30 in Stockholm: the office queues are open
QUEUES = ("leverantorsreskontra", "kundreskontra", "redovisning", "avgifter")


def overloaded() -> LiveState:
    """Each of QUEUES with 12 agents busy and 120 callers waiting, queued over the last 30
    minutes: every one is expected to breach, so each needs its agents counted."""
    agreements = load_agreements()
    live = LiveState(agreements, clock=lambda: NOW)
    deriver = Deriver(MemoryStore(), agreements, track_changes=True)
    events = []
    for q in QUEUES:
        events += [
            ev("agent.state", "2026-04-14T10:00:00+02:00", agent=f"{q}-{a}", state="busy", queues=[q])
            for a in range(12)
        ]
        for i in range(120):
            events += call(f"{q}-{i}", ("queued", f"2026-04-14T10:{i // 4:02d}:{i % 4 * 15:02d}+02:00", {"queue": q}))
    live.observe(events, deriver.apply(events))
    return live


def slow(inputs: Mapping[str, QueueNow]) -> dict[str, Prediction]:
    """At least 0.3 s of the interpreter, whatever the machine: the real work after it."""
    until = time.perf_counter() + 0.3
    while time.perf_counter() < until:
        pass
    return predict_all(inputs)


def test_the_event_loop_runs_while_a_scrape_computes_the_outlook(monkeypatch: pytest.MonkeyPatch) -> None:
    live = overloaded()

    monkeypatch.setattr(app, "predict_all", slow)

    async def scrape() -> tuple[list[float], float, float]:
        ticks, done = [], asyncio.Event()

        async def ticker() -> None:  # a stand-in for the batches the loop stores meanwhile
            while not done.is_set():
                await asyncio.sleep(0.002)
                ticks.append(time.perf_counter())

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        began = time.perf_counter()
        await refresh_outlook(live, asyncio.Lock())
        ended = time.perf_counter()
        done.set()
        await task
        return ticks, began, ended

    ticks, began, ended = asyncio.run(scrape())
    computed = live.predicted(NOW)
    assert computed is not None and set(QUEUES) <= set(computed)
    # On the loop, the ticker could not run until the computation ended: no tick inside it. On a
    # thread it gets the interpreter back every few milliseconds (its 5 ms switch), dozens of
    # times in the 0.3 s or more; 10 leaves room for a busy machine.
    during = sum(began < t < ended for t in ticks)
    assert ended - began >= 0.3 and during >= 10, (ended - began, during)
    # The same numbers as the loop's own computation on a fresh copy of the state.
    assert computed == overloaded().predictions(NOW)
    assert all(computed[q].agents_needed > 0 for q in QUEUES)


def test_scrapes_behind_the_first_find_its_result_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    live, runs = overloaded(), []

    def counted(inputs: Mapping[str, QueueNow]) -> dict[str, Prediction]:
        runs.append(sorted(inputs))
        return predict_all(inputs)

    monkeypatch.setattr(app, "predict_all", counted)

    async def scrapes() -> None:
        lock = asyncio.Lock()
        await asyncio.gather(refresh_outlook(live, lock), refresh_outlook(live, lock))
        await refresh_outlook(live, lock)

    asyncio.run(scrapes())
    assert len(runs) == 1 and set(QUEUES) <= set(runs[0])  # once within PREDICT_EVERY


def test_a_fast_clock_finds_the_outlook_fresh_and_a_failing_model_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo's clock runs ~200× the wall's: the outlook is kept as of when it is ready, so the
    scrape that asked shows it (not computed again on the loop). A model that fails on the
    thread, or inputs that cannot be read, are logged, nothing is kept, and nothing is raised."""
    monkeypatch.setattr(app, "predict_all", slow)
    began = time.perf_counter()
    live = overloaded()
    live.clock = lambda: NOW + timedelta(seconds=200 * (time.perf_counter() - began))
    asyncio.run(refresh_outlook(live, asyncio.Lock()))  # 0.3 s or more: a minute or more on this clock
    assert live.predicted(live.now()) is not None  # what collect reads next

    def failing(inputs: Mapping[str, QueueNow]) -> dict[str, Prediction]:
        raise ValueError("no steady state")

    monkeypatch.setattr(app, "predict_all", failing)
    again = overloaded()
    asyncio.run(refresh_outlook(again, asyncio.Lock()))
    assert again.predicted(NOW) is None
    assert "the outlook failed (ValueError: no steady state)" in caplog.text
    # Nor does a failure reading the inputs stop the page (/metrics never answers 500).
    monkeypatch.setattr(again, "outlook_inputs", failing)
    asyncio.run(refresh_outlook(again, asyncio.Lock()))
    assert again.predicted(NOW) is None and caplog.text.count("the outlook failed") == 2
