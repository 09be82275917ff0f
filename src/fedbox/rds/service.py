"""The owner's daemon: RPC app ``rds`` (endpoints ``submit``, ``status``, ``list``,
``results``) and the auto-approval rules.

The sender of every request is the authenticated one the RPC layer gives; a scientist
sees and fetches only jobs they submitted (another's job looks exactly like a missing
one, 404). No endpoint changes a job's state on a sender's word: the names a forger
would try (``approve``, ``run``, ``share``...) are answered 403 and recorded.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from fedbox.errors import FedboxError
from fedbox.rds.jobs import JobNotFound
from fedbox.rds.models import JobRecord
from fedbox.rds.owner import Owner, RunRefused
from fedbox.rds.rules import DatasetRule, Rule, Rules, approving_rule
from fedbox.rds.states import JobState
from fedbox.rpc import App, Box, Handler, Request, Response, Status

__all__ = ["APP", "FORBIDDEN", "RdsService", "public_view"]

logger = logging.getLogger(__name__)

APP = "rds"
FORBIDDEN = ("approve", "reject", "run", "share", "withhold", "update")
"""Endpoints a scientist might try to change their job's state through: always 403."""


def public_view(job: JobRecord) -> dict[str, object]:
    """What the submitter learns about their job: never paths, logs or outputs."""
    return {
        "id": job.id,
        "owner": job.owner,
        "name": job.name,
        "dataset": job.dataset,
        "status": job.status.value,
        "reason": job.reason,
        "package_sha256": job.package_sha256,
        "created": job.created,
        "updated": job.updated,
    }


def _job_id(request: Request) -> str:
    try:
        job_id = json.loads(request.body)["id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError('body must be JSON {"id": JOB_ID}') from exc
    if not isinstance(job_id, str):
        raise ValueError("id must be a string")
    return job_id


def _json(value: object, status: int = Status.OK) -> Response:
    return Response(body=json.dumps(value).encode(), status=status)


class RdsService:
    """Serves app ``rds`` for ``owner`` on ``box``; auto-approved runs on a worker thread."""

    def __init__(self, box: Box, owner: Owner) -> None:
        if box.email != owner.email:
            raise ValueError("the box and the owner must be the same identity")
        self.box = box
        self.owner = owner
        self.rules = Rules(owner.workspace)
        self.app: App = box.app(APP)
        self._runs = ThreadPoolExecutor(1, thread_name_prefix="fedbox-rds-run")
        self._lock = threading.Lock()
        self.app.on_request("submit", rerun=True)(self._submit)
        self.app.on_request("status", rerun=True)(self._status)
        self.app.on_request("list", rerun=True)(self._list)
        self.app.on_request("results", rerun=True)(self._results)
        for name in FORBIDDEN:
            self.app.on_request(name)(self._forbidden(name))

    def start(self) -> None:
        for job in self.owner.recover_interrupted():
            logger.warning("job %s was left running by a process that died: now failed", job.id)
        self.app.start()

    def stop(self) -> None:
        self.app.stop()
        self._runs.shutdown(wait=True)

    def _own_job(self, request: Request, action: str) -> JobRecord | None:
        """The sender's job the request names; None (a 404) for a missing job, and for
        another's, whose asking is recorded as a refused ``action``."""
        try:
            job = self.owner.jobs.get(_job_id(request), exact=True)
        except JobNotFound:
            return None
        if job.submitter != request.sender:
            self.owner.jobs.refused(
                job.id, actor=request.sender, action=action, reason="not the job's submitter"
            )
            return None
        return job

    def _submit(self, request: Request) -> Response:
        try:
            job = self.owner.receive(request.id, request.sender, request.body)
        except (FedboxError, ValueError) as exc:
            logger.warning("refused a package from %s: %s", request.sender, exc)
            self.owner.jobs.refused(
                request.id, actor=request.sender, action="submit", reason=str(exc)
            )
            return Response(body=str(exc).encode(), status=Status.BAD_REQUEST)
        logger.info("job %s from %s for %s: %s", job.id, job.submitter, job.dataset, job.status)
        rule = approving_rule(self.rules, request.sender, job)
        if rule is not None and job.status is JobState.SUBMITTED:
            why = f"{rule.description}; package sha256 {job.package_sha256}"
            job = self.owner.approve(job.id, actor=rule.actor, reason=why)
            if rule.run and job.kind == "code":  # an approved FL job runs in FlJobs
                self._runs.submit(self._auto_run, job.id, rule)
        return _json(public_view(job))

    def _auto_run(self, job_id: str, rule: Rule | DatasetRule) -> None:
        try:
            job, _ = self.owner.run(job_id, actor=rule.actor)
            if rule.share:
                self.owner.share(job.id, actor=rule.actor)
        except FedboxError:
            logger.exception("auto-run of job %s failed", job_id)

    def _status(self, request: Request) -> Response:
        job = self._own_job(request, "status")
        if job is None:
            return Response(body=b"no such job", status=Status.NOT_FOUND)
        return _json(public_view(job))

    def _list(self, request: Request) -> Response:
        return _json([public_view(j) for j in self.owner.jobs.list(submitter=request.sender)])

    def _results(self, request: Request) -> Response:
        job = self._own_job(request, "results")
        if job is None:
            return Response(body=b"no such job", status=Status.NOT_FOUND)
        try:
            return Response(body=self.owner.results_for(job.id, actor=request.sender))
        except RunRefused as exc:
            return Response(body=str(exc).encode(), status=Status.FORBIDDEN)

    def _forbidden(self, action: str) -> Handler:
        def refuse(request: Request) -> Response:
            try:
                job_id = _job_id(request)
            except ValueError:
                job_id = "-"
            self.owner.jobs.refused(
                job_id, actor=request.sender, action=action, reason="only the owner may"
            )
            logger.warning("refused %s's request to %s job %s", request.sender, action, job_id)
            return Response(
                body=f"only {self.owner.email} may {action} jobs".encode(), status=Status.FORBIDDEN
            )

        refuse.__name__ = f"refuse_{action}"
        return refuse
