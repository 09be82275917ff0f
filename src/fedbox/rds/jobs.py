"""The owner's jobs: records, their files, and every state change with who made it.

:meth:`JobStore.move` is the only code that changes a job's status: it checks the
transition (``fedbox.rds.states``), that the actor is the owner or one of the owner's
auto-approval rules, and writes the change and its event row in one transaction.

Every event (a change, or a refused action) is written in one place, :meth:`_event`, to
two tables: the identity's audit log (``{state_dir}/audit.db``, ``job_events``: what
``fedbox messages --jobs`` shows, beside every RPC call) and this store's own ``events``
(what review and the dashboard show, with the history of jobs from before the audit log
had job events). The audit row is written first, inside the job store's transaction: if
it cannot be written the change rolls back, so no change is ever missing from the audit
log; only a crash between the two commits could leave an audit row for a change that did
not happen, which errs on the side of the record.
"""

from __future__ import annotations

import builtins
import time
from pathlib import Path

from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError, PermissionDenied
from fedbox.rds.db import Database
from fedbox.rds.models import JobRecord
from fedbox.rds.states import JobState, TransitionError, check_transition
from fedbox.rpc.audit import AuditLog, JobEvent

__all__ = ["RULE_ACTOR", "JobEvent", "JobNotFound", "JobStore", "job_dir"]

RULE_ACTOR = "rule:"
"""Prefix of the actor of a change made by an auto-approval rule (``rule:{sha256}``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    submitter TEXT NOT NULL,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    entry TEXT NOT NULL,
    kind TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_submitter ON jobs (submitter, created);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    before TEXT,
    after TEXT,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_job ON events (job, seq);
"""


class JobNotFound(FedboxError, KeyError):
    """No job with this id (or id prefix) among the owner's jobs."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such job"


def job_dir(workspace: Workspace, job_id: str) -> Path:
    """The job's private files: ``package.tar``, ``code/``, ``output/``, ``logs/``."""
    return workspace.state_dir / "rds" / "jobs" / job_id


class JobStore:
    """``{state_dir}/rds/jobs.db`` of one owner."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.owner = workspace.email
        self._db = Database(workspace.state_dir / "rds" / "jobs.db", _SCHEMA)
        self._audit = AuditLog(workspace.audit_db)

    def close(self) -> None:
        self._db.close()
        self._audit.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, record: JobRecord) -> bool:
        """Record a new submitted job (and its event); False if the id is taken."""
        if record.status is not JobState.SUBMITTED:
            raise ValueError("a new job starts submitted")
        with self._db.transaction():
            added = self._db.execute(
                "INSERT OR IGNORE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.owner,
                    record.submitter,
                    record.name,
                    record.dataset,
                    record.entry,
                    record.kind,
                    record.package_sha256,
                    record.status.value,
                    record.reason,
                    record.created,
                    record.updated,
                ),
            )
            if added:
                self._event(record.id, record.submitter, "submit", None, JobState.SUBMITTED, "")
        return bool(added)

    def get(self, job_id: str, *, exact: bool = False) -> JobRecord:
        """The job ``job_id``, or (unless ``exact``) the one job whose id starts with it."""
        rows = self._db.query("SELECT * FROM jobs WHERE id=?", (job_id,))
        if not rows and not exact and len(job_id) >= 4:
            rows = self._db.query(
                "SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
            )
            if len(rows) > 1:
                raise JobNotFound(f"job id prefix {job_id!r} names several jobs; give more of it")
        if not rows:
            raise JobNotFound(f"{self.owner} has no job {job_id!r}")
        return JobRecord(**dict(rows[0]))

    def list(
        self, *, status: JobState | None = None, submitter: str | None = None
    ) -> list[JobRecord]:
        """Newest first."""
        where, params = [], []
        if status is not None:
            where.append("status=?")
            params.append(status.value)
        if submitter is not None:
            where.append("submitter=?")
            params.append(submitter)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.query(sql + " ORDER BY created DESC", params)
        return [JobRecord(**dict(row)) for row in rows]

    def move(self, job_id: str, target: JobState, *, actor: str, reason: str = "") -> JobRecord:
        """Change the job's status, if the machine allows it and ``actor`` may.

        PermissionDenied for anyone but the owner or the owner's rules (the scientist
        never reaches this through any RPC, but the rule is kept here too);
        TransitionError for a change the state machine does not allow. Either refusal is
        recorded as an event, like the change would have been.
        """
        if actor != self.owner and not actor.startswith(RULE_ACTOR):
            denied = PermissionDenied(f"{actor} may not change {self.owner}'s jobs", job_id)
            self.refused(job_id, actor=actor, action=target.value, reason=str(denied))
            raise denied
        current = self.get(job_id)
        try:
            with self._db.transaction():
                current = self.get(job_id)
                check_transition(current.status, target)
                self._db.execute(
                    "UPDATE jobs SET status=?, reason=?, updated=? WHERE id=?",
                    (target.value, reason, time.time(), current.id),
                )
                self._event(current.id, actor, target.value, current.status, target, reason)
        except TransitionError as exc:
            self.refused(current.id, actor=actor, action=target.value, reason=str(exc))
            raise
        return self.get(current.id)

    def refused(self, job_id: str, *, actor: str, action: str, reason: str) -> None:
        """Record an attempt to act on a job that was refused (e.g. a forged approval)."""
        with self._db.transaction():
            self._event(job_id, actor, f"refused {action}", None, None, reason)

    def events(self, job_id: str | None = None) -> builtins.list[JobEvent]:
        """Oldest first."""
        if job_id is None:
            rows = self._db.query("SELECT * FROM events ORDER BY seq")
        else:
            rows = self._db.query("SELECT * FROM events WHERE job=? ORDER BY seq", (job_id,))
        return [JobEvent(**dict(row)) for row in rows]

    def _event(
        self,
        job_id: str,
        actor: str,
        action: str,
        before: JobState | None,
        after: JobState | None,
        reason: str,
    ) -> None:
        """Write one event to the audit log, then to ``events`` (see the module's doc);
        called inside a transaction of this store."""
        at, was, now = time.time(), before and before.value, after and after.value
        self._audit.record_job_event(
            job=job_id, at=at, actor=actor, action=action, before=was, after=now, reason=reason
        )
        self._db.execute(
            "INSERT INTO events (job, at, actor, action, before, after, reason)"
            " VALUES (?,?,?,?,?,?,?)",
            (job_id, at, actor, action, was, now, reason),
        )
