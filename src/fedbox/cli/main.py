"""The ``fedbox`` command."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fedbox.cli.bridge_cmd import bridge_app
from fedbox.cli.dataset_cmd import dataset_app
from fedbox.cli.durations import parse_duration
from fedbox.cli.fl_commands import register as register_fl_commands
from fedbox.cli.hub_cmd import hub_app, login_command
from fedbox.cli.inspect_cmd import inspect_file
from fedbox.cli.job_cmd import job_app
from fedbox.cli.keys_cmd import keys_app
from fedbox.cli.logsetup import VerboseOpt, configure_logging
from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.roots import RootOpt, StorageOpt, identity_of, open_root
from fedbox.cli.runs_cmd import runs_app
from fedbox.cli.serve_cmd import serve
from fedbox.cli.sync_cmd import sync_app
from fedbox.cli.ui_cmd import ui
from fedbox.crypto import Identity
from fedbox.datasite.workspace import Workspace
from fedbox.rpc.audit import AuditLog, JobEvent
from fedbox.rpc.cleanup import cleanup as cleanup_store

__all__ = ["app"]

app = typer.Typer(
    help="Federated learning and RPC over files: no participant opens a port.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


@app.callback()
def _configure(verbose: VerboseOpt = 0) -> None:
    configure_logging(verbose)


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A message file.")],
    email: Annotated[
        str | None,
        typer.Option("--email", help="Open an encrypted body with this recipient's keys."),
    ] = None,
    state_dir: StateOpt = None,
) -> None:
    """Show a message file's header, sizes, digest check and status."""
    raise typer.Exit(inspect_file(file, console, email=email, state_dir=state_dir))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M:%S")


@app.command()
def messages(
    email: EmailOpt,
    state_dir: StateOpt = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
    peer: Annotated[str | None, typer.Option(help="Only calls with this peer.")] = None,
    status: Annotated[int | None, typer.Option(help="Only this status code.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Jobs' state changes and refused actions instead.")
    ] = False,
    job: Annotated[
        str | None,
        typer.Option("--job", help="Only this job's events (its full id; implies --jobs)."),
    ] = None,
) -> None:
    """The audit trail: every call made or served, newest first.

    With ``--jobs``, every change of a job's state and every refused action on a job,
    in the order they happened.
    """
    workspace = Workspace.for_email(email, state_dir)
    if not workspace.audit_db.exists():
        console.print(f"no audit log for {email} at {workspace.audit_db}")
        raise typer.Exit(1)
    log = AuditLog(workspace.audit_db)
    try:
        if jobs or job is not None:
            _print_job_events(email, log.job_events(job, limit=limit))
            return
        records = log.records(app=app_name, peer=peer, status=status, limit=limit)
    finally:
        log.close()
    table = Table(title=f"calls of {email}")
    for column in ("dir", "id", "peer", "app/endpoint", "size", "created", "answered", "status"):
        table.add_column(column)
    for r in records:
        table.add_row(
            "→" if r.direction == "out" else "←",
            r.id[:8],
            r.peer,
            f"{r.app}/{r.endpoint}",
            "-" if r.size is None else f"{r.size:,}",
            _when(r.created),
            _when(r.answered),
            "pending" if r.status is None else str(r.status),
        )
    console.print(table)


def _print_job_events(email: str, events: list[JobEvent]) -> None:
    table = Table(title=f"job events of {email}")
    for column in ("at", "job", "actor", "action", "from", "to", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            _when(e.at),
            e.job[:12],
            Text(e.actor),
            e.action,
            e.before or "-",
            e.after or "-",
            Text(e.reason),  # free text: not rich markup
        )
    console.print(table)


@app.command()
def cleanup(
    root: RootOpt,
    email: EmailOpt,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age, e.g. 90s, 15m, 12h, 1d.")
    ] = "1d",
    storage_option: StorageOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Remove message files you wrote that are older than an age (audit rows stay).

    Works on a folder or a store URL: ``fedbox cleanup --root s3://bucket/fed --email E``.
    """
    age = parse_duration(older_than)
    workspace = _check_own_state(email, state_dir)
    with open_root(root, storage_option, identity_of(workspace)) as store:
        report = cleanup_store(store, email, age, time.time())
    console.print(f"removed {report.files} files ({report.bytes:,} bytes) older than {older_than}")


def _check_own_state(email: str, state_dir: Path | None) -> Workspace:
    """Cleanup deletes files, so it acts as the identity whose state dir it is given, as
    the other commands do: a named state dir must exist, and keys in it must be
    ``email``'s (CryptoError otherwise), so nobody empties another's outboxes by a typo.
    The identity's workspace."""
    workspace = Workspace.for_email(email, state_dir)
    if state_dir is not None and not workspace.state_dir.is_dir():
        raise typer.BadParameter(f"{state_dir} is not a directory", param_hint="--state-dir")
    if (workspace.state_dir / "keys" / "identity.json").exists():
        Identity.load_or_create(workspace.state_dir, email)
    return workspace


register_fl_commands(app)  # simulate, bootstrap, run
app.add_typer(keys_app, name="keys")
app.add_typer(hub_app, name="hub")
app.command("login")(login_command)
app.add_typer(sync_app, name="sync")
app.add_typer(bridge_app, name="bridge")
app.add_typer(dataset_app, name="dataset")
app.add_typer(job_app, name="job")
app.add_typer(runs_app, name="runs")
app.command("serve")(serve)
app.command("ui")(ui)
