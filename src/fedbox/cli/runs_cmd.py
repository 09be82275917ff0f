"""``fedbox runs``: the runs an aggregator recorded, their rounds, and their models.

Reads the run records in the aggregator's state dir (:mod:`fedbox.fl.history`), also
while a run is in progress.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedbox.cli.roots import fail
from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.fl.history import RunHistory, list_runs, read_run

if TYPE_CHECKING:
    import numpy as np

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


@runs_app.command("export")
def export_command(
    run: Annotated[str, typer.Argument(help="The run's name (see `fedbox runs list`).")],
    out: Annotated[
        Path, typer.Option("--out", help="The file to write: NAME.safetensors or NAME.npz.")
    ],
    round: Annotated[
        str | None,
        typer.Option("--round", help="The round \\[default: the last one with arrays]."),
    ] = None,
    email: EmailArg = None,
    state_dir: StateArg = None,
) -> None:
    """Write the global arrays of a round to a file, from a finished or crashed run.

    They are the arrays the ServerApp last sent in that round: with FedAvg, its evaluate
    messages' model, aggregated in that round.
    """
    from fedbox.fl.export import write_arrays  # imports numpy and Flower

    state = state_dir_of(email, state_dir)
    history = load_run(state, run)
    try:
        label, arrays = _arrays_of(state, history, round)
        write_arrays(arrays, out, {"run": run, "round": label, "app": history.summary.app})
    except FedboxError as exc:
        raise fail(str(exc), 1) from exc
    size = sum(a.nbytes for a in arrays.values())
    console.print(
        f"wrote {len(arrays)} arrays ({size:,} bytes) of run {run} round {label} to {out}",
        highlight=False,
    )


def _arrays_of(
    state: Path, history: RunHistory, round: str | None
) -> tuple[str, dict[str, np.ndarray]]:
    """``round``'s arrays, or (no round given) the last round's that has any."""
    from fedbox.fl.export import ExportError, round_arrays

    name = history.summary.name
    if round is not None:
        return round, round_arrays(state, name, round)
    for r in reversed(history.rounds):
        if r.round:
            try:
                return r.round, round_arrays(state, name, r.round)
            except ExportError:
                continue
    raise ExportError(f"run {name} recorded no arrays in any round")
