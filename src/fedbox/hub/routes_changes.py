"""The change feed: ``GET /api/v1/changes?after=CURSOR`` and ``WS /api/v1/changes/ws``.

Both answer ``{"changes": [...], "cursor": N}``: the changes after ``CURSOR`` that the
caller may read, and the cursor to ask from next (it moves past changes the caller may
not see, so nobody re-reads them). The websocket sends such a batch for everything after
its ``after`` at once, then one each time writes commit; a client that reconnects with
its last cursor misses nothing. ``only=GLOB`` (repeatable, gitignore syntax) narrows both
to the paths a client subscribed to (``fedbox sync --only``). The socket authenticates with the same
``Authorization: Bearer`` header, and closes with code 4401 instead of pushing anything
once the session has ended.

``WS /api/v1/changes/ws?inline=N`` (N up to 64 KiB) also carries, base64 in ``data``,
the bytes of each new file of at most N bytes that someone else wrote: a message then
reaches its reader with the change that announces it, without a download after it.

A change to a ``syft.pub.yaml`` also lists, to each reader but the owner, the files of its
folder they may read now (:mod:`fedbox.hub.rule_news`): files a new rule lets them read
reach them though their own change was filtered out before.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from fedbox.errors import FedboxError
from fedbox.hub.context import Hub, authenticate, bearer_token, current_caller, hub_of
from fedbox.hub.identity import Caller
from fedbox.hub.index import Change, FileRow
from fedbox.hub.rule_news import rule_folders
from fedbox.hub.selection import Selection, selection

__all__ = ["ChangeBatch", "ChangeInfo", "router", "visible_changes"]

router = APIRouter(prefix="/api/v1", tags=["changes"])

BATCH = 1000
INLINE_MAX = 64 << 10
"""The largest file whose bytes a websocket batch may carry (``inline``)."""


class ChangeInfo(BaseModel):
    seq: int
    op: str
    """``put`` (new version), ``delete``, ``move`` (``old_path`` → ``path``), or ``rules``:
    the rules of the folder ``path`` changed, and the ``put`` entries after it (at each
    file's current version, ``seq``) list every file there the caller may read now."""
    path: str
    old_path: str | None = None
    size: int | None = None
    sha256: str | None = None
    time: float
    data: str | None = None
    """For a websocket opened with ``inline``: the file's bytes, base64."""


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
    return _filter(hub, user, after, scanned, limit, inline=0, only=only)[0]


def _scan(
    hub: Hub, user: str, after: int, limit: int, inline: int, only: Selection | None = None
) -> tuple[ChangeBatch, bool]:
    """A websocket's next batch in a worker thread: from this process's shared tail of the
    change log, or from the log itself when ``after`` is older than the tail reaches (a
    client reconnecting with an old cursor)."""
    scanned = hub.tail.after(after, limit)
    if scanned is None:
        hub.metrics.log_read("cursor")
        scanned = hub.index.changes(after, limit)
    return _filter(hub, user, after, scanned, limit, inline, only)


async def _next_batch(
    hub: Hub, user: str, after: int, inline: int, only: Selection | None
) -> tuple[ChangeBatch, bool]:
    """A websocket's next batch, on the event loop when it can be: the tail is read once
    per wake-up for every feed (:meth:`ChangeTail.refresh`) and filtered here in memory.
    A worker thread only when there is I/O to do: a cursor behind the tail, rules not yet
    caught up with the changes, a rule change (its folder is listed), or bytes to inline."""
    await hub.tail.refresh()
    scanned = hub.tail.window(after, BATCH)
    if (
        scanned is None
        or (scanned and not hub.access.seen_through(scanned[-1].seq))
        or any(rule_folders(change) for change in scanned)
    ):
        return await run_in_threadpool(_scan, hub, user, after, BATCH, inline, only)
    batch, inlined = _visible(hub, user, after, scanned, inline, only)
    if inlined:
        await run_in_threadpool(_inline, hub, inlined)
    return batch, len(scanned) == BATCH


def _filter(
    hub: Hub,
    user: str,
    after: int,
    scanned: list[Change],
    limit: int,
    inline: int,
    only: Selection | None = None,
) -> tuple[ChangeBatch, bool]:
    """The changes of ``scanned`` (the log's rows after ``after``, at most ``limit``)
    that the caller may read (with the bytes of others' new files of at most ``inline``
    bytes), and whether the scan was cut at ``limit`` (more may follow)."""
    if scanned:
        hub.access.catch_up(scanned[-1].seq)  # filter by rules at least as new as these
    batch, inlined = _visible(hub, user, after, scanned, inline, only)
    _inline(hub, inlined)
    return batch, len(scanned) == limit


def _visible(
    hub: Hub, user: str, after: int, scanned: list[Change], inline: int, only: Selection | None
) -> tuple[ChangeBatch, list[tuple[ChangeInfo, Change]]]:
    """The batch of what the caller may see in ``scanned``, and its entries that should
    carry their bytes (see :func:`_inline`). No I/O when the rules are caught up and no
    rule file changed; a rule change lists its folder (:func:`_now_readable`)."""
    seen, inlined = [], []
    for change in scanned:
        info = _as_seen(hub, user, change, only)
        if info is not None:
            if info.op == "put" and change.writer != user and (info.size or 0) <= inline:
                inlined.append((info, change))
            seen.append(info)
        for folder in rule_folders(change):
            seen += _now_readable(hub, user, folder, change, only)
    return ChangeBatch(changes=seen, cursor=scanned[-1].seq if scanned else after), inlined


def _inline(hub: Hub, entries: list[tuple[ChangeInfo, Change]]) -> None:
    if not entries:
        return
    rows = hub.index.get_many([change.path for _, change in entries])  # one query a burst
    for info, change in entries:
        info.data = _contents(hub, change, rows.get(change.path))


def _now_readable(
    hub: Hub, user: str, folder: str, change: Change, only: Selection | None
) -> list[ChangeInfo]:
    """After a rule change in ``folder``: a ``rules`` entry, then a ``put`` at its current
    version for every file there the caller may read now (see :mod:`fedbox.hub.rule_news`)."""
    rows = hub.rule_listings.readable(user, folder, change.seq, only)
    if not rows:
        return []
    marker = ChangeInfo(seq=change.seq, op="rules", path=folder, time=change.time)
    listed = [
        ChangeInfo(
            seq=row.version,
            op="put",
            path=row.path,
            size=row.size,
            sha256=row.sha256,
            time=row.mtime,
        )
        for row in rows
    ]
    return [marker, *listed]


def _contents(hub: Hub, change: Change, row: FileRow | None) -> str | None:
    """The bytes ``change`` wrote (``row``: its path's current row), base64; None once a
    later change replaced them (the reader then downloads the file as usual)."""
    if row is None or row.version != change.seq:
        return None
    try:
        with hub.index.blobs.open(row.blob, row.size) as f:
            return base64.b64encode(f.read()).decode()
    except FileNotFoundError:
        return None


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


async def _live(hub: Hub, caller: Caller) -> bool:
    """Whether the caller's session still holds, asked before each push rather than at
    each wake-up: a wake-up with nothing for this feed then costs no session look-up
    (a few hundred idle feeds each asking once a second was most of a busy hub's work)."""
    if hub.sessions.cached_active(caller):  # no thread hop per push while fresh
        return True
    return await run_in_threadpool(hub.sessions.active, caller)


@router.websocket("/changes/ws")
async def changes_socket(
    socket: WebSocket,
    after: Annotated[int, Query(ge=0)] = 0,
    only: Annotated[list[str] | None, Query()] = None,
    inline: Annotated[int, Query(ge=0, le=INLINE_MAX)] = 0,
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
    wake = hub.bus.register(caller.email)
    gone = asyncio.Event()
    listener = asyncio.create_task(_until_disconnect(socket, wake, gone))
    hub.metrics.websockets += 1
    cursor = after
    try:
        while not gone.is_set():
            wake.clear()
            more = True
            while more:  # a commit after a scan sets ``wake`` again: no second look needed
                batch, more = await _next_batch(hub, caller.email, cursor, inline, chosen)
                if batch.changes:
                    if not await _live(hub, caller):
                        await socket.close(code=4401, reason="the session ended; log in again")
                        return
                    if not await _send(socket, batch, gone):
                        return
                cursor = batch.cursor
            await wake.wait()
            hub.metrics.feed_wakeups += 1
    except WebSocketDisconnect:
        return
    finally:
        listener.cancel()
        hub.metrics.websockets -= 1
        hub.bus.unregister(caller.email, wake)
