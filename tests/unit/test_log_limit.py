"""The repeat summary that keeps a broker outage from flooding the log (issue: ~150 ERROR lines/s)."""

from __future__ import annotations

import logging

from ingest.log_limit import RepeatSummary


def _record(name: str, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), exc_info)


def test_repeats_pass_once_a_minute_and_the_next_one_says_how_many_were_held() -> None:
    now = [0.0]
    summary = RepeatSummary(["kafka"], interval=60, clock=lambda: now[0])
    # 150 identical records within the first minute: only the first passes.
    passed = [summary.filter(_record("kafka.conn", "connect to %s failed")) for _ in range(150)]
    assert passed.count(True) == 1 and passed[0]
    now[0] = 60.0  # a minute later the next one passes and carries the 149 held back
    record = _record("kafka.conn", "connect to %s failed")
    assert summary.filter(record)
    assert record.msg == "connect to %s failed (and 149 more like it in the last 60 s)"


def test_other_loggers_and_other_messages_are_not_limited() -> None:
    summary = RepeatSummary(["kafka"], clock=lambda: 0.0)
    assert all(summary.filter(_record("availability.stream", "stored a batch")) for _ in range(5))
    assert summary.filter(_record("kafka.conn", "first kind"))
    assert summary.filter(_record("kafka.conn", "second kind"))  # a different template passes once too


def test_a_passed_record_loses_its_traceback_but_keeps_the_exception_line() -> None:
    summary = RepeatSummary(["aiokafka"], clock=lambda: 0.0)
    record = _record("aiokafka.conn", "Unable connect", ConnectionRefusedError("refused"))
    assert summary.filter(record)
    assert record.exc_info is None
    assert record.msg == "Unable connect [ConnectionRefusedError: refused]"


def test_a_percent_in_the_exception_text_is_not_a_placeholder() -> None:
    """Review finding: the exception text was appended to the template while the arguments stayed,
    so a '%' in it (a percent-encoded password) broke formatting into a traceback on stderr."""
    summary = RepeatSummary(["kafka"], clock=lambda: 0.0)
    record = logging.LogRecord(
        "kafka.conn", logging.ERROR, __file__, 1, "connect to %s failed", ("broker:9092",),
        (OSError, OSError("refused by http://u:p%40ss@host"), None),
    )  # fmt: skip
    assert summary.filter(record)
    assert record.getMessage() == "connect to broker:9092 failed [OSError: refused by http://u:p%40ss@host]"
