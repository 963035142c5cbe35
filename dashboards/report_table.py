"""The monthly report as a readable table for a supervisor or controller on a terminal."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from schemas.agreements import Agreements


def _pct(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "–"
    text = f"{value * 100:.1f} %"
    if target is None:
        return text
    return f"[green]{text}[/]" if value >= target else f"[red]{text}[/]"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.0f} s"
    if value < 3 * 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def render(report: dict[str, Any], agreements: Agreements, stream: TextIO) -> None:
    """Green where the promise is kept, red where it is broken; targets beside the values."""
    console = Console(file=stream, width=max(170, Console(file=stream).width), highlight=False)
    calls = Table(title=f"Phone queues, {report['month']}", title_justify="left")
    for col in ("process", "offered", "answered", "abandoned (short)", "flowed out", "answer rate / target",
                "service level / target", "ASA", "p90 wait", "max wait", "out of hours"):  # fmt: skip
        calls.add_column(col, justify="left" if col == "process" else "right", no_wrap=True)
    for qid, m in report["queues"].items():
        q = agreements.queues[qid]
        calls.add_row(
            qid,
            str(m["offered"]),
            str(m["answered"]),
            f"{m['abandoned']} ({m['short_abandoned']})",
            str(m["flowed_out"]),
            f"{_pct(m['answer_rate'], q.answer_rate_target)} / {q.answer_rate_target:.0%}",
            f"{_pct(m['service_level'], q.service_level_target)} / {q.service_level_target:.0%} "
            f"≤{q.service_level_seconds:.0f}s",
            _secs(m["asa_seconds"]),
            _secs(m["wait_p90_seconds"]),
            _secs(m["max_wait_seconds"]),
            str(m["out_of_hours"]),
        )
    console.print(calls)

    mail = Table(title=f"Function mailboxes, {report['month']}", title_justify="left")
    for col in ("mailbox", "received", "answered", "closed", "open", "within target", "breached",
                "median lead / target", "≤ 1 working day", "priority in target"):  # fmt: skip
        mail.add_column(col, justify="left" if col == "mailbox" else "right", no_wrap=True)
    for mid, m in report["mailboxes"].items():
        mb = agreements.mailboxes[mid]
        decided = m["within_target"] + m["breached"]
        share = m["within_target"] / decided if decided else None
        mail.add_row(
            mid,
            str(m["received"]),
            str(m["answered"]),
            str(m["closed_without_reply"]),
            str(m["open_at_end"]),
            f"{m['within_target']} ({_pct(share)})",
            f"[red]{m['breached']}[/]" if m["breached"] else "0",
            f"{_secs(m['median_lead_seconds'])} / {_secs(mb.response_target_seconds)}",
            str(m["answered_within_1_working_day"]),
            f"{m['priority_within_target']}/{m['priority_received']}",
        )
    console.print(mail)
    for load in report.get("incomplete_loads", []):
        console.print(
            f"[bold red]Warning:[/] a load started {load['started_at']} did not finish "
            f"({escape(', '.join(load['files']))}); these numbers may be partial. "
            "Run `availability process` again over those files.",
            markup=True,
        )
    if report.get("conflicting_duplicates"):
        console.print(
            f"[bold red]Warning:[/] {report['conflicting_duplicates']} events shared a source and id with another "
            "of different content (a source breaking the contract); one version of each was kept.",
            markup=True,
        )
    console.print(
        "Service level and answer rate exclude short abandons and callbacks from the base; "
        "lead times count opening hours only. Open cases evaluated at " + report["evaluated_at"] + ".",
        style="dim",
    )
