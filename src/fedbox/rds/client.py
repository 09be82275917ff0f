"""The notebook API: ``rds = fedbox.rds.connect(root, email)``.

Scientist: ``rds.datasets(owner)``, ``job = rds.submit(code_dir, to=..., dataset=...)``,
``job.wait()``, ``job.results(out)``. Owner: ``rds.create_dataset(...)``,
``rds.jobs(status=...)``, ``job.approve()``, ``job.run()``, ``job.share()``, and
``rds.serve()`` for the daemon.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError, RemoteError
from fedbox.rds import datasets as _datasets
from fedbox.rds.db import Database
from fedbox.rds.models import DatasetInfo, FileInfo, JobRecord, Manifest
from fedbox.rds.owner import Owner
from fedbox.rds.package import DEFAULT_MAX_PACKAGE, extract_checked, pack
from fedbox.rds.sandbox import Limits, RunResult
from fedbox.rds.service import APP, RdsService
from fedbox.rds.states import JobState
from fedbox.rpc import Box, Status
from fedbox.rpc import connect as rpc_connect

__all__ = ["OwnedJob", "Rds", "SubmittedJob", "connect", "sent_jobs"]

_FINAL_FOR_SCIENTIST = {JobState.REJECTED, JobState.SHARED, JobState.WITHHELD}
"""States after which nothing more happens to a job on its owner's side for the
scientist to wait on."""

_SENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
"""


def _sent_db(workspace: Workspace) -> Database:
    return Database(workspace.state_dir / "rds" / "sent.db", _SENT_SCHEMA)


def sent_jobs(workspace: Workspace) -> list[dict[str, Any]]:
    """Jobs ``workspace``'s identity submitted, newest first, with their last known
    state (updated whenever their status is asked)."""
    db = _sent_db(workspace)
    try:
        return [dict(r) for r in db.query("SELECT * FROM sent ORDER BY created DESC")]
    finally:
        db.close()


class SubmittedJob:
    """A job this identity submitted; its state is asked of the owner's daemon."""

    def __init__(self, rds: Rds, row: dict[str, Any]) -> None:
        self._rds = rds
        self.id: str = row["id"]
        self.owner: str = row["owner"]
        self.name: str = row["name"]
        self.dataset: str = row["dataset"]
        self.package_sha256: str = row["package_sha256"]
        self.last_status = JobState(row["status"])
        self.last_reason: str = row["reason"]

    def __repr__(self) -> str:
        return f"<SubmittedJob {self.id[:8]} {self.name} to {self.owner}: {self.last_status}>"

    def _ask(self, endpoint: str, timeout: float) -> bytes:
        body = json.dumps({"id": self.id}).encode()
        future = self._rds.app.send(self.owner, endpoint, body, expires_in=max(timeout, 60))
        return bytes(future.wait(timeout).raise_for_status().body)  # received: bytes already

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        """The owner's view of this job (status, reason); ResponseTimeout if the owner's
        daemon does not answer in time."""
        view = json.loads(self._ask("status", timeout))
        self.last_status = JobState(view["status"])
        self.last_reason = view["reason"]
        self._rds._note_status(self.id, self.last_status, self.last_reason)
        return view

    def wait(self, timeout: float = 3600.0, *, until: set[JobState] | None = None) -> JobState:
        """Ask until the job is rejected, shared or withheld (or one of ``until``).

        While the owner has not taken the submission yet (its daemon was down), this
        waits for the owner's answer to the submission itself; a refused package raises
        RemoteError saying why. TimeoutError if nothing final happens in ``timeout`` s.
        """
        targets = until or _FINAL_FOR_SCIENTIST
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {self.id} still {self.last_status} after {timeout:g} s")
            try:
                state = JobState(self.status(timeout=left)["status"])
            except RemoteError as exc:
                if exc.status != Status.NOT_FOUND:
                    raise
                self._rds.submission_answer(self, max(deadline - time.monotonic(), 0.001))
                continue
            if state in targets:
                return state
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 1.5, 2.0)

    def results(self, out: str | os.PathLike[str], timeout: float = 300.0) -> list[str]:
        """Fetch the shared outputs and logs into ``out``; RemoteError 403 if not shared."""
        data = self._ask("results", timeout)
        return extract_checked(data, Path(out))


