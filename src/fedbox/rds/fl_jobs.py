"""The owner's side of FL jobs: the daemon serves each approved FL job's client role.

The daemon holds the keys and the store; the job's code does not. For every approved
job of kind ``fl`` the daemon starts the job sandboxed with pipes (no network, no store,
no state dir but its own ``state/``), serves the run's RPC app, whose name is derived
from the job (:func:`fl_app_name`) so nothing else is served, and passes each
decrypted request body from the job's submitter (no one else's) to the job as one
frame on its stdin; the job's frame on stdout is the reply the daemon sends back,
encrypted. The job ends when it exits: after the
aggregator's stop message (finished), or when it crashes, hits a limit or is killed
(failed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from fedbox.errors import FedboxError
from fedbox.rds.owner import Owner
from fedbox.rds.pipes import REPLY_OK, PipeClosed, read_frame, write_frame
from fedbox.rds.sandbox import SandboxedProcess
from fedbox.rds.states import JobState
from fedbox.rpc import Box, Request, Response, Status

__all__ = ["DATASITE_ENV", "FlJobs", "fl_app_name"]

logger = logging.getLogger(__name__)

DATASITE_ENV = "FEDBOX_DATASITE"
"""The owner's email, told to an FL job: it is the node the job plays."""


def fl_app_name(package_sha256: str) -> str:
    """The RPC app an FL job's run uses: derived from the package digest, which every
    owner of one submission shares (the scientist packs once) and which names the
    package each owner approved, so a daemon serves only what it approved."""
    return f"fl-{package_sha256[:24]}"


class FlJobs:
    """Watches the owner's jobs and serves every approved FL job until it ends."""

    def __init__(self, box: Box, owner: Owner, *, endpoint: str, poll: float = 0.5) -> None:
        if box.email != owner.email:
            raise ValueError("the box and the owner must be the same identity")
        self.box = box
        self.owner = owner
        self.endpoint = endpoint
        self.poll = poll
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[str, SandboxedProcess | None] = {}
        self._threads: list[threading.Thread] = []
        self._watcher = threading.Thread(target=self._watch, name="fedbox-fl-jobs", daemon=True)

    def start(self) -> FlJobs:
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching; running FL jobs are killed (they end failed)."""
        self._stopping.set()
        with self._lock:
            for process in self._active.values():
                if process is not None:
                    process.kill()
        if self._watcher.is_alive():
            self._watcher.join()
        for thread in self._threads:
            thread.join()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                for job in self.owner.jobs.list(status=JobState.APPROVED):
                    if job.kind == "fl" and job.id not in self._active:
                        self._launch(job.id)
            except Exception:  # the watcher must outlive one bad poll
                logger.exception("checking for approved FL jobs failed")
            self._stopping.wait(self.poll)

    def _launch(self, job_id: str) -> None:
        with self._lock:
            self._active[job_id] = None
        thread = threading.Thread(target=self._run, args=(job_id,), name=f"fedbox-fl-{job_id[:8]}")
        self._threads.append(thread)
        thread.start()

    def _run(self, job_id: str) -> None:
        try:
            job, result = self.owner.run_piped(
                job_id, partial(self._serving, job_id), extra_env={DATASITE_ENV: self.owner.email}
            )
            logger.info("FL job %s ended %s: %s", job.id, job.status, result.reason)
        except FedboxError:
            logger.exception("FL job %s could not run", job_id)
        except Exception:
            logger.exception("FL job %s failed in the daemon", job_id)

    @contextmanager
    def _serving(self, job_id: str, process: SandboxedProcess) -> Iterator[None]:
        with self._lock:
            self._active[job_id] = process
            if self._stopping.is_set():
                process.kill()
        job = self.owner.jobs.get(job_id, exact=True)
        app = self.box.app(fl_app_name(job.package_sha256))
        pipe_lock = threading.Lock()

        def relay(request: Request) -> Response:
            if request.sender != job.submitter:
                logger.warning("FL job %s: refused a message from %s", job_id, request.sender)
                self.owner.jobs.refused(
                    job.id, actor=request.sender, action="message", reason="not the submitter"
                )
                return Response(body=b"only the job's submitter runs it", status=Status.FORBIDDEN)
            stdin, stdout = process.proc.stdin, process.proc.stdout
            assert stdin is not None and stdout is not None  # started with pipes
            with pipe_lock:
                try:
                    write_frame(stdin, request.body)
                    reply = read_frame(stdout)
                except PipeClosed as exc:
                    reply, why = None, str(exc)
                else:
                    why = "it ended"
            if reply is None:
                logger.warning("FL job %s gave no reply to %s: %s", job_id, request.id, why)
                return Response(body=b"the job's client ended", status=Status.INTERNAL_ERROR)
            if reply[:1] != REPLY_OK:
                return Response(body=reply[1:], status=Status.BAD_REQUEST)
            return Response(body=reply[1:])

        app.on_request(self.endpoint)(relay)
        app.start()
        logger.info("FL job %s serving app %s", job_id, app.name)
        try:
            yield
        finally:
            app.stop()
