"""``fedbox job submit-fl``: one Flower app, one command, one approval per owner.

The command line of :mod:`fedbox.fl.job_run`: the app is packed once and sent as a job
of kind ``fl`` to every owner; their daemons run the client role once they approve;
this command prints each owner's decision and, once ``--min-approved`` approved, runs
the aggregator with every owner that has not declined (late approvers join later
rounds), with ``fedbox run``'s progress display. Metrics are saved under ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedbox.cli.fl_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    AppDirArg,
    JoinTimeoutOpt,
    RunConfigOpt,
    TimeoutOpt,
    load_app,
    sigterm_as_interrupt,
)
from fedbox.cli.options import EmailOpt, StateOpt
from fedbox.cli.progress import progress_mode, report_outcome, run_with_progress
from fedbox.cli.rds_options import console, open_rds
from fedbox.cli.roots import RootOpt, StorageOpt, fail
from fedbox.errors import FedboxError, TooFewApprovals

if TYPE_CHECKING:  # Flower loads only when the command runs (fedbox --help stays light)
    from fedbox.fl.events import EventCallback
    from fedbox.fl.job_run import OwnerState
    from fedbox.fl.server import ServerOutcome

__all__ = ["submit_fl"]


def submit_fl(
    app_dir: AppDirArg,
    dataset: Annotated[str, typer.Option("--dataset", help="Each owner's dataset to train on.")],
    datasite: Annotated[
        list[str], typer.Option("--datasite", help="A data owner (repeat for each).")
    ],
    root: RootOpt,
    email: EmailOpt,
    min_approved: Annotated[
        int | None,
        typer.Option("--min-approved", help="Owners that must approve \\[default: all]."),
    ] = None,
    approval_timeout: Annotated[
        float, typer.Option("--approval-timeout", help="Seconds to wait for the owners.")
    ] = 86400.0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where the run's metrics go \\[default: state dir]."),
    ] = None,
    run_config: RunConfigOpt = None,
    timeout: TimeoutOpt = None,
    join_timeout: JoinTimeoutOpt = None,
    state_dir: StateOpt = None,
    storage_option: StorageOpt = None,
) -> None:
    """Send a Flower app to every owner as one FL job, then aggregate once enough approve.

    Each owner reviews and approves it like any job; their `fedbox serve` runs the
    ClientApp on the private dataset, sandboxed. Owners that reject are left out.
    """
    app, _ = load_app(app_dir, run_config)
    from fedbox.fl.job_run import DECLINED
    from fedbox.fl.job_run import submit_fl as submit

    with open_rds(root, email, state_dir, storage_option) as rds:
        try:
            run = submit(
                rds,
                app.app_dir,
                dataset=dataset,
                datasites=datasite,
                min_approved=min_approved,
                run_config=run_config,
                out=out,
            )
        except (FedboxError, ValueError) as exc:
            raise fail(exc) from exc
        for job in run.jobs.values():
            console.print(f"submitted {job.id} to {job.owner}", highlight=False)

        def changed(owner: str, state: OwnerState) -> None:
            console.print(f"  {owner}: {state}", highlight=False, markup=False)

        with sigterm_as_interrupt():
            try:
                states = run.wait_for_approvals(approval_timeout, changed)
            except TooFewApprovals as exc:
                raise fail(exc, EXIT_FAILED) from exc
            except KeyboardInterrupt:
                raise typer.Exit(EXIT_INTERRUPTED) from None
        from fedbox.fl.tally import RunTally

        taking_part = [o for o, s in states.items() if s.state not in DECLINED]
        console.print(
            f"aggregating {app.fab_id} as {run.app_name} with {', '.join(taking_part)} "
            f"({run.needed} needed to start; owners approving later join later rounds)",
            highlight=False,
        )
        tally = RunTally(tuple(taking_part))
        mode = progress_mode(False)

        def serve(callback: EventCallback) -> ServerOutcome:
            return run.run(
                states, timeout=timeout, join_timeout=join_timeout, callback=callback, tally=tally
            )

        with sigterm_as_interrupt():
            outcome = run_with_progress(app.project, len(taking_part), serve, tally, mode)
        code = report_outcome(outcome, tally, mode=mode)
        console.print(f"metrics saved in {run.out / 'metrics.json'}", highlight=False)
    raise typer.Exit(code)
