"""The long-running commands' banner and status lines (availability/cli/progress.py)."""

from __future__ import annotations

import io
import time

import pytest

from availability.cli.progress import Console, status_line


def test_a_status_line_says_what_changed_and_the_totals() -> None:
    before = {"events stored": 100, "rejected": 2}
    now = {"events stored": 220, "rejected": 2}
    # 220 - 100 = 120 stored since the last line; nothing new rejected.
    assert status_line(before, now, 60.2) == (
        "in the last 60 s: 120 events stored, 0 rejected; since the start: 220 events stored, 2 rejected"
    )


def test_the_banner_aligns_its_labels() -> None:
    out = io.StringIO()
    Console("stream", out=out).banner("started", [("reads", "Kafka"), ("metrics", "http://127.0.0.1:6066/metrics")])
    assert out.getvalue() == (
        "availability: stream: started\n  reads    Kafka\n  metrics  http://127.0.0.1:6066/metrics\n"
    )


def test_the_ticker_writes_lines_while_the_block_runs_and_quiet_writes_none() -> None:
    counts = {"lines read": 0}
    out = io.StringIO()
    with Console("queue-log", status_every=0.05, out=out).ticking(lambda: dict(counts)):
        counts["lines read"] = 3
        time.sleep(0.3)
    assert "since the start: 3 lines read" in out.getvalue()
    silent = io.StringIO()
    quiet = Console("queue-log", quiet=True, status_every=0.05, out=silent)
    with quiet.ticking(lambda: dict(counts)):
        quiet.banner("following", [("reads", "x")])
        quiet.say("consuming")
        time.sleep(0.2)
    assert silent.getvalue() == ""


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "1e300", "soon"])
def test_a_status_interval_no_thread_can_wait_is_one_line(text: str) -> None:
    """`--status-every inf` passed argparse and then raised OverflowError in the status thread."""
    import argparse

    from availability.cli.args import non_negative

    with pytest.raises(argparse.ArgumentTypeError, match="0 or a positive number of seconds"):
        non_negative(text)
    assert non_negative("0") == 0 and non_negative("2.5") == 2.5
