"""``fedbox runs``: the runs an aggregator recorded, their rounds, and their models.

Reads the run records in the aggregator's state dir (:mod:`fedbox.fl.history`), also
while a run is in progress.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedbox.cli.roots import fail
from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.fl.history import RunHistory, list_runs, read_run

__all__ = ["runs_app"]

runs_app = typer.Typer(
    help="Runs this aggregator recorded: list, show, export a round's model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

EmailArg = Annotated[
    str | None, typer.Option("--email", help="The aggregator's identity (an email).")
]
StateArg = Annotated[
    Path | None,
    typer.Option("--state-dir", help="The aggregator's state dir \\[default: $FEDBOX_HOME/EMAIL]."),
]


def state_dir_of(email: str | None, state_dir: Path | None) -> Path:
    """``--state-dir``, else the default state dir of ``--email``; one is needed."""
    if state_dir is not None:
        return state_dir
    if email is None:
        raise fail("give --email (the aggregator) or --state-dir")
    try:
        return Workspace.for_email(email).state_dir
    except FedboxError as exc:
        raise fail(str(exc)) from exc


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@runs_app.command("list")
def list_command(email: EmailArg = None, state_dir: StateArg = None) -> None:
    """Every recorded run, newest first."""
    runs = list_runs(state_dir_of(email, state_dir))
    if not runs:
        console.print("no runs recorded")
        return
    table = Table(title="runs")
    table.add_column("run", no_wrap=True)
    for column in ("app", "status", "rounds", "started (UTC)", "finished (UTC)"):
        table.add_column(column)
    for run in runs:
        status = run.status if not run.restarts else f"{run.status} ({run.restarts} resumed)"
        table.add_row(
            run.name, run.app, status, str(run.rounds), _when(run.started), _when(run.finished)
        )
    console.print(table)


def load_run(state: Path, name: str) -> RunHistory:
    try:
        return read_run(state, name)
    except FedboxError as exc:
        raise fail(str(exc), 1) from exc


@runs_app.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help="The run's name (see `fedbox runs list`).")],
    email: EmailArg = None,
    state_dir: StateArg = None,
) -> None:
    """A run's rounds: messages, replies, errors, timeouts, metrics and who answered."""
    history = load_run(state_dir_of(email, state_dir), run)
    s = history.summary
    console.print(
        f"run {s.name}: {s.app}, {s.status}, {s.rounds} rounds\n"
        f"  started  {_when(s.started)} UTC, finished {_when(s.finished)}"
        + (f"\n  error    {s.error}" if s.error else "")
        + (f"\n  resumed  {s.restarts} times" if s.restarts else ""),
        highlight=False,
    )
    table = Table()
    for column in ("round", "sent", "replies", "errors", "timeouts", "metrics", "answered"):
        table.add_column(column)
    for r in history.rounds:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items())
        pending = f" (+{r.pending} pending)" if r.pending else ""
        table.add_row(
            r.round or "-",
            str(r.sent),
            f"{r.replies}{pending}",
            str(r.errors),
            str(r.timeouts),
            metrics,
            ", ".join(r.answered),
        )
    console.print(table)