class OwnedJob:
    """A job submitted to this identity, as its owner acts on it."""

    def __init__(self, rds: Rds, record: JobRecord) -> None:
        self._rds = rds
        self.record = record

    def __repr__(self) -> str:
        r = self.record
        return f"<OwnedJob {r.id[:8]} {r.name} from {r.submitter}: {r.status}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> JobState:
        return self.record.status

    def _owner(self) -> Owner:
        return self._rds.owner

    def _decided(self, record: JobRecord) -> OwnedJob:
        """Keep the record an owner's decision returned; ``self``, so calls can chain."""
        self.record = record
        return self

    def manifest(self) -> Manifest:
        return self._owner().manifest(self.id)

    def approve(self) -> OwnedJob:
        return self._decided(self._owner().approve(self.id))

    def reject(self, reason: str) -> OwnedJob:
        return self._decided(self._owner().reject(self.id, reason))

    def run(self, *, mock: bool = False, with_deps: bool = False) -> RunResult:
        """On the private data (approved jobs), or on the mock (``mock=True``, any job,
        state unchanged); ``with_deps`` installs the job's requirements.txt first."""
        if mock:
            return self._owner().run_mock(self.id)
        self.record, result = self._owner().run(self.id, with_deps=with_deps)
        return result

    def outputs(self) -> list[FileInfo]:
        return self._owner().outputs(self.id)

    def share(self) -> OwnedJob:
        return self._decided(self._owner().share(self.id))

    def withhold(self, reason: str) -> OwnedJob:
        return self._decided(self._owner().withhold(self.id, reason))


