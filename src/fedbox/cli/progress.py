"""The live view and the closing report of a Flower run, for ``simulate`` and ``run``.

Both commands run a ServerApp the same way and must show it the same way: a table
that updates while messages flow (on a terminal), the full table when it ends, one
row per datasite, and an exit code that says how the run ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fedbox.cli.fl_options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, console
from fedbox.fl.server import ServerOutcome
from fedbox.fl.tally import NodeTally, PhaseTally, RunTally

__all__ = ["Progress", "report_outcome", "run_with_progress"]


def _human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


_TRAFFIC_COLUMNS = ("replies", "errors", "timeouts", "sent", "received")


def _traffic_cells(t: PhaseTally | NodeTally) -> list[str]:
    """The :data:`_TRAFFIC_COLUMNS` cells, alike for a phase and a datasite, so the two
    tables count messages and bytes the same way."""
    return [
        f"{t.replied}/{t.sent}",
        str(t.errors) if t.errors else "",
        str(t.timeouts) if t.timeouts else "",
        _human_size(t.bytes_out),
        _human_size(t.bytes_in),
    ]


def _metrics_summary(metrics: dict[str, float], limit: int = 4) -> str:
    shown = [(k, v) for k, v in metrics.items() if k != "num-examples"][:limit]
    return "  ".join(f"{k}={v:.4g}" for k, v in shown)


class Progress:
    """Live view of a run: one row per (round, message type), totals on top."""

    def __init__(self, tally: RunTally, title: str, n_nodes: int) -> None:
        self.tally = tally
        self.title = title
        self.n_nodes = n_nodes
        self.started = time.monotonic()

    def phase_table(self, last: int | None = 12) -> Table:
        table = Table(expand=False, title=None)
        for column in ("round", "type", *_TRAFFIC_COLUMNS, "seconds"):
            table.add_column(column, justify="right" if column != "type" else "left")
        table.add_column("metrics (mean over replies)")
        with self.tally.lock:
            phases = list(self.tally.phases.values())
        for p in phases[-last:] if last else phases:
            table.add_row(
                p.round or "-",
                p.message_type,
                *_traffic_cells(p),
                "" if p.seconds is None else f"{p.seconds:.3f}",
                _metrics_summary(p.metric_means()),
            )
        return table

    def __rich__(self) -> Group:
        out, inn = self.tally.totals()
        latest = self.tally.latest_phase()
        who = ""
        if latest is not None and latest.sent:
            names = ", ".join(e.split("@")[0] for e in latest.repliers[-6:])
            more = "..." if len(latest.repliers) > 6 else ""
            who = f"  last replies: {names}{more}"
        head = Text(
            f"{self.title}  {self.n_nodes} datasites  {time.monotonic() - self.started:.1f} s  "
            f"sent {_human_size(out)}  received {_human_size(inn)}{who}"
        )
        return Group(head, self.phase_table())


def _node_table(tally: RunTally, exit_codes: dict[str, int | None] | None = None) -> Table:
    table = Table(title="datasites")
    for column in ("datasite", *_TRAFFIC_COLUMNS, "stopped"):
        table.add_column(column)
    if exit_codes is not None:
        table.add_column("exit")
    with tally.lock:
        nodes = list(tally.nodes.values())
    for n in nodes:
        row = [
            n.email,
            *_traffic_cells(n),
            "yes" if n.stopped else "no",
        ]
        if exit_codes is not None:
            code = exit_codes.get(n.email)
            row.append("running" if code is None else str(code))
        table.add_row(*row)
    return table


def run_with_progress(
    title: str, n_nodes: int, body: Callable[[RunTally], ServerOutcome], tally: RunTally
) -> ServerOutcome:
    """Run ``body`` (the ServerApp) under the live view where the output is a terminal,
    then print every phase, so a log or a pipe gets the whole run once, not redraws."""
    progress = Progress(tally, title, n_nodes)
    if console.is_terminal:
        with Live(progress, console=console, refresh_per_second=4, transient=True):
            outcome = body(tally)
    else:
        outcome = body(tally)
    console.print(progress.phase_table(last=None))
    return outcome


def report_outcome(
    outcome: ServerOutcome, tally: RunTally, exit_codes: dict[str, int | None] | None = None
) -> int:
    """Print the datasites and how the run ended; return the command's exit code.
    ``exit_codes`` are the client processes' (``simulate``), shown as a column."""
    console.print(_node_table(tally, exit_codes))
    with tally.lock:
        silent = sorted(n.email for n in tally.nodes.values() if n.timeouts)
        failing = sorted(n.email for n in tally.nodes.values() if n.errors)
    if silent:
        console.print(f"[yellow]did not answer in time:[/yellow] {', '.join(silent)}")
    if failing:
        console.print(f"[yellow]answered with errors:[/yellow] {', '.join(failing)}")
    for email, reason in sorted(outcome.keys_missing.items()):
        console.print(f"[yellow]no usable keys for {email}:[/yellow] {escape(reason)}")
    if outcome.finished:
        console.print(f"[green]ServerApp finished[/green] in {outcome.seconds:.1f} s")
        return EXIT_OK
    if outcome.interrupted:
        console.print(
            f"[red]interrupted[/red] after {outcome.seconds:.1f} s; datasites told to stop"
        )
        return EXIT_INTERRUPTED
    console.print(
        f"[red]ServerApp failed[/red] after {outcome.seconds:.1f} s: "
        f"{type(outcome.error).__name__}: {outcome.error}"
    )
    return EXIT_FAILED
