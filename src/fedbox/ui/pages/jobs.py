"""Datasets and jobs: what was sent to us for review, with its code highlighted, and the
owner's decisions (approve, reject, run, share, withhold) through ``fedbox.rds.owner``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, guess_lexer_for_filename
from pygments.util import ClassNotFound
from starlette.responses import FileResponse, RedirectResponse, Response

from fedbox.errors import FedboxError
from fedbox.rds.client import sent_jobs
from fedbox.rds.datasets import list_datasets
from fedbox.rds.jobs import JobNotFound
from fedbox.rds.models import DatasetInfo, JobRecord
from fedbox.rds.owner import Owner
from fedbox.rds.states import TRANSITIONS, JobState
from fedbox.ui.context import Ui, UiContext, render
from fedbox.ui.security import require_csrf

__all__ = ["highlighted", "router"]

router = APIRouter()
CSRF = [Depends(require_csrf)]
MAX_SHOWN = 512 * 1024
"""A code file bigger than this is listed but not shown (a browser tab is no pager)."""


@contextmanager
def _owner(ui: UiContext) -> Iterator[Owner]:
    """The owner API for our identity; its refusals become HTTP errors with their text."""
    with Owner(ui.settings.workspace.ensure(), ui.store) as owner:
        try:
            yield owner
        except JobNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except FedboxError as exc:  # a transition not allowed, a run refused
            raise HTTPException(409, str(exc)) from exc


def highlighted(path: str, code: bytes) -> Markup:
    """A code file as HTML with Pygments' classes (styled by ``/highlight.css``)."""
    text = code.decode("utf-8", errors="replace")
    try:
        lexer = guess_lexer_for_filename(path, text)
    except ClassNotFound:
        lexer = TextLexer()
    return Markup(highlight(text, lexer, HtmlFormatter(cssclass="hl", linenos="table")))


@cache
def _highlight_css() -> str:
    light = HtmlFormatter(style="default").get_style_defs(".hl")
    dark = HtmlFormatter(style="monokai").get_style_defs(".hl")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


@router.get("/highlight.css")
def highlight_css() -> Response:
    return Response(_highlight_css(), media_type="text/css")


def _datasets(ui: UiContext) -> list[DatasetInfo] | None:
    if ui.store is None:
        return None
    try:
        return list_datasets(ui.store, ui.settings.email)
    except (FedboxError, OSError):
        return []


@router.get("/jobs")
def jobs(request: Request, ui: Ui) -> Response:
    with _owner(ui) as owner:
        received = owner.jobs.list()
    return render(
        request,
        "jobs.html",
        page="jobs",
        received=received,
        submitted=sent_jobs(ui.settings.workspace),
        datasets=_datasets(ui),
    )


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str, ui: Ui, file: str = "") -> Response:
    with _owner(ui) as owner:
        record = owner.jobs.get(job_id, exact=True)
        manifest = owner.manifest(record.id)
        shown = file or _default_file(record, [f.path for f in manifest.files])
        code = None
        if shown:
            size = next((f.size for f in manifest.files if f.path == shown), None)
            if size is None:
                raise HTTPException(404, f"{shown!r} is not in the job's manifest")
            if size <= MAX_SHOWN:
                code = highlighted(shown, owner.code_file(record.id, shown))
        return render(
            request,
            "job.html",
            page="jobs",
            job=record,
            manifest=manifest,
            shown=shown,
            code=code,
            history=owner.jobs.events(record.id),
            requirements=owner.requirements(record.id),
            outputs=owner.outputs(record.id),
            next_states=TRANSITIONS[record.status],
            states=JobState,
        )


def _default_file(record: JobRecord, paths: list[str]) -> str:
    """The file the entry command names (``python main.py``), else the first one."""
    named = [p for p in paths if p in record.entry.split()]
    return named[0] if named else (paths[0] if paths else "")


@router.get("/jobs/{job_id}/outputs/{path:path}")
def output_file(job_id: str, path: str, ui: Ui) -> Response:
    """One output or log file, as plain text; only the paths ``outputs`` lists."""
    with _owner(ui) as owner:
        if path not in {f.path for f in owner.outputs(job_id)}:
            raise HTTPException(404, f"{path!r} is not among the job's outputs")
        folder = owner.job_folder(job_id)
    return FileResponse(folder / path, media_type="text/plain; charset=utf-8")


def _decision(action: str, act: Callable[..., Any], *, reasoned: bool = False) -> None:
    """Register ``POST /jobs/{id}/{action}``: one owner decision, then back to the job.
    A ``reasoned`` one (reject, withhold) needs the reason told to the submitter."""

    def endpoint(job_id: str, ui: Ui, reason: Annotated[str, Form()] = "") -> Response:
        args = [job_id]
        if reasoned:
            if not reason.strip():
                raise HTTPException(400, f"{action} needs a reason (the submitter is told it)")
            args.append(reason.strip())
        with _owner(ui) as owner:
            act(owner, *args)
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)

    endpoint.__name__ = action
    router.post(f"/jobs/{{job_id}}/{action}", dependencies=CSRF)(endpoint)


_decision("approve", lambda o, job_id: o.approve(job_id))
_decision("reject", Owner.reject, reasoned=True)
_decision("run", lambda o, job_id: o.run(job_id))
_decision("share", lambda o, job_id: o.share(job_id))
_decision("withhold", Owner.withhold, reasoned=True)
