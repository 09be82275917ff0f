"""FL projects as rds jobs, the scientist's side: one submission, one approval per owner,
the aggregator run here once enough owners approved.

``fedbox job submit-fl`` and the notebook API are this module::

    rds = fedbox.rds.connect(root, "sci@lab.org")
    run = fedbox.fl.submit_fl(rds, "my-app", dataset="numbers", datasites=[a, b, c],
                              min_approved=2)
    run.status()          # {owner: OwnerState(state, reason)}, asked now
    outcome = run.wait()  # waits for the approvals, then aggregates
    run.metrics()         # metrics.json: how it ended, per round the clients' metrics

It lives in ``fedbox.fl`` (layer 8), not on :class:`~fedbox.rds.Rds` (layer 7), because
the aggregator is Flower's ServerApp on a :class:`~fedbox.fl.grid.FileGrid`.

The run's grid holds every owner that approved or has not decided yet: it starts once
``min_approved`` of them joined, and an owner approving later joins the rounds still to
come (``FileGrid.get_node_ids`` lists who has joined at each round, as a SuperLink
does), with the partition the run file gave it. Owners that rejected are left out. The
stop message stays valid as long as the join (a week), so an owner who approves after
the run ended finds both waiting: its client joins and stops at once instead of idling
until its timeout. That is safe here, unlike for ``fedbox run`` (whose resumed run reuses
its app name), because this run's app name is derived from a package made for this
submission alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import UserConfig

from fedbox.errors import RemoteError, ResponseTimeout, TooFewApprovals
from fedbox.fl.config import AppConfig, load_app_config, parse_run_config
from fedbox.fl.events import EventCallback
from fedbox.fl.grid import JOIN_TTL
from fedbox.fl.piped_client import ENTRY, RUN_FILE
from fedbox.fl.server import ServerOutcome, run_server
from fedbox.fl.syft_compat import export_output_dir
from fedbox.fl.tally import RunTally
from fedbox.rds import Rds, SubmittedJob
from fedbox.rds.fl_jobs import fl_app_name
from fedbox.rds.states import JobState

__all__ = ["APPROVED", "DECLINED", "FlJobRun", "OwnerState", "TooFewApprovals", "submit_fl"]

APPROVED = frozenset({JobState.APPROVED, JobState.RUNNING})
DECLINED = frozenset(
    {JobState.REJECTED, JobState.FINISHED, JobState.FAILED, JobState.SHARED, JobState.WITHHELD}
)
"""Owners whose job can no longer serve this run: rejected, or a client role that
already ended (a run cannot use it)."""


@dataclass(frozen=True, slots=True)
class OwnerState:
    """One owner's answer: ``state`` None while it has not answered (its daemon is down,
    or has not taken the submission yet); ``reason`` says why, or the owner's words."""

    state: JobState | None
    reason: str = ""

    def __str__(self) -> str:
        word = self.state.value if self.state is not None else "waiting"
        return word + (f" ({self.reason})" if self.reason else "")


