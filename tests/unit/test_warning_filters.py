"""The `filterwarnings` of pyproject.toml do what their comments claim: a warning raised in this
project's code is an error, the two kafka-python warnings named there are ignored and nothing
more, and a leaked object (ResourceWarning, unraisable exception) fails the test.

The filters are applied here the way pytest applies them (its own parser, in order, later lines
first), on a clean filter list, so a `-W` on the command line cannot change the outcome."""

from __future__ import annotations

import gc
import logging
import socket
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _pytest.config import parse_warning_filter

from tests.conftest import free_port

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
READ_TEXT = "read_text is deprecated. Use files() instead."
OPEN_TEXT = "open_text is deprecated. Use files() instead."


def configured() -> list[str]:
    lines: list[str] = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    return lines


@contextmanager
def project_filters() -> Iterator[list[warnings.WarningMessage]]:
    """Only the configured filters; what is not raised as an error is recorded."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.resetwarnings()
        for line in configured():
            warnings.filterwarnings(*parse_warning_filter(line, escape=False))
        yield shown


def outcome(message: str, category: type[Warning], module: str) -> str:
    """'error', 'shown' or 'ignored': what the configured filters do with this warning."""
    with project_filters() as shown:
        try:
            warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module)
        except category:
            return "error"
    return "shown" if shown else "ignored"


@pytest.mark.parametrize(
    "module",
    [
        "availability.cli",
        "ingest.kafka.publisher",
        "stream_jobs.worker.app",
        "dashboards.report",
        "schemas.events",
        "tests.unit.test_webhook",
        "tests.conftest",
    ],
)
def test_a_warning_from_our_code_is_an_error(module: str) -> None:
    assert outcome("something is deprecated", DeprecationWarning, module) == "error"
    assert outcome("careful", UserWarning, module) == "error"
    # The very message kafka-python's is ignored for: from our module it is still ours.
    assert outcome(READ_TEXT, DeprecationWarning, module) == "error"


def test_only_kafka_pythons_own_read_text_warnings_are_ignored() -> None:
    assert outcome(READ_TEXT, DeprecationWarning, "kafka.protocol.schemas.load_json") == "ignored"
    assert outcome(OPEN_TEXT, DeprecationWarning, "importlib.resources._legacy") == "ignored"
    # Anything else kafka-python warns about is about how we call it (a serializer, a config): error.
    assert outcome("Deprecated Producer config: foo", DeprecationWarning, "kafka.producer.kafka") == "error"
    assert outcome(READ_TEXT, DeprecationWarning, "kafka.producer.kafka") == "error"
    # Another library's warning is not covered by kafka-python's lines.
    assert outcome(READ_TEXT, DeprecationWarning, "faust.app.base") == "error"


def test_the_ignores_match_the_warnings_kafka_python_really_raises() -> None:
    """The real warnings of kafka-python's schema loader (one per message type it loads), re-issued
    under the filters: each is ignored. On Python 3.11 and 3.12 there are two per load (read_text,
    then open_text inside it); if a kafka-python release stops raising them, the ignores are stale
    and this test says so."""
    from kafka.protocol.schemas.load_json import load_json

    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        load_json("ApiVersionsRequest")
    assert [(str(w.message)[: len(READ_TEXT)], w.category) for w in raised] == [
        (READ_TEXT, DeprecationWarning),
        (OPEN_TEXT, DeprecationWarning),
    ], "kafka-python's schema loader no longer warns as pyproject.toml expects: remove or fix the ignores"
    modules = {READ_TEXT: "kafka.protocol.schemas.load_json", OPEN_TEXT: "importlib.resources._legacy"}
    for w in raised:
        module = modules[str(w.message)[: len(READ_TEXT)]]
        assert Path(w.filename).as_posix().endswith(module.replace(".", "/") + ".py")  # where it points
        assert outcome(str(w.message), w.category, module) == "ignored"


def test_a_leaked_object_fails_the_test() -> None:
    """A file, socket or Kafka client left open warns with ResourceWarning from its __del__ (which
    Python ignores by default): an error here, so pytest sees an unraisable exception, which is
    an error too."""
    assert outcome("unclosed file <_io.TextIOWrapper name='x'>", ResourceWarning, "ingest.sources.csv") == "error"
    assert outcome("unclosed <socket.socket fd=3>", ResourceWarning, "asyncio.selector_events") == "error"
    assert outcome("Exception ignored in: <function KafkaProducer.__del__>", pytest.PytestUnraisableExceptionWarning, "_pytest.unraisableexception") == "error"  # fmt: skip
    assert outcome("Exception in thread kafka-python-producer", pytest.PytestUnhandledThreadExceptionWarning, "_pytest.threadexception") == "error"  # fmt: skip


def test_the_sockets_kafka_python_leaves_are_ignored_and_ours_are_not(caplog: pytest.LogCaptureFixture) -> None:
    """A real KafkaProducer against a port nothing listens on (no server needed): kafka-python
    3.0.12 leaves a socket per failed connect and, its constructor failing, its wake-up socketpair
    to the garbage collector. Each such ResourceWarning is ignored; the same warning for a socket
    that listened or connected (ours: the webhook's, a test client's) is an error."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    port = free_port()
    caplog.set_level(logging.CRITICAL, "kafka")  # a captured record would keep the errors, and the sockets, alive
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        with pytest.raises(KafkaError):  # no broker: it gives up after the bootstrap timeout
            KafkaProducer(bootstrap_servers=[f"127.0.0.1:{port}"], bootstrap_timeout_ms=500)
        gc.collect()
    leaked = [str(w.message) for w in raised if w.category is ResourceWarning]
    assert any("family=2" in m for m in leaked), (
        f"kafka-python no longer leaks its sockets: remove the ignores {leaked}"
    )
    for message in leaked:
        assert outcome(message, ResourceWarning, "kafka.protocol.types") == "ignored", message

    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        for ours in (server, client):  # the reprs Python would put in the warning
            assert outcome(f"unclosed {ours!r}", ResourceWarning, "ingest.webhook") == "error", repr(ours)
    assert outcome("unclosed event loop <_UnixSelectorEventLoop running=False closed=False debug=False>", ResourceWarning, "asyncio.base_events") == "error"  # fmt: skip


def test_the_filters_are_the_ones_pytest_runs_with(pytestconfig: pytest.Config) -> None:
    """What this file checks is what pytest was configured with (not a copy that could drift)."""
    assert pytestconfig.getini("filterwarnings") == configured()
    assert configured()[0] == "error"  # first, so every other line is an exception to it
