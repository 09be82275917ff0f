"""``POST /api/v1/batch``: many small files written in one request.

A burst of small files (a sync daemon's folder after ``cp -r``, a round's messages)
costs one request instead of one PUT each. Every file is checked exactly as its own PUT
would be (access rules and path checks, its SHA-256, a rule file's syntax, its
condition, the quota) and answered on its own: the version written, or the status and
detail its PUT would have got. Accepted files are ordinary writes: one change each in
the log, so the feed, other hub processes and inline delivery see nothing new.

Body: ``{"files": [{"path", "sha256", "data" (base64), "if_match": VERSION | null,
"if_absent": bool}, ...]}`` (at most :data:`BATCH_FILES` files of at most
:data:`BATCH_FILE_MAX` bytes each, :data:`BATCH_BODY_MAX` bytes of JSON in all); answer:
``{"results": [{"path", "status", "file": FileInfo | null, "detail": str | null}]}`` in
the same order. The files are written in order: a rule file in the batch applies to the
files after it, as it would to later PUTs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fedbox.errors import FedboxError, InvalidIdentity
from fedbox.hub.access import is_rules_path
from fedbox.hub.context import Hub, current_caller, hub_of
from fedbox.hub.identity import Caller
from fedbox.hub.index import Condition, FileRow, NewFile, QuotaExceeded
from fedbox.hub.refusals import refusal
from fedbox.hub.routes_files import FileInfo, info_of, require, store_blob, verify_body

__all__ = [
    "BATCH_BODY_MAX",
    "BATCH_FILES",
    "BATCH_FILE_MAX",
    "BatchFile",
    "BatchResult",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["files"])

BATCH_FILES = 1000
BATCH_FILE_MAX = 1 << 20
"""Larger files go by PUT (streamed) or a resumable upload."""
BATCH_BODY_MAX = 32 << 20
_BLOB_WRITERS = ThreadPoolExecutor(32, "batch-blob")
"""Shared by the process's batches (threads made once, on first use)."""


class BatchFile(BaseModel):
    path: str
    sha256: str
    data: str
    """The bytes, base64."""
    if_match: int | None = None
    if_absent: bool = False


class BatchRequest(BaseModel):
    files: list[BatchFile]


class BatchResult(BaseModel):
    path: str
    status: int
    """200 if written (``file`` then says what), else the status its PUT would get."""
    file: FileInfo | None = None
    detail: str | None = None


class BatchAnswer(BaseModel):
    results: list[BatchResult]


def _refused(path: str, exc: Exception) -> BatchResult:
    answer = refusal(exc)
    if answer is None:
        raise exc
    return BatchResult(path=path, status=answer[0], detail=answer[1])


def _checked(hub: Hub, caller: Caller, item: BatchFile) -> tuple[bytes, str]:
    """The item's bytes and their sha256, once every check its PUT makes has passed."""
    require(hub, caller, item.path, write=True)
    try:
        body = base64.b64decode(item.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidIdentity(f"{item.path}: data is not base64", item.path) from exc
    if len(body) > BATCH_FILE_MAX:
        raise QuotaExceeded(
            f"{item.path}: {len(body)} bytes is over a batch's {BATCH_FILE_MAX} per file; "
            "PUT it on its own"
        )
    sha256 = hashlib.sha256(body).hexdigest()
    verify_body(item.path, sha256, item.sha256, body if is_rules_path(item.path) else None)
    return body, sha256


def _store_all(hub: Hub, bodies: list[bytes]) -> list[str]:
    """The bodies as blobs, written side by side: a local disk then syncs them in a few
    shared journal commits, not one each (ext4: concurrent fsyncs are grouped), and an
    object store takes them in parallel. Nothing stays on failure."""
    if len(bodies) <= 1:
        return [store_blob(hub, body) for body in bodies]
    futures = [_BLOB_WRITERS.submit(store_blob, hub, body) for body in bodies]
    wait(futures)
    keys = [f.result() for f in futures if f.exception() is None]
    if len(keys) < len(futures):
        for key in keys:
            hub.index.blobs.delete(key)
        raise next(exc for f in futures if (exc := f.exception()) is not None)
    return keys


def _write_group(
    hub: Hub, caller: Caller, items: list[BatchFile], results: list[BatchResult]
) -> None:
    """Check and store ``items``, then commit the accepted ones in one transaction."""
    if not items:  # no transaction (nor a notification to every hub process) for nothing
        return
    answers: dict[int, BatchResult] = {}
    accepted: list[tuple[int, bytes, str]] = []
    for i, item in enumerate(items):
        try:
            body, sha256 = _checked(hub, caller, item)
        except FedboxError as exc:
            answers[i] = _refused(item.path, exc)
            continue
        accepted.append((i, body, sha256))
    keys = _store_all(hub, [body for _, body, _ in accepted])
    staged = {
        i: NewFile(
            items[i].path, key, len(body), sha256,
            Condition(if_match=items[i].if_match, if_absent=items[i].if_absent),
        )
        for (i, body, sha256), key in zip(accepted, keys, strict=True)
    }  # fmt: skip
    try:
        rows = hub.index.put_many(caller.email, list(staged.values()))
    except BaseException:
        for new in staged.values():
            hub.index.blobs.delete(new.blob)
        raise
    written = dict(zip(staged, rows, strict=True))
    for i, item in enumerate(items):
        row = written.get(i)
        if row is None:
            results.append(answers[i])
        elif isinstance(row, FileRow):
            results.append(BatchResult(path=item.path, status=200, file=info_of(row)))
        else:
            hub.index.blobs.delete(staged[i].blob)
            results.append(_refused(item.path, row))


def _write_batch(hub: Hub, caller: Caller, items: list[BatchFile]) -> list[BatchResult]:
    """In order, a rule file alone in its own transaction: the files after it are
    checked against the rules it makes, as later PUTs would be."""
    results: list[BatchResult] = []
    group: list[BatchFile] = []
    for item in items:
        if is_rules_path(item.path):
            _write_group(hub, caller, group, results)
            _write_group(hub, caller, [item], results)
            group = []
        else:
            group.append(item)
    _write_group(hub, caller, group, results)
    return results


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > BATCH_BODY_MAX:
        raise HTTPException(413, f"a batch is at most {BATCH_BODY_MAX} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > BATCH_BODY_MAX:
                raise HTTPException(413, f"a batch is at most {BATCH_BODY_MAX} bytes")
    except ClientDisconnect as exc:
        raise HTTPException(400, "the batch was cut off; nothing was stored") from exc
    return bytes(body)


@router.post("/batch", response_model=BatchAnswer)
async def write_batch(
    request: Request, caller: Annotated[Caller, Depends(current_caller)]
) -> Response:
    try:
        batch = BatchRequest.model_validate_json(await _body(request))
    except ValidationError as exc:
        raise HTTPException(422, f"not a batch: {exc.errors(include_url=False)}") from exc
    if len(batch.files) > BATCH_FILES:
        raise HTTPException(413, f"a batch holds at most {BATCH_FILES} files")
    hub = hub_of(request)
    results = await run_in_threadpool(_write_batch, hub, caller, batch.files)
    # Serialized here, once: returned as a model, it was dumped, validated again against
    # the response model and only then serialized (per file, a burst's answer).
    return Response(BatchAnswer(results=results).model_dump_json(), media_type="application/json")
