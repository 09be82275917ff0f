"""Messages: the audit trail, filtered; one call's row and its message files as
``fedbox inspect`` reads them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from fedbox.cli.inspect_cmd import Inspection, inspect_message
from fedbox.datasite.paths import request_path, response_path
from fedbox.errors import FedboxError
from fedbox.rpc.audit import AuditLog, AuditRecord
from fedbox.ui.context import Ui, UiContext, render

__all__ = ["MessageFile", "message_files", "router"]

router = APIRouter()

PERIODS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}
"""The time filter's choices: calls created within this many seconds."""


@dataclass(frozen=True, slots=True)
class MessageFile:
    """One half of a call: where it would be in the store and, if it is still there and
    the store is a folder, what ``fedbox inspect`` says of it."""

    kind: str
    path: PurePosixPath
    inspection: Inspection | None


def _log(ui: UiContext) -> AuditLog | None:
    db = ui.settings.workspace.audit_db
    return AuditLog(db) if db.is_file() else None


def _optional_int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name} must be a number, not {value!r}") from exc


@router.get("/messages")
def messages(
    request: Request,
    ui: Ui,
    app: str = "",
    peer: str = "",
    status: str = "",
    direction: str = "",
    period: str = "",
) -> Response:
    if direction not in ("", "in", "out"):
        raise HTTPException(400, "direction is 'in' or 'out'")
    if period not in ("", *PERIODS):
        raise HTTPException(400, f"period is one of {', '.join(PERIODS)}")
    code = _optional_int(status, "status")
    log = _log(ui)
    records: list[AuditRecord] = []
    apps: list[str] = []
    peers: list[str] = []
    if log is not None:
        try:
            records = log.records(
                app=app or None,
                peer=peer or None,
                status=code,
                direction=direction or None,
                since=time.time() - PERIODS[period] if period else None,
                limit=500,
            )
            apps, peers = log.apps(), log.peers()
        finally:
            log.close()
    return render(
        request,
        "messages.html",
        page="messages",
        records=records,
        has_log=log is not None,
        apps=apps,
        peers=peers,
        periods=list(PERIODS),
        filters={
            "app": app,
            "peer": peer,
            "status": status,
            "direction": direction,
            "period": period,
        },
    )


def message_files(ui: UiContext, record: AuditRecord) -> list[MessageFile]:
    """The request and response files of a call, inspected when the store is a folder
    that still holds them (cleanup removes them; the audit row stays)."""
    me = ui.settings.email
    sender = me if record.direction == "out" else record.peer
    recipient = record.peer if record.direction == "out" else me
    files = []
    for kind, build in (("request", request_path), ("response", response_path)):
        path = build(sender, recipient, record.app, record.endpoint, record.id)
        local = ui.store.local_path(str(path)) if ui.store is not None else None
        inspection = None
        if local is not None and local.is_file():
            try:
                inspection = inspect_message(local, email=me, state_dir=ui.settings.state_dir)
            except (FedboxError, OSError) as exc:
                inspection = Inspection(local, [], intact=False, corrupt=str(exc))
        files.append(MessageFile(kind, path, inspection))
    return files


@router.get("/messages/{direction}/{peer}/{call_id}")
def message(
    request: Request,
    direction: str,
    peer: str,
    call_id: str,
    ui: Ui,
) -> Response:
    log = _log(ui)
    record = None
    if log is not None:
        try:
            record = log.call(id=call_id, direction=direction, peer=peer)
        finally:
            log.close()
    if record is None:
        raise HTTPException(404, f"no call {call_id} ({direction}, {peer}) in the audit log")
    try:
        files = message_files(ui, record)
    except FedboxError as exc:  # a row naming an app or endpoint no path can hold
        raise HTTPException(400, str(exc)) from exc
    return render(
        request,
        "message.html",
        page="messages",
        record=record,
        files=files,
        store_is_folder=ui.store is not None and ui.store.local_path("") is not None,
    )
