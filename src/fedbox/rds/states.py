"""The job state machine: the states and the only transitions allowed between them.

Every state change anywhere in rds goes through :func:`check_transition` (called by
``fedbox.rds.jobs.JobStore.move``, the one writer of a job's status).
"""

from __future__ import annotations

from enum import StrEnum

from fedbox.errors import FedboxError

__all__ = ["TRANSITIONS", "JobState", "TransitionError", "check_transition"]


class JobState(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    SHARED = "shared"
    WITHHELD = "withheld"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.APPROVED, JobState.REJECTED}),
    JobState.APPROVED: frozenset({JobState.RUNNING}),
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.FAILED}),
    JobState.FINISHED: frozenset({JobState.SHARED, JobState.WITHHELD}),
    JobState.FAILED: frozenset({JobState.SHARED, JobState.WITHHELD}),
    JobState.REJECTED: frozenset(),
    JobState.SHARED: frozenset(),
    JobState.WITHHELD: frozenset(),
}


class TransitionError(FedboxError, ValueError):
    """A job was asked to move to a state it cannot reach from where it is."""


def check_transition(current: JobState, target: JobState) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (it is final)"
        raise TransitionError(f"a {current} job cannot become {target}; from {current}: {allowed}")
