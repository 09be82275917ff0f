"""Overview: who this is, its store, its running servers, recent traffic, jobs waiting."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from fedbox.crypto import Identity
from fedbox.errors import FedboxError
from fedbox.rds.owner import Owner
from fedbox.rds.states import JobState
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.lease import lease_stands, read_lease, served_apps
from fedbox.ui.context import Ui, UiContext, render

__all__ = ["Daemon", "fingerprint_of", "router", "running_daemons"]

router = APIRouter()
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Daemon:
    """A server of one app of this identity, as its lease in the store describes it."""

    app: str
    host: str
    pid: int | None
    started: float | None
    renewed: float | None


def fingerprint_of(ui: UiContext) -> str | None:
    """Our signing-key fingerprint; None if there are no keys yet (none are created)."""
    if not (ui.settings.state_dir / "keys" / "identity.json").is_file():
        return None
    identity = Identity.load_or_create(ui.settings.state_dir, ui.settings.email)
    return identity.public_bundle().fingerprint


def running_daemons(ui: UiContext) -> list[Daemon]:
    """Servers whose lease still stands, for the apps served from our state dir."""
    if ui.store is None:
        return []
    found = []
    for app in served_apps(ui.settings.state_dir):
        try:
            lease = read_lease(ui.store, ui.settings.email, app)
        except (FedboxError, OSError):
            continue
        if lease is not None and lease_stands(lease):
            found.append(
                Daemon(
                    app=app,
                    host=str(lease.get("host", "?")),
                    pid=_number(lease.get("pid")),
                    started=_number(lease.get("started")),
                    renewed=_number(lease.get("renewed")),
                )
            )
    return found


def _number(value: Any) -> Any:
    return value if isinstance(value, int | float) else None


def traffic_last_day(ui: UiContext) -> dict[str, int] | None:
    """Calls in and out over the last 24 hours; None without an audit log."""
    if not ui.settings.workspace.audit_db.is_file():
        return None
    log = AuditLog(ui.settings.workspace.audit_db)
    try:
        return log.counts_since(time.time() - DAY)
    finally:
        log.close()


@router.get("/")
def overview(request: Request, ui: Ui) -> Response:
    with Owner(ui.settings.workspace) as owner:
        waiting = owner.jobs.list(status=JobState.SUBMITTED)
    return render(
        request,
        "overview.html",
        page="overview",
        fingerprint=fingerprint_of(ui),
        state_dir=ui.settings.state_dir,
        root=ui.settings.root,
        daemons=running_daemons(ui),
        traffic=traffic_last_day(ui),
        waiting=waiting,
    )
