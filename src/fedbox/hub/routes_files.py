"""``/api/v1/files/{path}`` and friends: upload, download, delete, move, copy, list.

- ``PUT /files/{path}``: the body is the file, streamed. ``If-Match: VERSION`` writes only
  over that version, ``If-None-Match: *`` only where there is no file; otherwise 412.
  ``X-Content-SHA256`` (optional) is checked against the bytes received.
- ``GET /files/{path}`` (``Range: bytes=A-B`` gives 206), ``HEAD /files/{path}``.
- ``DELETE /files/{path}`` (``If-Match`` as for PUT).
- ``POST /move {src, dst}``, ``POST /copy {src, dst}``: inside one top-level folder.
  A move's ``If-Match`` applies to ``src``; ``dst_if_match: VERSION`` or
  ``dst_if_absent: true`` in its body keep it from replacing a ``dst`` the mover never saw.
- ``GET /list?prefix=P[&limit=N][&after=CURSOR]``: the files below folder ``P`` that the
  caller may read, by path, one page at a time: ``next`` is the cursor of the following
  page (null after the last). A page may hold fewer than ``limit`` files (those the caller
  may not read are left out) and still have a next.

A path the caller may not read answers 404 with the same body as a missing one; one it
may read but not write answers 403 to a write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fedbox.datasite.permission_files import split_path
from fedbox.errors import InvalidIdentity, NotFound, PermissionDenied
from fedbox.hub.access import Verdict, check_path, is_rules_path, parse_rules_text
from fedbox.hub.context import Hub, current_caller, hub_of
from fedbox.hub.direct import direct_download
from fedbox.hub.identity import Caller
from fedbox.hub.index import Condition, FileRow

__all__ = [
    "NOT_FOUND",
    "FileInfo",
    "condition_of",
    "info_of",
    "require",
    "router",
    "store_blob",
    "verify_body",
]

router = APIRouter(prefix="/api/v1", tags=["files"])
CallerDep = Annotated[Caller, Depends(current_caller)]

NOT_FOUND = "not found"
_CHUNK = 1 << 20
LIST_PAGE = 1000
LIST_PAGE_MAX = 10_000


class FileInfo(BaseModel):
    path: str
    version: int
    size: int
    sha256: str
    writer: str
    mtime: float


class Listing(BaseModel):
    files: list[FileInfo]
    next: str | None = None
    """Pass as ``after`` for the next page; null: this was the last one."""


class CopyRequest(BaseModel):
    src: str
    dst: str


class MoveRequest(CopyRequest):
    dst_if_match: int | None = None
    """Move only over this version of ``dst`` (``If-Match`` applies to ``src``)."""
    dst_if_absent: bool = False
    """Move only where ``dst`` does not exist."""


def info_of(row: FileRow) -> FileInfo:
    return FileInfo(
        path=row.path, version=row.version, size=row.size, sha256=row.sha256,
        writer=row.writer, mtime=row.mtime,
    )  # fmt: skip


def _headers(row: FileRow) -> dict[str, str]:
    return {
        "ETag": f'"{row.version}"',
        "X-Fedbox-Version": str(row.version),
        "X-Fedbox-Sha256": row.sha256,
        "X-Fedbox-Writer": row.writer,
        "X-Fedbox-Mtime": repr(row.mtime),
        "Accept-Ranges": "bytes",
    }


def require(hub: Hub, caller: Caller, path: str, write: bool) -> None:
    """Raise NotFound (hidden) or PermissionDenied unless the caller may do it."""
    check_path(path)
    verdict = hub.access.verdict(caller.email, path)
    if verdict is Verdict.HIDDEN or (write and verdict is not Verdict.WRITE):
        # A refusal first reads what other hub processes wrote (one indexed query, on
        # refusals only): a grant made through any of them is never refused here.
        hub.access.catch_up()
        verdict = hub.access.verdict(caller.email, path)
    if verdict is Verdict.HIDDEN:
        raise NotFound(NOT_FOUND, path)
    if write and verdict is not Verdict.WRITE:
        raise PermissionDenied(f"{caller.email} may read {path} but not write it", path)


def _version(value: str) -> int:
    text = value.strip().strip('"')
    if not text.isdigit():
        raise InvalidIdentity(f"If-Match must be a version number, got {value!r}", value)
    return int(text)


def condition_of(request: Request) -> Condition:
    if_match = request.headers.get("if-match")
    if_none = request.headers.get("if-none-match")
    if if_none is not None and if_none.strip() != "*":
        raise InvalidIdentity("If-None-Match accepts only '*' (write only if absent)", if_none)
    return Condition(
        if_match=None if if_match is None else _version(if_match), if_absent=if_none is not None
    )


def verify_body(
    path: str, sha256: str, declared: str | None, data: bytes | bytearray | None
) -> None:
    """Refuse a body whose digest is not the declared one, or an invalid rule file."""
    if declared is not None and declared.lower() != sha256:
        raise InvalidIdentity(f"the body's SHA-256 is {sha256}, not {declared}", declared)
    if data is not None:
        parse_rules_text(bytes(data), path)


def store_blob(hub: Hub, body: bytes) -> str:
    """``body`` as a new final blob; its key (nothing stays on failure)."""
    blob = hub.index.blobs.create()
    try:
        blob.write(body)
        blob.finish()
    except BaseException:
        blob.discard()
        raise
    return blob.key


def _store_whole(
    hub: Hub, path: str, writer: str, body: bytes, condition: Condition, declared: str | None
) -> FileRow:
    """A small body already in memory, stored and committed in one worker-thread visit."""
    sha256 = hashlib.sha256(body).hexdigest()
    verify_body(path, sha256, declared, body if is_rules_path(path) else None)
    key = store_blob(hub, body)
    try:
        return hub.index.put(path, writer, key, len(body), sha256, condition)
    except BaseException:
        hub.index.blobs.delete(key)
        raise


async def _receive(hub: Hub, request: Request, path: str) -> tuple[str, int, str]:
    """Stream the body into a new blob; (key, size, sha256). Nothing stays on failure."""
    blob = await run_in_threadpool(hub.index.blobs.create)
    digest, size, buffer = hashlib.sha256(), 0, bytearray()
    rules = is_rules_path(path)
    kept = bytearray() if rules else None
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            buffer += chunk
            if kept is not None:
                kept += chunk
            if len(buffer) >= _CHUNK:
                await run_in_threadpool(blob.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(blob.write, bytes(buffer))
        sha256 = digest.hexdigest()
        verify_body(path, sha256, request.headers.get("x-content-sha256"), kept)
        await run_in_threadpool(blob.finish)
    except BaseException:
        await run_in_threadpool(blob.discard)
        raise
    return blob.key, size, sha256


@router.put("/files/{path:path}")
async def put_file(path: str, request: Request, caller: CallerDep) -> FileInfo:
    hub = hub_of(request)
    require(hub, caller, path, write=True)
    condition = condition_of(request)
    declared = request.headers.get("x-content-sha256")
    length = request.headers.get("content-length", "")
    try:
        if length.isdigit() and int(length) <= _CHUNK:  # most messages: one thread visit
            body = await request.body()
            row = await run_in_threadpool(
                _store_whole, hub, path, caller.email, body, condition, declared
            )
            return info_of(row)
        key, size, sha256 = await _receive(hub, request, path)
    except ClientDisconnect as exc:
        raise HTTPException(400, "the upload was cut off; nothing was stored") from exc
    try:
        row = await run_in_threadpool(
            hub.index.put, path, caller.email, key, size, sha256, condition
        )
    except BaseException:
        await run_in_threadpool(hub.index.blobs.delete, key)
        raise
    return info_of(row)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for one ``bytes=`` range, None for the whole file."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    start_text, dash, end_text = spec.strip().partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        raise HTTPException(416, "only one 'bytes=START-END' range is supported")
    try:
        if start_text == "":
            start, end = max(size - int(end_text), 0), size
        else:
            start = int(start_text)
            end = size if end_text == "" else min(int(end_text) + 1, size)
    except ValueError as exc:
        raise HTTPException(416, f"bad range {header!r}") from exc
    if start >= size or start >= end:
        raise HTTPException(416, f"range {header!r} is outside the {size} bytes",
                            headers={"Content-Range": f"bytes */{size}"})  # fmt: skip
    return start, end


def _open(hub: Hub, path: str) -> tuple[FileRow, BinaryIO, bytes | None]:
    """The current row and its blob, opened (and read, if small); retried if a new
    version replaced it meanwhile."""
    for _ in range(5):
        row = hub.index.get(path)
        if row is None:
            raise NotFound(NOT_FOUND, path)
        small = row.size <= _CHUNK  # read now: a blob gone is then seen here, not mid-stream
        try:
            f = hub.index.blobs.open(row.blob, row.size if small else None)
            if not small:
                return row, f, None
            with f:
                return row, f, f.read()
        except FileNotFoundError:
            continue
    raise NotFound(NOT_FOUND, path)


def _stream(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


@router.get("/files/{path:path}")
async def get_file(path: str, request: Request, caller: CallerDep) -> Response:
    hub = hub_of(request)
    require(hub, caller, path, write=False)
    redirect = await run_in_threadpool(direct_download, hub, path, _headers)
    if redirect is not None:
        return redirect
    row, f, whole = await run_in_threadpool(_open, hub, path)
    headers = _headers(row)
    try:
        span = _range(request.headers.get("range"), row.size)
    except HTTPException:
        f.close()
        raise
    if span is None:
        start, end, status = 0, row.size, 200
    else:
        (start, end), status = span, 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{row.size}"
    headers["Content-Length"] = str(end - start)
    if whole is not None:
        return Response(
            whole[start:end], status_code=status, headers=headers,
            media_type="application/octet-stream",
        )  # fmt: skip
    return StreamingResponse(
        _stream(f, start, end - start), status_code=status, headers=headers,
        media_type="application/octet-stream",
    )  # fmt: skip


@router.head("/files/{path:path}")
async def head_file(path: str, request: Request, caller: CallerDep) -> Response:
    hub = hub_of(request)
    require(hub, caller, path, write=False)
    row = await run_in_threadpool(hub.index.get, path)
    if row is None:
        raise NotFound(NOT_FOUND, path)
    return Response(headers={**_headers(row), "Content-Length": str(row.size)})


@router.delete("/files/{path:path}", status_code=204)
async def delete_file(path: str, request: Request, caller: CallerDep) -> Response:
    hub = hub_of(request)
    require(hub, caller, path, write=True)
    condition = condition_of(request)
    await run_in_threadpool(hub.index.delete, path, caller.email, condition)
    return Response(status_code=204)


def _pair(hub: Hub, caller: Caller, body: CopyRequest, *, src_write: bool) -> None:
    require(hub, caller, body.src, write=src_write)
    require(hub, caller, body.dst, write=True)
    if body.src.split("/", 1)[0] != body.dst.split("/", 1)[0]:
        raise InvalidIdentity("src and dst must be in the same top-level folder", body.dst)


@router.post("/move")
async def move_file(body: MoveRequest, request: Request, caller: CallerDep) -> FileInfo:
    hub = hub_of(request)
    _pair(hub, caller, body, src_write=True)
    condition = condition_of(request)
    at_dst = Condition(if_match=body.dst_if_match, if_absent=body.dst_if_absent)
    row = await run_in_threadpool(
        hub.index.move, body.src, body.dst, caller.email, condition, at_dst
    )
    return info_of(row)


def _copy(hub: Hub, caller: Caller, body: CopyRequest, condition: Condition) -> FileRow:
    source = hub.index.get(body.src)
    if source is None:
        raise NotFound(NOT_FOUND, body.src)
    key = hub.index.blobs.copy(source.blob)
    try:
        return hub.index.put(body.dst, caller.email, key, source.size, source.sha256, condition)
    except BaseException:
        hub.index.blobs.delete(key)
        raise


@router.post("/copy")
async def copy_file(body: CopyRequest, request: Request, caller: CallerDep) -> FileInfo:
    hub = hub_of(request)
    _pair(hub, caller, body, src_write=False)
    condition = condition_of(request)
    return info_of(await run_in_threadpool(_copy, hub, caller, body, condition))


def _listing(hub: Hub, caller: Caller, prefix: str, after: str, limit: int) -> Listing:
    if prefix:
        split_path(prefix, "prefix")
    rows = hub.index.under(prefix, after, limit)
    return Listing(
        files=[info_of(r) for r in rows if hub.access.may_read(caller.email, r.path)],
        next=rows[-1].path if len(rows) == limit else None,
    )


@router.get("/list")
async def list_files(
    request: Request,
    caller: CallerDep,
    prefix: str = "",
    after: str = "",
    limit: Annotated[int, Query(ge=1, le=LIST_PAGE_MAX)] = LIST_PAGE,
) -> Listing:
    return await run_in_threadpool(
        _listing, hub_of(request), caller, prefix.strip("/"), after, limit
    )
