"""The one state machine: allowed transitions only, only by the owner or their rules,
each one an event row."""

from __future__ import annotations

import time

import pytest

from fedbox.datasite.workspace import Workspace
from fedbox.errors import PermissionDenied
from fedbox.rds import JobRecord, JobState, TransitionError
from fedbox.rds.jobs import JobStore
from fedbox.rds.states import TRANSITIONS, check_transition
from fedbox.rpc.audit import AuditLog, JobEvent

OWNER = "owner@x.org"


def _record(job_id: str = "00000000-0000-4000-8000-000000000001") -> JobRecord:
    now = time.time()
    return JobRecord(
        id=job_id,
        owner=OWNER,
        submitter="sci@x.org",
        name="j",
        dataset="d",
        entry="python main.py",
        kind="code",
        package_sha256="0" * 64,
        status=JobState.SUBMITTED,
        created=now,
        updated=now,
    )


def _unnumbered(event: JobEvent) -> tuple[object, ...]:
    """An event without its ``seq``, which each table numbers on its own."""
    return (event.job, event.at, event.actor, event.action, event.before, event.after, event.reason)


def test_the_machine_is_exactly_the_designed_one() -> None:
    S = JobState
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert allowed == {
        (S.SUBMITTED, S.APPROVED),
        (S.SUBMITTED, S.REJECTED),
        (S.APPROVED, S.RUNNING),
        (S.RUNNING, S.FINISHED),
        (S.RUNNING, S.FAILED),
        (S.FINISHED, S.SHARED),
        (S.FINISHED, S.WITHHELD),
        (S.FAILED, S.SHARED),
        (S.FAILED, S.WITHHELD),
    }
    for a in S:
        for b in S:
            if (a, b) not in allowed:
                with pytest.raises(TransitionError):
                    check_transition(a, b)


def test_every_change_is_an_event_and_illegal_ones_change_nothing() -> None:
    with JobStore(Workspace.for_email(OWNER).ensure()) as jobs:
        job = _record()
        assert jobs.add(job)
        assert not jobs.add(job)
        with pytest.raises(TransitionError, match="cannot become shared"):
            jobs.move(job.id, JobState.SHARED, actor=OWNER)
        jobs.move(job.id, JobState.APPROVED, actor=OWNER)
        jobs.move(job.id, JobState.RUNNING, actor=OWNER)
        jobs.move(job.id, JobState.FAILED, actor=OWNER, reason="crashed: exit code 1")
        jobs.move(job.id, JobState.WITHHELD, actor=OWNER, reason="too revealing")
        events = [(e.actor, e.before, e.after, e.reason) for e in jobs.events(job.id)]
        assert events == [
            ("sci@x.org", None, "submitted", ""),
            (
                OWNER,
                None,
                None,
                "a submitted job cannot become shared; from submitted: approved, rejected",
            ),
            (OWNER, "submitted", "approved", ""),
            (OWNER, "approved", "running", ""),
            (OWNER, "running", "failed", "crashed: exit code 1"),
            (OWNER, "failed", "withheld", "too revealing"),
        ]
        assert jobs.get(job.id[:8]).status is JobState.WITHHELD
        jobs.refused(job.id, actor="sci@x.org", action="share", reason="only the owner may")
        recorded = jobs.events(job.id)
    audit = AuditLog(Workspace.for_email(OWNER).audit_db)
    try:
        assert [_unnumbered(e) for e in audit.job_events(job.id)] == [
            _unnumbered(e) for e in recorded
        ]
        assert (recorded[-1].actor, recorded[-1].action) == ("sci@x.org", "refused share")
    finally:
        audit.close()


def test_only_the_owner_or_their_rules_move_a_job() -> None:
    with JobStore(Workspace.for_email(OWNER).ensure()) as jobs:
        job = _record()
        jobs.add(job)
        with pytest.raises(PermissionDenied):
            jobs.move(job.id, JobState.APPROVED, actor="sci@x.org")
        assert jobs.get(job.id).status is JobState.SUBMITTED
        jobs.move(job.id, JobState.APPROVED, actor="rule:sci@x.org:abcd")
        assert jobs.get(job.id).status is JobState.APPROVED
    audit = AuditLog(Workspace.for_email(OWNER).audit_db)
    try:
        assert [(e.actor, e.action, e.after) for e in audit.job_events(job.id)] == [
            ("sci@x.org", "submit", "submitted"),
            ("sci@x.org", "refused approved", None),
            ("rule:sci@x.org:abcd", "approved", "approved"),
        ]
    finally:
        audit.close()
