"""What a data owner does with jobs: take a submission, review, approve or reject, run,
look at the outputs, share or withhold. Local operations on the owner's state dir; the
daemon (``fedbox.rds.service``) calls :meth:`Owner.receive` for submissions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from fedbox.datasite.workspace import Workspace
from fedbox.errors import FedboxError
from fedbox.rds.datasets import METADATA, DatasetError, dataset_dir, private_path
from fedbox.rds.files import describe_folder
from fedbox.rds.jobs import JobNotFound, JobStore, job_dir
from fedbox.rds.models import FileInfo, JobRecord, Manifest
from fedbox.rds.package import DEFAULT_MAX_PACKAGE, pack_folders, read_package, unpack
from fedbox.rds.sandbox import (
    JobPaths,
    Limits,
    RunResult,
    SandboxedProcess,
    run_sandboxed,
    spawn_sandboxed,
)
from fedbox.rds.states import JobState
from fedbox.store import Store

__all__ = ["Owner", "RunRefused"]


class RunRefused(FedboxError):
    """A run that cannot start: the job is not approved, or its dataset is gone."""


class Owner:
    """One owner's jobs. ``store`` is needed only for mock runs (the published mock)."""

    def __init__(
        self,
        workspace: Workspace,
        store: Store | None = None,
        *,
        limits: Limits | None = None,
        max_package: int = DEFAULT_MAX_PACKAGE,
    ) -> None:
        self.workspace = workspace
        self.email = workspace.email
        self.store = store
        self.jobs = JobStore(workspace)
        self.limits = limits or Limits()
        self.max_package = max_package

    def close(self) -> None:
        self.jobs.close()

    def __enter__(self) -> Owner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submissions ---------------------------------------------------------------

    def receive(self, job_id: str, submitter: str, package: bytes) -> JobRecord:
        """Check a package, keep it and record the job as submitted. ``submitter`` is the
        request's authenticated sender. PackageError / DatasetError before anything is
        written; a second delivery of the same job returns the first record."""
        manifest = read_package(package, max_size=self.max_package)
        private_path(self.workspace, manifest.dataset)
        try:
            existing = self.jobs.get(job_id, exact=True)
        except KeyError:
            existing = None
        if existing is not None:
            if existing.submitter != submitter:
                raise FedboxError(f"job id {job_id} is taken")
            return existing
        folder = job_dir(self.workspace, job_id)
        if folder.exists():
            shutil.rmtree(folder)  # a delivery interrupted before its record was written
        folder.mkdir(parents=True, mode=0o700)
        (folder / "package.tar").write_bytes(package)
        unpack(package, folder / "code", max_size=self.max_package)
        now = time.time()
        record = JobRecord(
            id=job_id,
            owner=self.email,
            submitter=submitter,
            name=manifest.name,
            dataset=manifest.dataset,
            entry=manifest.entry,
            kind=manifest.kind,
            package_sha256=manifest.digest(),
            status=JobState.SUBMITTED,
            created=now,
            updated=now,
        )
        self.jobs.add(record)
        return self.jobs.get(job_id)

    # -- review and decisions ------------------------------------------------------

    def manifest(self, job_id: str) -> Manifest:
        job = self.jobs.get(job_id)
        return read_package((job_dir(self.workspace, job.id) / "package.tar").read_bytes())

    def code_file(self, job_id: str, path: str) -> bytes:
        """One file of the job's code, by its manifest path."""
        listed = {f.path for f in self.manifest(job_id).files}
        if path not in listed:
            raise FedboxError(f"{path!r} is not in the job's manifest")
        return (job_dir(self.workspace, self.jobs.get(job_id).id) / "code" / path).read_bytes()

    def requirements(self, job_id: str) -> list[str]:
        """The packages the job asks for (its ``requirements.txt``, comments dropped):
        installed only if the owner runs it ``with_deps``."""
        if REQUIREMENTS not in {f.path for f in self.manifest(job_id).files}:
            return []
        text = self.code_file(job_id, REQUIREMENTS).decode("utf-8", errors="replace")
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        return [line for line in lines if line]

    def approve(self, job_id: str, *, actor: str | None = None, reason: str = "") -> JobRecord:
        return self.jobs.move(job_id, JobState.APPROVED, actor=actor or self.email, reason=reason)

    def reject(self, job_id: str, reason: str) -> JobRecord:
        return self.jobs.move(job_id, JobState.REJECTED, actor=self.email, reason=reason)

    def withhold(self, job_id: str, reason: str) -> JobRecord:
        return self.jobs.move(job_id, JobState.WITHHELD, actor=self.email, reason=reason)

    def share(self, job_id: str, *, actor: str | None = None) -> JobRecord:
        return self.jobs.move(job_id, JobState.SHARED, actor=actor or self.email)

    # -- runs ----------------------------------------------------------------------

    def run(
        self, job_id: str, *, actor: str | None = None, with_deps: bool = False
    ) -> tuple[JobRecord, RunResult]:
        """Run an approved job on the private data; it ends finished or failed.
        ``with_deps``: first install the job's ``requirements.txt`` into a venv of its own
        (outside the sandbox, with this machine's pip settings: the owner's choice)."""
        actor = actor or self.email
        with self._refusals(job_id, "run", actor):
            if self.jobs.get(job_id).kind == "fl":
                raise RunRefused(
                    f"job {job_id} is an FL job: its client role runs in `fedbox serve` once "
                    "approved"
                )
            job, data = self._runnable(job_id)
            folder = job_dir(self.workspace, job.id)
            with _runner_lock(folder) as held:
                if not held:
                    raise RunRefused(f"job {job.id} is being run by another process")
                venv = build_venv(folder) if with_deps else None
                self.jobs.move(job.id, JobState.RUNNING, actor=actor)
                try:
                    result = self._run(job, folder, data, folder, venv)
                except BaseException as exc:
                    reason = f"could not start: {exc}"
                    self.jobs.move(job.id, JobState.FAILED, actor=actor, reason=reason)
                    raise
                target = JobState.FINISHED if result.ok else JobState.FAILED
                return self.jobs.move(job.id, target, actor=actor, reason=result.reason), result

    @contextmanager
    def _refusals(self, job_id: str, action: str, actor: str) -> Iterator[None]:
        """Record a RunRefused raised inside as a refused ``action`` in the job's events
        (and so in the audit log), like a refused state change: a refusal that comes
        before the job moves is on the record too."""
        try:
            yield
        except RunRefused as exc:
            try:
                full_id = self.jobs.get(job_id).id
            except JobNotFound:
                full_id = job_id
            self.jobs.refused(full_id, actor=actor, action=action, reason=str(exc))
            raise

    def _runnable(self, job_id: str) -> tuple[JobRecord, Path]:
        """The approved job and its private data folder; RunRefused otherwise."""
        job = self.jobs.get(job_id)
        if job.status is not JobState.APPROVED:
            raise RunRefused(f"job {job.id} is {job.status}; only an approved job runs")
        try:
            data = private_path(self.workspace, job.dataset)
        except DatasetError as exc:
            raise RunRefused(f"job {job.id} needs {job.dataset!r}: {exc}") from exc
        if not data.is_dir():
            raise RunRefused(f"the private data of {job.dataset!r} ({data}) is gone")
        return job, data

    def run_piped(
        self,
        job_id: str,
        serving: Callable[[SandboxedProcess], AbstractContextManager[object]],
        *,
        extra_env: dict[str, str] | None = None,
    ) -> tuple[JobRecord, RunResult]:
        """Run an approved job that talks through pipes only (an FL job's client role):
        it starts sandboxed like any run, with a ``state/`` folder of its own, and is
        fed inside ``serving(process)`` until it exits (or its timeout, or a kill);
        then the job ends finished or failed. Its stderr stays in the job's ``logs/``,
        as for any run."""
        with self._refusals(job_id, "run", self.email):
            job, data = self._runnable(job_id)
            folder = job_dir(self.workspace, job.id)
            with _runner_lock(folder) as held:
                if not held:
                    raise RunRefused(f"job {job.id} is being run by another process")
                self.jobs.move(job.id, JobState.RUNNING, actor=self.email)
                for old in (folder / "output", folder / "logs"):
                    if old.exists():
                        shutil.rmtree(old)
                paths = JobPaths(
                    code=folder / "code",
                    data=data,
                    output=folder / "output",
                    logs=folder / "logs",
                    state=folder / "state",
                )
                try:
                    process = spawn_sandboxed(
                        job.entry,
                        paths,
                        job_id=job.id,
                        limits=self.limits,
                        pipes=True,
                        extra_env=extra_env,
                    )
                except BaseException as exc:
                    reason = f"could not start: {exc}"
                    self.jobs.move(job.id, JobState.FAILED, actor=self.email, reason=reason)
                    raise
                try:
                    with serving(process):
                        result = process.finish()
                except BaseException:
                    process.kill()
                    process.finish()
                    self.jobs.move(job.id, JobState.FAILED, actor=self.email, reason="interrupted")
                    raise
                target = JobState.FINISHED if result.ok else JobState.FAILED
                ended = self.jobs.move(job.id, target, actor=self.email, reason=result.reason)
                return ended, result

    def recover_interrupted(self) -> list[JobRecord]:
        """Jobs left running by a process that died (nobody holds their run lock) become
        failed, reason "interrupted"; their run was killed with that process."""
        failed = []
        for job in self.jobs.list(status=JobState.RUNNING):
            with _runner_lock(job_dir(self.workspace, job.id)) as held:
                if held:
                    reason = "interrupted: the process running it ended before the run did"
                    failed.append(
                        self.jobs.move(job.id, JobState.FAILED, actor=self.email, reason=reason)
                    )
        return failed

    def run_mock(self, job_id: str) -> RunResult:
        """Run any job on the dataset's published mock; its state does not change.
        Outputs and logs go to the job's ``mock-run/`` folder."""
        job = self.jobs.get(job_id)
        folder = job_dir(self.workspace, job.id) / "mock-run"
        if folder.exists():
            shutil.rmtree(folder)
        with tempfile.TemporaryDirectory(prefix="fedbox-mock-") as tmp:
            with self._refusals(job.id, "run on the mock", self.email):
                mock = fetch_mock(self._store(), self.email, job.dataset, Path(tmp))
            return self._run(job, job_dir(self.workspace, job.id), mock, folder)

    def _store(self) -> Store:
        if self.store is None:
            raise RunRefused("a mock run needs the store (--root)")
        return self.store

    def _run(
        self, job: JobRecord, folder: Path, data: Path, into: Path, venv: Path | None = None
    ) -> RunResult:
        output = into / "output"
        logs = into / "logs"
        for old in (output, logs):
            if old.exists():
                shutil.rmtree(old)
        return run_sandboxed(
            job.entry,
            code=folder / "code",
            data=data,
            output=output,
            logs=logs,
            job_id=job.id,
            limits=self.limits,
            venv=venv,
        )

    def job_folder(self, job_id: str) -> Path:
        return job_dir(self.workspace, self.jobs.get(job_id).id)

    def outputs(self, job_id: str) -> list[FileInfo]:
        """What ``share`` would send: the files under ``output/`` and ``logs/``."""
        folder = job_dir(self.workspace, self.jobs.get(job_id).id)
        files = []
        for top in ("output", "logs"):
            if (folder / top).is_dir():
                files += [
                    f.model_copy(update={"path": f"{top}/{f.path}"})
                    for f in describe_folder(folder / top)
                ]
        return files

    def results_for(self, job_id: str, *, actor: str | None = None) -> bytes:
        """The shared results of a job (tar of ``output/`` and ``logs/``) for ``actor``
        (the submitter asking; the owner if None)."""
        job = self.jobs.get(job_id)
        with self._refusals(job.id, "results", actor or self.email):
            if job.status is not JobState.SHARED:
                raise RunRefused(f"job {job.id} is {job.status}, not shared")
        folder = job_dir(self.workspace, job.id)
        return pack_folders({"output": folder / "output", "logs": folder / "logs"})