class Rds:
    """One identity's remote data science: as scientist, as owner, or both."""

    def __init__(
        self, box: Box, *, limits: Limits | None = None, max_package: int = DEFAULT_MAX_PACKAGE
    ) -> None:
        self.box = box
        self.email = box.email
        self.workspace = Workspace.for_email(box.email, box.workspace.state_dir)
        self.app = box.app(APP)
        self.max_package = max_package
        self.owner = Owner(self.workspace, box.store, limits=limits, max_package=max_package)
        self._sent = _sent_db(self.workspace)
        self._service: RdsService | None = None

    def close(self) -> None:
        if self._service is not None:
            self._service.stop()
        self.owner.close()
        self._sent.close()
        self.box.close()

    def __enter__(self) -> Rds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- datasets ------------------------------------------------------------------

    def datasets(self, owner: str | None = None) -> list[DatasetInfo]:
        return _datasets.list_datasets(self.box.store, owner)

    def dataset(self, name: str, owner: str) -> DatasetInfo:
        return _datasets.get_dataset(self.box.store, owner, name)

    def create_dataset(
        self,
        name: str,
        *,
        private: str | os.PathLike[str],
        mock: str | os.PathLike[str],
        description: str = "",
        auto_approve: list[str] | tuple[str, ...] = (),
    ) -> DatasetInfo:
        """``auto_approve``: senders whose code jobs on it the daemon approves (only
        approves: you still run and share them; their FL jobs still need you)."""
        return _datasets.create_dataset(
            self.box.store,
            self.workspace,
            name,
            private=Path(private),
            mock=Path(mock),
            description=description,
            auto_approve=auto_approve,
        )

    def auto_approvers(self, name: str) -> list[str]:
        """Who the daemon auto-approves on our dataset ``name`` (kept in our state only)."""
        return _datasets.auto_approvers(self.workspace, name)

    def delete_dataset(self, name: str) -> None:
        _datasets.delete_dataset(self.box.store, self.workspace, name)

    # -- as a scientist ----------------------------------------------------------------

    def submit(
        self,
        code_dir: str | os.PathLike[str],
        *,
        to: str,
        dataset: str,
        entry: str = "python main.py",
        name: str | None = None,
    ) -> SubmittedJob:
        """Pack ``code_dir`` and send it, encrypted, to ``to``'s daemon. The job id is
        the request's id, known at once; the owner need not be running."""
        return self.submit_to_each(code_dir, [to], dataset=dataset, entry=entry, name=name)[0]

    def submit_to_each(
        self,
        code_dir: str | os.PathLike[str],
        owners: list[str],
        *,
        dataset: str,
        entry: str = "python main.py",
        name: str | None = None,
        kind: Literal["code", "fl"] = "code",
    ) -> list[SubmittedJob]:
        """Pack ``code_dir`` once and send the same package to each owner: one job per
        owner (an FL job goes to every datasite of the run), same package digest."""
        data, manifest = pack(
            Path(code_dir),
            entry=entry,
            dataset=dataset,
            name=name,
            kind=kind,
            max_size=self.max_package,
        )
        jobs = []
        for owner in owners:
            future = self.app.send(owner, "submit", data, expires_in=7 * 86400)
            row = {
                "id": future.id,
                "owner": owner,
                "name": manifest.name,
                "dataset": dataset,
                "package_sha256": manifest.digest(),
                "created": time.time(),
                "status": JobState.SUBMITTED.value,
                "reason": "",
            }
            names = ", ".join(row)
            values = ", ".join(f":{k}" for k in row)
            self._sent.execute(f"INSERT INTO sent ({names}) VALUES ({values})", row)
            jobs.append(SubmittedJob(self, row))
        return jobs

    def submitted(self) -> list[SubmittedJob]:
        """Jobs this identity submitted, newest first, with their last known state."""
        rows = self._sent.query("SELECT * FROM sent ORDER BY created DESC")
        return [SubmittedJob(self, dict(r)) for r in rows]

    def job(self, job_id: str) -> SubmittedJob:
        rows = self._sent.query(
            "SELECT * FROM sent WHERE id=? OR id LIKE ?", (job_id, job_id + "%")
        )
        if len(rows) != 1:
            raise FedboxError(
                f"{self.email} submitted no job {job_id!r}"
                if not rows
                else f"{job_id!r} is ambiguous"
            )
        return SubmittedJob(self, dict(rows[0]))

    def refresh(self, timeout: float = 30.0) -> list[SubmittedJob]:
        """Ask every owner we submitted to for our jobs' states (one ``list`` request
        each, sent together) and remember them; returns :meth:`submitted`."""
        owners = sorted({job.owner for job in self.submitted()})
        futures = [
            self.app.send(owner, "list", b"", expires_in=max(timeout, 60)) for owner in owners
        ]
        deadline = time.monotonic() + timeout
        for future in futures:
            left = max(deadline - time.monotonic(), 0.001)
            for view in json.loads(bytes(future.wait(left).raise_for_status().body)):
                self._note_status(view["id"], JobState(view["status"]), view["reason"])
        return self.submitted()

    def submission_answer(self, job: SubmittedJob, timeout: float) -> dict[str, Any]:
        """The owner's answer to the submission itself: the job as recorded, or
        RemoteError 400 saying why the package was refused."""
        response = self.box.future(job.id).wait(timeout)
        if not response.ok:
            self._note_status(job.id, JobState.REJECTED, f"package refused: {response.text}")
            raise RemoteError(
                f"{job.owner} refused the package: {response.text}",
                status=response.status,
                message_id=job.id,
            )
        return json.loads(bytes(response.body))

    def _note_status(self, job_id: str, status: JobState, reason: str) -> None:
        self._sent.execute(
            "UPDATE sent SET status=?, reason=? WHERE id=?", (status.value, reason, job_id)
        )

    # -- as an owner -----------------------------------------------------------------

    def jobs(self, status: JobState | str | None = None) -> list[OwnedJob]:
        """Jobs submitted to this identity, newest first."""
        state = JobState(status) if status is not None else None
        return [OwnedJob(self, r) for r in self.owner.jobs.list(status=state)]

    def owned(self, job_id: str) -> OwnedJob:
        return OwnedJob(self, self.owner.jobs.get(job_id))

    def serve(self) -> RdsService:
        """Start the daemon in this process (background threads); ``close`` stops it."""
        if self._service is None:
            self._service = RdsService(self.box, self.owner)
            self._service.start()
        return self._service


def connect(
    root: str | os.PathLike[str],
    email: str,
    *,
    limits: Limits | None = None,
    max_package: int = DEFAULT_MAX_PACKAGE,
    **box_options: Any,
) -> Rds:
    """Join the store at ``root`` as ``email`` (encrypted; ``box_options`` as for
    :func:`fedbox.connect`)."""
    return Rds(rpc_connect(root, email, **box_options), limits=limits, max_package=max_package)
