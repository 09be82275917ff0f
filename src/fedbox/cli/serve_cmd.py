"""``fedbox serve``: a data owner's one long-lived process (RPC app ``rds``)."""

from __future__ import annotations

from typing import Annotated

import typer

from fedbox.cli.fl_options import sigterm_as_interrupt
from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.rds_options import console, open_rds
from fedbox.cli.roots import RootOpt, StorageOpt
from fedbox.rds.fl_jobs import FlJobs

__all__ = ["serve"]


def serve(
    root: RootOpt,
    email: EmailOpt,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
    ready: Annotated[bool, typer.Option("--ready", help="Print 'ready' once serving.")] = False,
) -> None:
    """A data owner's daemon: takes job submissions, answers scientists, applies rules.

    It receives submissions, answers scientists' status and results requests,
    applies your auto-approval rules, and runs the client role of every FL job you
    approved (sandboxed, fed the run's messages by this process), until Ctrl-C or
    SIGTERM.
    """
    from fedbox.fl.grid import ENDPOINT  # Flower loads only for a command that serves

    with sigterm_as_interrupt(), open_rds(root, email, state_dir, storage_option) as rds:
        service = rds.serve()
        fl_jobs = FlJobs(rds.box, rds.owner, endpoint=ENDPOINT).start()
        console.print(f"serving rds for {email}")
        if ready:
            print("ready", flush=True)
        try:
            service.app.serve_forever()  # returns on Ctrl-C / SIGTERM, after stopping
        finally:
            fl_jobs.stop()
