"""``fedbox job submit-fl``: one Flower app, one command, one approval per owner.

The app is packed once (with :data:`~fedbox.fl.piped_client.RUN_FILE` naming the run's
datasites) and sent as a job of kind ``fl`` to every owner. Their daemons run the
client role once they approve; this command follows each owner's decision and, once
``--min-approved`` approved, runs the aggregator with the approved owners only, as
``fedbox run`` does for the server role. The run's metrics are saved under ``--out``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from fedbox.errors import FedboxError, RemoteError, ResponseTimeout
from fedbox.rds import Rds, SubmittedJob
from fedbox.rds.fl_jobs import fl_app_name
from fedbox.rds.states import JobState

if TYPE_CHECKING:  # Flower loads only when the aggregator starts (fedbox --help stays light)
    from fedbox.fl.events import EventCallback
    from fedbox.fl.server import ServerOutcome
    from fedbox.fl.tally import RunTally

__all__ = ["submit_fl"]

_APPROVED = {JobState.APPROVED, JobState.RUNNING}
_DECLINED = {
    JobState.REJECTED,
    JobState.FINISHED,
    JobState.FAILED,
    JobState.SHARED,
    JobState.WITHHELD,
}
"""Owners whose job can no longer serve this run: rejected, or a client role that
already ended (a run cannot use it)."""


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
    app, config = load_app(app_dir, run_config)
    owners = list(dict.fromkeys(datasite))
    needed = len(owners) if min_approved is None else min_approved
    if not 1 <= needed <= len(owners):
        raise fail(f"--min-approved {needed}: give 1 to {len(owners)} (the owners named)")
    with open_rds(root, email, state_dir, storage_option) as rds:
        with tempfile.TemporaryDirectory(prefix="fedbox-fl-") as tmp:
            from fedbox.fl.piped_client import ENTRY

            package = _with_run_file(app.app_dir, Path(tmp) / app.project, owners)
            try:
                jobs = rds.submit_to_each(
                    package, owners, dataset=dataset, entry=ENTRY, name=app.project, kind="fl"
                )
            except (FedboxError, ValueError) as exc:
                raise fail(exc) from exc
        app_name = fl_app_name(jobs[0].package_sha256)
        for job in jobs:
            console.print(f"submitted {job.id} to {job.owner}", highlight=False)
        with sigterm_as_interrupt():
            try:
                approved = _wait_for_approvals(rds, jobs, needed, approval_timeout)
            except KeyboardInterrupt:
                raise typer.Exit(EXIT_INTERRUPTED) from None
        from fedbox.fl.server import run_server
        from fedbox.fl.syft_compat import export_output_dir
        from fedbox.fl.tally import RunTally

        results = out or rds.workspace.state_dir / "rds" / "fl-runs" / app_name
        export_output_dir(results / "output")
        console.print(
            f"aggregating {app.fab_id} as {app_name} with {', '.join(approved)}", highlight=False
        )
        tally = RunTally(tuple(approved))
        mode = progress_mode(False)

        def serve(callback: EventCallback) -> ServerOutcome:
            return run_server(
                rds.box,
                app,
                app_name,
                approved,
                config,
                timeout=timeout,
                callback=callback,
                join_timeout=join_timeout,
            )

        with sigterm_as_interrupt():
            outcome = run_with_progress(app.project, len(approved), serve, tally, mode)
        code = report_outcome(outcome, tally, mode=mode)
        _save_metrics(results, outcome, tally, jobs, approved)
        console.print(f"metrics saved in {results / 'metrics.json'}", highlight=False)
    raise typer.Exit(code)


def _with_run_file(app_dir: Path, into: Path, owners: list[str]) -> Path:
    """A copy of the app (no caches) with the run file: the datasites in partition
    order, and a fresh id so this submission's package (hence its run) is its own."""
    from fedbox.fl.piped_client import RUN_FILE

    shutil.copytree(app_dir, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    run = {"datasites": owners, "submission": uuid.uuid4().hex}
    (into / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    return into


def _state_of(rds: Rds, job: SubmittedJob) -> tuple[JobState | None, str]:
    """The owner's answer now: ``(state, reason)``, or ``(None, why)`` while the owner
    has not answered (its daemon is down, or has not taken the submission yet)."""
    try:
        view = job.status(timeout=10)
        return JobState(view["status"]), str(view["reason"])
    except ResponseTimeout:
        return None, "no answer from its daemon yet"
    except RemoteError as exc:
        if exc.status != 404:
            raise
    try:
        rds.submission_answer(job, 0.01)
    except ResponseTimeout:
        return None, "submission not taken yet"
    except RemoteError as exc:
        return JobState.REJECTED, str(exc)
    return None, "submission being recorded"


def _wait_for_approvals(
    rds: Rds, jobs: list[SubmittedJob], needed: int, timeout: float
) -> list[str]:
    """The owners that approved, once ``needed`` have; prints each owner's state as it
    changes. Exits non-zero when too few can still approve, or at the timeout."""
    seen: dict[str, tuple[JobState | None, str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for job in jobs:
            state = _state_of(rds, job)
            if seen.get(job.owner) != state:
                seen[job.owner] = state
                word = state[0].value if state[0] is not None else "waiting"
                why = f" ({state[1]})" if state[1] else ""
                console.print(f"  {job.owner}: {word}{why}", highlight=False, markup=False)
        approved = [o for o, (s, _) in seen.items() if s in _APPROVED]
        declined = [o for o, (s, _) in seen.items() if s in _DECLINED]
        if len(approved) >= needed:
            return approved
        if len(jobs) - len(declined) < needed:
            raise fail(
                f"only {len(jobs) - len(declined)} of the {len(jobs)} owners can still approve "
                f"(declined: {', '.join(declined)}); --min-approved is {needed}",
                EXIT_FAILED,
            )
        if time.monotonic() > deadline:
            raise fail(
                f"{len(approved)} of the {needed} approvals needed came within {timeout:g} s",
                EXIT_FAILED,
            )
        time.sleep(1.0)


def _save_metrics(
    results: Path,
    outcome: ServerOutcome,
    tally: RunTally,
    jobs: list[SubmittedJob],
    approved: list[str],
) -> None:
    """``metrics.json``: how the run ended, each owner's job, and per round and phase
    the mean of every metric the clients reported."""
    with tally.lock:
        phases: list[dict[str, Any]] = [
            {
                "round": p.round,
                "message_type": p.message_type,
                "replied": p.replied,
                "errors": p.errors,
                "metrics": p.metric_means(),
            }
            for p in tally.phases.values()
        ]
    record = {
        "finished": outcome.finished,
        "error": None if outcome.error is None else str(outcome.error),
        "seconds": round(outcome.seconds, 3),
        "jobs": {job.owner: job.id for job in jobs},
        "datasites": approved,
        "phases": phases,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