REQUIREMENTS = "requirements.txt"


def build_venv(folder: Path) -> Path:
    """``{job}/venv`` with the packages the job's ``requirements.txt`` names (pip's
    output in ``{job}/deps.log``, which stays with the owner). RunRefused if there is no
    such file or pip fails; the job's state is unchanged then."""
    requirements = folder / "code" / REQUIREMENTS
    if not requirements.is_file():
        raise RunRefused(f"--with-deps: the job has no {REQUIREMENTS}")
    venv = folder / "venv"
    log = folder / "deps.log"
    with log.open("wb") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--no-input",
                "-r",
                str(requirements),
            ],
        ]
        for step in steps:
            done = subprocess.run(
                step, cwd=folder / "code", stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
            if done.returncode != 0:
                raise RunRefused(f"--with-deps: {' '.join(step[:4])} failed; see {log}")
    return venv


@contextmanager
def _runner_lock(folder: Path) -> Iterator[bool]:
    """An exclusive lock on the job's ``run.lock`` while it runs (True if we got it):
    the kernel drops it when its holder dies, however it dies."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "run.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def fetch_mock(store: Store, owner: str, dataset: str, into: Path) -> Path:
    """The published mock of ``owner``'s ``dataset`` as a local folder: the store's own
    folder when it has one, else a copy under ``into``."""
    base = dataset_dir(owner, dataset)
    if not store.exists(str(base / METADATA)):
        raise RunRefused(f"{owner} has published no dataset {dataset!r}")
    local = store.local_path(str(base / "mock"))
    if local is not None and local.is_dir():
        return local
    target = into / "mock"
    target.mkdir(parents=True, exist_ok=True)
    prefix = str(base / "mock") + "/"
    for entry in store.list(prefix):
        dest = target / entry.path[len(prefix) :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(store.read(entry.path))
    return target
