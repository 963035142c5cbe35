"""`availability rederive`: the events stored in the warehouse folded again with the current
agreements, for a month or all (stream_jobs/rederive.py)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from availability.cli.args import SharedOptions
from availability.cli.progress import progress
from availability.cli.rejects import EXIT_REJECTED
from availability.cli.report import month_or_last, resolve_month
from availability.wiring import Wiring

if TYPE_CHECKING:
    from schemas.agreements import Agreements
    from stream_jobs.rederive import RederiveResult


def cmd_rederive(args: argparse.Namespace, wiring: Wiring) -> int:
    from stream_jobs.rederive import rederive
    from stream_jobs.warehouse import WarehouseHeld

    agreements = wiring.agreements(args.agreements)
    month = resolve_month(args.month, agreements, None) if args.month else None
    started = time.monotonic()
    try:
        with wiring.warehouse(args.warehouse, create=False) as wh, ExitStack() as bar:
            deriver = wiring.deriver(wh, agreements)
            result = rederive(wh, deriver, month=month, timezone=str(agreements.timezone), on_progress=_bar(bar))
    except WarehouseHeld as held:
        if held.holder.control is None:  # not a worker: nothing to ask
            raise
        return _through_worker(Path(held.holder.control), held.holder.pid, agreements, month, started)
    return summary(result, month, deriver.fingerprint, time.monotonic() - started)


def _through_worker(socket: Path, pid: int, agreements: Agreements, month: str | None, started: float) -> int:
    """The worker holding the embedded warehouse does it, between its batches, with the agreements it
    runs; it refuses when those are not the ones this command was given."""
    from stream_jobs.core.provenance import derivation_inputs, fingerprint
    from stream_jobs.rederive import RederiveResult
    from stream_jobs.worker.control import request

    wanted = fingerprint(derivation_inputs(agreements))
    print(f"the stream worker (pid {pid}) holds the warehouse: it derives again between its batches", file=sys.stderr)
    with ExitStack() as stack:
        advance = _bar(stack)
        done = request(
            socket,
            "rederive",
            {"month": month, "fingerprint": wanted},
            lambda step: advance(int(step.get("done", 0)), int(step.get("total", 0))),
        )
    return summary(RederiveResult(**done), month, wanted, time.monotonic() - started)


def summary(result: RederiveResult, month: str | None, fingerprint: str, seconds: float) -> int:
    """Say what was derived again (and what could not be, if any); the exit code."""
    months = [month] if month else result.months
    scope = f" of {months[0]}" + (f" to {months[-1]}" if len(months) > 1 else "") if months else ""
    print(
        f"rederived {result.calls} calls and {result.threads} threads{scope} with agreements {fingerprint} "
        f"in {seconds:.1f} s",
        file=sys.stderr,
    )
    if not result.failed:
        return 0
    print(
        f"{result.failed} calls or threads could not be derived with these agreements and keep the facts they had "
        f"(first: {result.first_failure})",
        file=sys.stderr,
    )
    return EXIT_REJECTED


def _bar(stack: ExitStack) -> Callable[[int, int], None]:
    """The progress bar, opened on the first report of progress (the total is known only then)."""
    update: list[Callable[[int], None]] = []

    def advance(done: int, total: int) -> None:
        if not update:
            update.append(stack.enter_context(progress("rederiving", total)))
        update[0](done)

    return advance


def add_command(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "rederive",
        help="fold the stored events again with the current agreements (after a target or calendar changed)",
        description="Derive the facts of a month, or of everything, again from the events the warehouse holds, "
        "with the current agreements, without the original files. Idempotent. A directory that holds no "
        "warehouse is an error.",
    )
    p.add_argument(
        "--month",
        type=month_or_last,
        metavar="YYYY-MM",
        help="the local month whose calls and threads to derive again, or `last` (default: all)",
    )
    options.agreements(p)
    options.warehouse(p)
    p.set_defaults(run=cmd_rederive)
