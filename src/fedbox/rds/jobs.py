"""The owner's jobs: records, their files, and every state change with who made it.

:meth:`JobStore.move` is the only code that changes a job's status: it checks the
transition (``fedbox.rds.states``), that the actor is the owner or one of the owner's
auto-approval rules, and writes the change and its event row in one transaction.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from pathlib import Path

from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError, PermissionDenied
from fedbox.rds.db import Database
from fedbox.rds.models import JobRecord
from fedbox.rds.states import JobState, check_transition

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


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One row of a job's audit trail: a state change, or an action that was refused."""

    seq: int
    job: str
    at: float
    actor: str
    action: str
    before: str | None
    after: str | None
    reason: str


def job_dir(workspace: Workspace, job_id: str) -> Path:
    """The job's private files: ``package.tar``, ``code/``, ``output/``, ``logs/``."""
    return workspace.state_dir / "rds" / "jobs" / job_id


class JobStore:
    """``{state_dir}/rds/jobs.db`` of one owner."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.owner = workspace.email
        self._db = Database(workspace.state_dir / "rds" / "jobs.db", _SCHEMA)

    def close(self) -> None:
        self._db.close()

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
        TransitionError for a change the state machine does not allow.
        """
        if actor != self.owner and not actor.startswith(RULE_ACTOR):
            raise PermissionDenied(f"{actor} may not change {self.owner}'s jobs", job_id)
        with self._db.transaction():
            current = self.get(job_id)
            check_transition(current.status, target)
            now = time.time()
            self._db.execute(
                "UPDATE jobs SET status=?, reason=?, updated=? WHERE id=?",
                (target.value, reason, now, current.id),
            )
            self._event(current.id, actor, target.value, current.status, target, reason)
        return self.get(current.id)

    def refused(self, job_id: str, *, actor: str, action: str, reason: str) -> None:
        """Record an attempt to act on a job that was refused (e.g. a forged approval)."""
        self._db.execute(
            "INSERT INTO events (job, at, actor, action, reason) VALUES (?,?,?,?,?)",
            (job_id, time.time(), actor, f"refused {action}", reason),
        )

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
        after: JobState,
        reason: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO events (job, at, actor, action, before, after, reason)"
            " VALUES (?,?,?,?,?,?,?)",
            (job_id, time.time(), actor, action, before and before.value, after.value, reason),
        )
