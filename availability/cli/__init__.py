"""The `availability` command (spec/cli.md): the shell on top of the layers below.

User mistakes end as one line on stderr and a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from pydantic import ValidationError

from availability import __version__
from availability.cli import batch, generate, rederive, report, services, sources, staffing, stream, wall
from availability.cli.args import SharedOptions
from availability.settings import Settings
from availability.wiring import Wiring, say
from schemas.errors import AvailabilityError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        say(_setting_problem(exc))
        return 1
    args = _parser(settings).parse_args(argv)
    _interruptible()
    try:
        code: int = args.run(args, Wiring(settings))
        return code
    except AvailabilityError as exc:
        say(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130


def _interruptible() -> None:
    """Ctrl-C (SIGINT) stops every command with exit 130, also when the process started with
    SIGINT ignored: a shell starts the background jobs of a script that way (`availability
    process … &`), and Python then keeps ignoring it, so a `kill -INT` let the run go on to the
    end and exit 0. A load stopped this way is marked unfinished in the warehouse."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _setting_problem(exc: ValidationError) -> str:
    """The first invalid setting as one line naming its environment variable (not its value,
    which may be a secret)."""
    error = exc.errors()[0]
    name = str(error["loc"][0]).upper() if error["loc"] else "?"
    variable = name if name.startswith(("AVAILABILITY_", "KAFKA_")) else f"AVAILABILITY_{name}"
    return f"invalid setting {variable}: {error['msg']}"


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="availability",
        description="Availability analytics for CallGuide phone queues and function mailboxes.",
    )
    parser.add_argument("--version", action="version", version=f"availability {__version__}")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    options = SharedOptions(settings)
    batch.add_commands(sub, options)
    report.add_command(sub, options)
    rederive.add_command(sub, options)
    stream.add_commands(sub, options)
    services.add_commands(sub, options)
    sources.add_commands(sub, options)
    generate.add_command(sub)
    wall.add_command(sub, options)
    staffing.add_command(sub, options)
    return parser
