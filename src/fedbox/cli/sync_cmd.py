"""``fedbox sync``: mirror a folder through a hub; ``fedbox sync status``: what it is doing."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fedbox.cli.logsetup import VerboseOpt, configure_logging
from fedbox.cli.options import StateOpt
from fedbox.cli.roots import fail
from fedbox.datasite.identity import validate_email
from fedbox.errors import FedboxError
from fedbox.interruptible import wait_interruptibly
from fedbox.sizes import parse_size

if TYPE_CHECKING:
    from fedbox.hub.sync import SyncStatus

__all__ = ["sync_app"]

sync_app = typer.Typer(
    help="Mirror a folder through a hub (like SyftBox's client).", invoke_without_command=True
)
console = Console()

DirOpt = Annotated[Path | None, typer.Option("--dir", help="The folder to mirror.")]


def _size(value: str | int) -> int:
    if isinstance(value, int):  # a default
        return value
    try:
        return parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@sync_app.callback()
def sync(
    ctx: typer.Context,
    hub: Annotated[str | None, typer.Option("--hub", help="hub://HOST:PORT or hubs://...")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Your identity (an email).")] = None,
    folder: DirOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Reconcile once, then exit.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="GLOB",
            help="Sync only paths matching GLOB (gitignore syntax; repeatable). "
            "The hub filters its feed too.",
        ),
    ] = None,
    min_free: Annotated[
        int,
        typer.Option(
            "--min-free",
            parser=_size,
            metavar="SIZE",
            help="Refuse downloads that would leave less free disk than this \\[default: 100MiB].",
            show_default=False,
        ),
    ] = 100 << 20,
    state_dir: StateOpt = None,
    workers: Annotated[int, typer.Option(help="Parallel transfers.", min=1)] = 32,
    poll: Annotated[
        bool,
        typer.Option(
            "--poll",
            help="Walk DIR every 3 s instead of waiting for OS file events (for network "
            "mounts, where the OS does not report others' writes).",
        ),
    ] = False,
    part_size: Annotated[
        int, typer.Option("--part-size", parser=_size, metavar="SIZE", hidden=True)
    ] = 16 << 20,
    resumable_above: Annotated[
        int, typer.Option("--resumable-above", parser=_size, metavar="SIZE", hidden=True)
    ] = 64 << 20,
    verbose: VerboseOpt = 0,
) -> None:
    """Keep DIR in step with the hub: your datasite, and what you may read of others'.

    Log in first with `fedbox login --hub URL --email E`. Runs until Ctrl-C (or SIGTERM);
    with --once, reconciles once and exits.
    """
    if ctx.invoked_subcommand is not None:
        return
    if hub is None or email is None or folder is None:
        raise fail("fedbox sync needs --hub, --email and --dir (or: fedbox sync status --dir)")
    configure_logging(max(verbose, 1))
    from fedbox.hub.sync import SyncDaemon, SyncOptions

    options = SyncOptions(
        folder=folder, hub=hub, email=validate_email(email), state_dir=state_dir,
        only=tuple(only or ()), min_free=min_free, workers=workers, poll=poll,
        resumable_above=resumable_above, part_size=part_size,
    )  # fmt: skip
    try:
        daemon = SyncDaemon(options)
    except (FedboxError, ValueError) as exc:
        raise fail(f"cannot sync {folder}: {exc}", code=1) from exc
    if once:
        try:
            status = daemon.run_once()
        except FedboxError as exc:
            raise fail(f"cannot sync {folder}: {exc}", code=1) from exc
        console.print(
            f"synced {folder}: {status.uploaded} up, {status.downloaded} down, "
            f"{status.deleted} deleted, {status.moved} moved, {len(status.conflicts)} conflicts, "
            f"{len(status.rejected)} rejected"
        )
        return
    try:
        daemon.start()  # Ctrl-C while it waits for the hub stops it here
    except (FedboxError, KeyboardInterrupt) as exc:
        daemon.stop()
        raise fail(f"cannot sync {folder}: {exc or 'interrupted'}", code=1) from exc
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    console.print(f"syncing {folder} with {hub} as {email} (Ctrl-C to stop)")
    wait_interruptibly(done)
    daemon.stop()
    console.print("sync stopped")


def _table(status: SyncStatus) -> Table:
    table = Table(title=f"fedbox sync: {status.folder}", show_header=False)
    age = time.time() - status.updated
    state = "running" if status.running and age < 5 else "stopped"
    rows = [
        ("hub", f"{status.hub} as {status.email}"),
        ("state", f"{state} (pid {status.pid}, updated {age:.0f} s ago)"),
        ("local changes", f"from {status.events or '-'}"),
        ("pending", f"{status.pending_uploads} uploads, {status.pending_downloads} downloads"),
        ("lag", f"{status.lag} changes behind the hub (cursor {status.cursor})"),
        (
            "done",
            f"{status.uploaded} up, {status.downloaded} down, {status.deleted} deleted, "
            f"{status.moved} moved",
        ),
        ("conflicts", "\n".join(f"{c['path']} -> {c['copy']}" for c in status.conflicts) or "-"),
        (
            "rejected",
            "\n".join(f"{r['path']} -> {r['copy']}: {r['reason']}" for r in status.rejected) or "-",
        ),
        ("refused", "\n".join(r["reason"] for r in status.refused) or "-"),
        ("last error", status.last_error or "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


@sync_app.command()
def status(
    folder: Annotated[Path, typer.Option("--dir", help="The mirrored folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    live: Annotated[
        bool | None,
        typer.Option("--live/--no-live", help="Keep refreshing \\[default: in a terminal]."),
    ] = None,
) -> None:
    """Pending uploads and downloads, conflicts, rejected files, lag, last error."""
    from fedbox.hub.sync import read_status

    try:
        current = read_status(folder)
    except FedboxError as exc:
        raise fail(exc, code=1) from exc
    if as_json:
        typer.echo(json.dumps(current.as_json(), indent=1))
        return
    if not (console.is_terminal if live is None else live):
        console.print(_table(current))
        return
    try:
        with Live(_table(current), console=console, refresh_per_second=4) as view:
            while True:
                time.sleep(0.5)  # the daemon rewrites its status file; show the newest
                view.update(_table(read_status(folder)))
    except KeyboardInterrupt:
        return
