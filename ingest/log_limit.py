"""Rate-limited logging for client libraries that log every failed attempt.

While a broker is away, kafka-python and aiokafka log an ERROR per connection attempt
(~150 lines a second); the one useful fact is "the broker is unreachable, still". This filter
lets the first record of each kind through and holds its repeats for `interval` seconds; the
first one after that says how many were held ("… (and N more like it in the last 60 s)").
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO is their own start-up and connection chatter (Faust and mode list every
# service they start, the Kafka clients every connection): shown only at debug.
CHATTY = ("faust", "mode", "aiokafka", "kafka", "msal", "urllib3", "asyncio")
# kafka-python's warnings that its own event loop ran slow: timing noise, nothing to act on.
NOISY = ("kafka.net.selector",)


def plain_logging(level: str) -> None:
    """Plain lines on stderr (no colour codes, whatever the terminal) at `level` for this
    project's loggers; the chatty libraries stay at warning, the noisy ones at error, unless
    `level` is debug. The long-running commands and the stream worker all log this way."""
    number = logging.getLevelNamesMapping()[level.upper()]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(number)
    for name in CHATTY:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, logging.WARNING))
    for name in NOISY:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, logging.ERROR))


class RepeatSummary(logging.Filter):
    """Passes a (logger, level, message template) once per `interval`; counts what it held back.

    Only records of loggers under `prefixes` are limited. It sits on handlers, since a filter on
    a logger does not see the records its child loggers (`kafka.conn`) propagate.
    """

    def __init__(
        self, prefixes: Iterable[str], interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # key -> (first passed, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        passed = self._seen.get(key)
        if passed is None or now - passed[0] >= self.interval:
            held = passed[1] if passed else 0
            self._seen[key] = (now, 0)
            text = None
            if held:
                text = f"{record.getMessage()} (and {held} more like it in the last {self.interval:.0f} s)"
            if record.exc_info and record.levelno < logging.CRITICAL:
                # A traceback per reconnect says nothing the message does not; keep its last line.
                exc = record.exc_info[1]
                text = f"{text or record.getMessage()} [{type(exc).__name__}: {exc}]" if exc else text
                record.exc_info = None
                record.exc_text = None
            if text is not None:  # formatted now: a '%' in the exception text is not a placeholder
                record.msg, record.args = text, ()
            return True
        self._seen[key] = (passed[0], passed[1] + 1)
        return False


CLIENT_LOGGERS = ("kafka", "aiokafka", "faust", "mode", "aiohttp.server")


def limit_repeats(prefixes: Iterable[str] = CLIENT_LOGGERS, interval: float = 60.0) -> RepeatSummary:
    """Install one RepeatSummary on every handler of the root logger (call after logging is set up)."""
    summary = RepeatSummary(prefixes, interval)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatSummary) for f in handler.filters):
            handler.addFilter(summary)
    return summary
