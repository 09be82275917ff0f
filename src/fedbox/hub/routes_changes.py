"""The change feed: ``GET /api/v1/changes?after=CURSOR`` and ``WS /api/v1/changes/ws``.

Both answer ``{"changes": [...], "cursor": N}``: the changes after ``CURSOR`` that the
caller may read, and the cursor to ask from next (it moves past changes the caller may
not see, so nobody re-reads them). The websocket sends such a batch for everything after
its ``after`` at once, then one each time writes commit; a client that reconnects with
its last cursor misses nothing. ``only=GLOB`` (repeatable, gitignore syntax) narrows both
to the paths a client subscribed to (``fedbox sync --only``). The socket authenticates with the same
``Authorization: Bearer`` header, and closes with code 4401 once the session ends.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from fedbox.errors import FedboxError
from fedbox.hub.context import Hub, authenticate, bearer_token, current_caller, hub_of
from fedbox.hub.identity import Caller
from fedbox.hub.index import Change
from fedbox.hub.selection import Selection, selection

__all__ = ["ChangeBatch", "ChangeInfo", "router", "visible_changes"]

router = APIRouter(prefix="/api/v1", tags=["changes"])

BATCH = 1000


class ChangeInfo(BaseModel):
    seq: int
    op: str
    """``put`` (new version), ``delete``, or ``move`` (``old_path`` → ``path``)."""
    path: str
    old_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    time: float


class ChangeBatch(BaseModel):
    changes: list[ChangeInfo]
    cursor: int


def _as_seen(
    hub: Hub, user: str, change: Change, only: Selection | None = None
) -> ChangeInfo | None:
    """The change as this caller may see it (readable and selected): a move half out of
    sight is a put or delete."""

    def sees(path: str) -> bool:
        return hub.access.may_read(user, path) and (only is None or only(path))

    new = sees(change.path)
    if change.op != "move":
        op, old = change.op, None
        if not new:
            return None
    else:
        assert change.old_path is not None
        was = sees(change.old_path)
        if new and was:
            op, old = "move", change.old_path
        elif new:
            op, old = "put", None
        elif was:
            return ChangeInfo(seq=change.seq, op="delete", path=change.old_path, time=change.time)
        else:
            return None
    return ChangeInfo(
        seq=change.seq, op=op, path=change.path, old_path=old, size=change.size,
        sha256=change.sha256, time=change.time,
    )  # fmt: skip


def visible_changes(
    hub: Hub, user: str, after: int, limit: int = BATCH, only: Selection | None = None
) -> ChangeBatch:
    scanned = hub.index.changes(after, limit)
    if scanned:
        hub.access.catch_up(scanned[-1].seq)  # filter by rules at least as new as these
    seen = [c for c in (_as_seen(hub, user, ch, only) for ch in scanned) if c is not None]
    return ChangeBatch(changes=seen, cursor=scanned[-1].seq if scanned else after)


@router.get("/changes")
async def changes(
    request: Request,
    caller: Annotated[Caller, Depends(current_caller)],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=BATCH)] = BATCH,
    only: Annotated[list[str] | None, Query()] = None,
) -> ChangeBatch:
    return await run_in_threadpool(
        visible_changes, hub_of(request), caller.email, after, limit, selection(only or [])
    )


def _still_valid(hub: Hub, caller: Caller) -> bool:
    return hub.sessions.active(caller)


async def _until_disconnect(socket: WebSocket, wake: asyncio.Event, gone: asyncio.Event) -> None:
    """Notice a client leaving while the feed waits for changes (it sends nothing else)."""
    try:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        gone.set()
        wake.set()


async def _send(socket: WebSocket, batch: ChangeBatch, gone: asyncio.Event) -> bool:
    """Send a batch; False if the client left (before or while sending, the server's
    shutdown included), which ends the feed quietly."""
    if gone.is_set():
        return False
    try:
        await socket.send_text(batch.model_dump_json())
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False
    return True


@router.websocket("/changes/ws")
async def changes_socket(
    socket: WebSocket,
    after: Annotated[int, Query(ge=0)] = 0,
    only: Annotated[list[str] | None, Query()] = None,
) -> None:
    hub = hub_of(socket)
    try:
        chosen = selection(only or [])
    except FedboxError as exc:
        await socket.accept()
        await socket.close(code=4400, reason=str(exc)[:120])
        return
    try:
        caller = await run_in_threadpool(authenticate, hub, bearer_token(socket))
    except FedboxError as exc:
        # Accepted first so the client reads why (a refused handshake is a bare 403).
        await socket.accept()
        await socket.close(code=4401, reason=str(exc)[:120])
        return
    await socket.accept()
    wake = hub.bus.register()
    gone = asyncio.Event()
    listener = asyncio.create_task(_until_disconnect(socket, wake, gone))
    hub.metrics.websockets += 1
    cursor = after
    try:
        while not gone.is_set():
            wake.clear()
            while True:
                batch = await run_in_threadpool(
                    visible_changes, hub, caller.email, cursor, BATCH, chosen
                )
                if batch.changes and not await _send(socket, batch, gone):
                    return
                moved = batch.cursor != cursor
                cursor = batch.cursor
                if not moved:
                    break
            await wake.wait()
            if gone.is_set():
                return
            if not await run_in_threadpool(_still_valid, hub, caller):
                await socket.close(code=4401, reason="the session ended; log in again")
                return
    except WebSocketDisconnect:
        return
    finally:
        listener.cancel()
        hub.metrics.websockets -= 1
        hub.bus.unregister(wake)
