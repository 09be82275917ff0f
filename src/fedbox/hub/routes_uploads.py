"""``/api/v1/uploads``: resumable uploads for large files (see :mod:`fedbox.hub.uploads`).

- ``POST /uploads {path, size}``: start, or find the caller's unfinished upload of the
  same size to the same path; answers ``{id, offset, size}``.
- ``HEAD /uploads/{id}``: ``Upload-Offset``, the bytes the hub has.
- ``PATCH /uploads/{id}`` with ``Upload-Offset: N``: append the body at N (409 if N is
  not the current offset or the body goes past ``size``, or if another append, on any hub
  process, got there first: ask for the offset again). Bytes received before a cut
  connection stay.
- ``POST /uploads/{id}/commit`` (``If-Match`` / ``If-None-Match: *``,
  ``X-Content-SHA256`` as for PUT): the file appears whole at its path.
- ``DELETE /uploads/{id}``: abandon it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fedbox.hub.context import current_caller, hub_of
from fedbox.hub.identity import Caller
from fedbox.hub.routes_files import FileInfo, condition_of, info_of, require
from fedbox.hub.uploads import Upload, UploadMismatch

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])
CallerDep = Annotated[Caller, Depends(current_caller)]


class UploadStart(BaseModel):
    path: str
    size: int = Field(ge=0)


class UploadState(BaseModel):
    id: str
    path: str
    size: int
    offset: int


def _state(upload: Upload) -> UploadState:
    return UploadState(id=upload.id, path=upload.path, size=upload.size, offset=upload.offset)


@router.post("")
async def start_upload(body: UploadStart, request: Request, caller: CallerDep) -> UploadState:
    hub = hub_of(request)
    require(hub, caller, body.path, write=True)
    return _state(await run_in_threadpool(hub.uploads.start, body.path, caller.email, body.size))


@router.head("/{upload_id}")
async def upload_offset(upload_id: str, request: Request, caller: CallerDep) -> Response:
    upload = await run_in_threadpool(hub_of(request).uploads.get, upload_id, caller.email)
    return Response(
        headers={"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.size)}
    )


@router.patch("/{upload_id}", status_code=204)
async def append(upload_id: str, request: Request, caller: CallerDep) -> Response:
    uploads = hub_of(request).uploads
    upload = await run_in_threadpool(uploads.get, upload_id, caller.email)
    claimed = request.headers.get("upload-offset", "")
    if not claimed.isdigit():
        raise UploadMismatch(f"Upload-Offset {claimed!r} is not the hub's offset {upload.offset}")
    start = int(claimed)
    part = await run_in_threadpool(uploads.new_part, upload, start)
    length = 0
    try:
        async for chunk in request.stream():
            if start + length + len(chunk) > upload.size:
                raise UploadMismatch(f"the body goes past the declared {upload.size} bytes")
            # Written as it comes, so what arrived before a cut connection stays.
            await run_in_threadpool(part.write, chunk)
            length += len(chunk)
    except ClientDisconnect:
        pass
    except BaseException:
        await run_in_threadpool(part.discard)
        raise
    offset = await run_in_threadpool(uploads.add_part, upload, start, part, length)
    return Response(status_code=204, headers={"Upload-Offset": str(offset)})


@router.post("/{upload_id}/commit")
async def commit(upload_id: str, request: Request, caller: CallerDep) -> FileInfo:
    hub = hub_of(request)
    upload = await run_in_threadpool(hub.uploads.get, upload_id, caller.email)
    require(hub, caller, upload.path, write=True)
    condition = condition_of(request)
    sha256 = request.headers.get("x-content-sha256")
    row = await run_in_threadpool(hub.uploads.commit, upload, condition, sha256)
    return info_of(row)


@router.delete("/{upload_id}", status_code=204)
async def abandon(upload_id: str, request: Request, caller: CallerDep) -> Response:
    hub = hub_of(request)
    upload = await run_in_threadpool(hub.uploads.get, upload_id, caller.email)
    await run_in_threadpool(hub.uploads.forget, upload)
    return Response(status_code=204)
