"""Shared test fixtures: agreements like the spec's example, and an event builder."""

from __future__ import annotations

import copy
import importlib
import os
import socket
from itertools import count
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import msgspec
import pytest

from schemas.agreements import Agreements, parse_agreements
from schemas.events import Event, decode

# The spec's example calendar (agreements.md), two queues and one mailbox.
AGREEMENTS: dict[str, Any] = {
    "timezone": "Europe/Stockholm",
    "calendars": {
        "kontor": {
            "holidays": "SE",
            "closed": ["midsommarafton", "julafton", "nyarsafton"],
            "hours": {
                "mon": ["08:00-12:00", "13:00-16:30"],
                "tue": ["08:00-16:30"],
                "wed": ["08:00-16:30"],
                "thu": ["08:00-16:30"],
                "fri": ["08:00-16:00"],
            },
            "reduced": {"valborgsmassoafton": ["08:00-13:00"]},
        }
    },
    "queues": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "service_level_seconds": 60,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        },
        "avgifter": {
            "name": "Avgifter",
            "calendar": "kontor",
            "service_level_seconds": 120,
            "service_level_target": 0.8,
            "answer_rate_target": 0.9,
            "short_abandon_seconds": 5,
        },
    },
    "mailboxes": {
        "kundreskontra": {
            "name": "Kundreskontra",
            "calendar": "kontor",
            "response_target": "8h",
            "priority_response_target": "4h",
        }
    },
}


def agreements_with(**edits: Any) -> Agreements:
    """AGREEMENTS with some values replaced, each named by its path with `__` between the keys:
    `agreements_with(queues__kundreskontra__service_level_seconds=45)`."""
    raw = copy.deepcopy(AGREEMENTS)
    for path, value in edits.items():
        *keys, last = path.split("__")
        node = raw
        for k in keys:
            node = node[k]
        node[last] = value
    return parse_agreements(raw)


SHARED = Path(os.environ.get("AVAILABILITY_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
EXAMPLES = SHARED / "examples"


# -- unavailable: a skip locally, a failure in CI ------------------------------------------------------
#
# A test that needs something outside the code (../shared, a broker, Dovecot, promtool, an optional
# package) and does not find it is skipped on a developer's machine, with the reason (`-rs` prints
# it). In CI (env CI set, as .ci/run does) the same absence is a failure: a CI job must never pass
# by silently testing nothing. Every such place calls unavailable(); nothing else skips.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (tests start servers side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_ci() -> bool:
    """CI is set to anything but an empty, "0", "false" or "no" value (CI=true from .ci/run)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> NoReturn:
    """pytest.fail under CI, pytest.skip otherwise, with the reason."""
    if in_ci():
        pytest.fail(f"{message} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(message)


def shared_examples() -> Path:
    """The spec's examples directory (../shared/examples, or $AVAILABILITY_SHARED/examples)."""
    if not EXAMPLES.is_dir():
        unavailable(f"the spec's examples are not at {EXAMPLES} (set AVAILABILITY_SHARED to the shared directory)")
    return EXAMPLES


@pytest.fixture(scope="session")
def examples() -> Path:
    """shared_examples() as a fixture: `pytestmark = pytest.mark.usefixtures("examples")`."""
    return shared_examples()


def importorfail(module: str, hint: str) -> ModuleType:
    """pytest.importorskip, but through unavailable(): a missing optional package fails in CI."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(f"{module} cannot be imported ({exc}): {hint}")


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI, a missing shared directory stops the run at once, with one line naming the path.

    Many tests read the spec's examples; without them CI would otherwise report a wall of
    identical failures (or, before, pass on skips)."""
    if in_ci() and not EXAMPLES.is_dir():
        raise pytest.UsageError(  # exit code 4, before any test runs
            f"CI is set but the shared directory's examples are missing: {EXAMPLES} "
            f"(AVAILABILITY_SHARED={os.environ.get('AVAILABILITY_SHARED', '<unset>')}; default ../shared)"
        )


@pytest.fixture(scope="session")
def agreements() -> Agreements:
    return parse_agreements(AGREEMENTS)


_ids = count(1)


def ev(type_: str, time: str, source: str = "callguide", id: str | None = None, **data: Any) -> Event:
    """One canonical event, built through the real decoder (so it is valid by the contract)."""
    raw = {
        "specversion": "1.0",
        "id": id or f"t{next(_ids)}",
        "source": source,
        "type": type_,
        "time": time,
        "data": data,
    }
    return decode(msgspec.json.encode(raw))


def call(call_id: str, *steps: tuple[str, str, dict[str, Any]]) -> list[Event]:
    """Events of one call from (type suffix, time, data) steps: ("queued", "…", {"queue": "x"})."""
    return [ev(f"call.{kind}", t, call_id=call_id, **data) for kind, t, data in steps]