class FlJobRun:
    """One FL submission: a job per owner, the same package (so one run app)."""

    def __init__(
        self,
        rds: Rds,
        app: AppConfig,
        jobs: list[SubmittedJob],
        *,
        needed: int,
        run_config: UserConfig,
        out: Path,
    ) -> None:
        self.rds = rds
        self.app = app
        self.jobs = {job.owner: job for job in jobs}
        self.needed = needed
        self.run_config = run_config
        self.app_name = fl_app_name(jobs[0].package_sha256)
        self.out = out
        """Where ``metrics.json`` (and the ServerApp's outputs, ``output/``) go."""
        self.outcome: ServerOutcome | None = None

    def __repr__(self) -> str:
        return f"<FlJobRun {self.app_name} to {', '.join(self.jobs)}>"

    def status(self) -> dict[str, OwnerState]:
        """Each owner's state of its job, asked now."""
        return {owner: self._state_of(job) for owner, job in self.jobs.items()}

    def _state_of(self, job: SubmittedJob) -> OwnerState:
        try:
            view = job.status(timeout=10)
            return OwnerState(JobState(view["status"]), str(view["reason"]))
        except ResponseTimeout:
            return OwnerState(None, "no answer from its daemon yet")
        except RemoteError as exc:
            if exc.status != 404:
                raise
        try:
            self.rds.submission_answer(job, 0.01)
        except ResponseTimeout:
            return OwnerState(None, "submission not taken yet")
        except RemoteError as exc:
            return OwnerState(JobState.REJECTED, str(exc))
        return OwnerState(None, "submission being recorded")

    def wait_for_approvals(
        self,
        timeout: float = 86400.0,
        on_change: Callable[[str, OwnerState], None] | None = None,
        poll: float = 1.0,
    ) -> dict[str, OwnerState]:
        """Every owner's state once ``needed`` approved (``on_change`` hears each change).
        TooFewApprovals when too few can still approve, or at the timeout."""
        seen: dict[str, OwnerState] = {}
        deadline = time.monotonic() + timeout
        while True:
            for owner, job in self.jobs.items():
                state = self._state_of(job)
                if seen.get(owner) != state:
                    seen[owner] = state
                    if on_change is not None:
                        on_change(owner, state)
            approved = [o for o, s in seen.items() if s.state in APPROVED]
            declined = [o for o, s in seen.items() if s.state in DECLINED]
            if len(approved) >= self.needed:
                return seen
            if len(self.jobs) - len(declined) < self.needed:
                raise TooFewApprovals(
                    f"only {len(self.jobs) - len(declined)} of the {len(self.jobs)} owners can "
                    f"still approve (declined: {', '.join(declined)}); "
                    f"min_approved is {self.needed}"
                )
            if time.monotonic() > deadline:
                raise TooFewApprovals(
                    f"{len(approved)} of the {self.needed} approvals needed came within "
                    f"{timeout:g} s"
                )
            time.sleep(poll)

    def run(
        self,
        states: dict[str, OwnerState],
        *,
        timeout: float | None = None,
        join_timeout: float | None = None,
        callback: EventCallback | None = None,
        tally: RunTally | None = None,
    ) -> ServerOutcome:
        """Aggregate with every owner ``states`` does not show declined (late approvers
        join later rounds); save ``metrics.json`` from ``tally``, which counts the run's
        events (one is made if not given). A ``callback`` given is the grid's instead of
        the tally and must feed it (as the CLI's progress reporter does)."""
        taking_part = [o for o in self.jobs if states[o].state not in DECLINED]
        tally = tally if tally is not None else RunTally(tuple(taking_part))
        export_output_dir(self.out / "output")
        self.outcome = run_server(
            self.rds.box,
            self.app,
            self.app_name,
            taking_part,
            self.run_config,
            timeout=timeout,
            callback=callback if callback is not None else tally,
            min_datasites=self.needed,
            join_timeout=join_timeout,
            stop_ttl=JOIN_TTL,
        )
        self._save_metrics(self.outcome, tally, taking_part)
        return self.outcome

    def wait(
        self,
        approval_timeout: float = 86400.0,
        *,
        timeout: float | None = None,
        join_timeout: float | None = None,
    ) -> ServerOutcome:
        """Wait for the approvals, then run the aggregator to the end (the notebook's
        one call). TooFewApprovals if not enough owners approve."""
        return self.run(
            self.wait_for_approvals(approval_timeout), timeout=timeout, join_timeout=join_timeout
        )

    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` of the run (FileNotFoundError before it ran)."""
        return dict(json.loads((self.out / "metrics.json").read_text()))

    def _save_metrics(self, outcome: ServerOutcome, tally: RunTally, invited: list[str]) -> None:
        """How the run ended, each owner's job, who took part, and per round and phase
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
            "jobs": {owner: job.id for owner, job in self.jobs.items()},
            "invited": invited,
            "datasites": list(outcome.joined),
            "phases": phases,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


def submit_fl(
    rds: Rds,
    app_dir: str | os.PathLike[str],
    *,
    dataset: str,
    datasites: list[str],
    min_approved: int | None = None,
    run_config: UserConfig | str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> FlJobRun:
    """Pack the Flower app at ``app_dir`` once and send it as an FL job to every owner in
    ``datasites``; the run needs ``min_approved`` (default: all) of them.
    ``run_config``: overrides of the app's run config (a dict, or ``"k=v ..."``)."""
    app = load_app_config(Path(app_dir))
    overrides = (
        run_config
        if run_config is None or isinstance(run_config, str)
        else [f"{k}={json.dumps(v)}" for k, v in run_config.items()]
    )
    config = parse_run_config(app.run_config, overrides)
    owners = list(dict.fromkeys(datasites))
    needed = len(owners) if min_approved is None else min_approved
    if not 1 <= needed <= len(owners):
        raise ValueError(f"min_approved {needed}: give 1 to {len(owners)} (the owners named)")
    with tempfile.TemporaryDirectory(prefix="fedbox-fl-") as tmp:
        package = _with_run_file(app.app_dir, Path(tmp) / app.project, owners)
        jobs = rds.submit_to_each(
            package, owners, dataset=dataset, entry=ENTRY, name=app.project, kind="fl"
        )
    app_name = fl_app_name(jobs[0].package_sha256)
    results = Path(out) if out is not None else rds.workspace.state_dir / "rds" / "fl-runs"
    return FlJobRun(
        rds,
        app,
        jobs,
        needed=needed,
        run_config=config,
        out=results if out is not None else results / app_name,
    )


def _with_run_file(app_dir: Path, into: Path, owners: list[str]) -> Path:
    """A copy of the app (no caches) with the run file: the datasites in partition
    order, and a fresh id so this submission's package (hence its run) is its own."""
    shutil.copytree(app_dir, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    run = {"datasites": owners, "submission": uuid.uuid4().hex}
    (into / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    return into
