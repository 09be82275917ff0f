"""Peers: everyone we have pinned or called, their published fingerprint, and whether we
trust it; "trust" accepts a changed key the user has checked with its owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from fedbox.crypto import TrustStore, normalize_fingerprint
from fedbox.datasite.identity import validate_email
from fedbox.errors import CryptoError, FedboxError
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.sealing import read_published
from fedbox.ui.context import Ui, UiContext, render
from fedbox.ui.security import require_csrf

__all__ = ["Peer", "known_peers", "router"]

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Peer:
    """One identity as we know it. ``state`` is ``trusted`` (pin = published key),
    ``changed`` (they differ: messages are refused), ``unpinned`` or ``unknown`` (no
    published key to compare)."""

    email: str
    pinned: str | None
    published: str | None
    problem: str | None

    @property
    def state(self) -> str:
        if self.published is None:
            return "unknown"
        if self.pinned is None:
            return "unpinned"
        return "trusted" if self.pinned == self.published else "changed"


def known_peers(ui: UiContext) -> list[Peer]:
    """Pinned identities and everyone in the audit log, but not ourselves."""
    pins = TrustStore(ui.settings.state_dir).pins()
    emails = set(pins)
    if ui.settings.workspace.audit_db.is_file():
        log = AuditLog(ui.settings.workspace.audit_db)
        try:
            emails.update(log.peers())
        finally:
            log.close()
    emails.discard(ui.settings.email)
    peers = []
    for email in sorted(emails):
        published, problem = _published(ui, email)
        peers.append(Peer(email, pins.get(email), published, problem))
    return peers


def _published(ui: UiContext, email: str) -> tuple[str | None, str | None]:
    if ui.store is None:
        return None, "no store given (--root): published keys cannot be read"
    try:
        return read_published(ui.store, email).fingerprint, None
    except (FedboxError, OSError) as exc:
        return None, str(exc)


@router.get("/peers")
def peers(request: Request, ui: Ui) -> Response:
    return render(request, "peers.html", page="peers", peers=known_peers(ui))


@router.post("/peers/{peer}/trust", dependencies=[Depends(require_csrf)])
def trust(
    peer: str,
    fingerprint: Annotated[str, Form()],
    ui: Ui,
) -> Response:
    """Pin the fingerprint the page showed, if it is still the one published (as
    ``fedbox keys trust --root``): a key that changed again meanwhile is not pinned."""
    try:
        email = validate_email(peer)
        shown = normalize_fingerprint(fingerprint)
    except FedboxError as exc:
        raise HTTPException(400, str(exc)) from exc
    if ui.store is None:
        raise HTTPException(409, "no store given (--root): cannot check the published key")
    try:
        published = read_published(ui.store, email).fingerprint
    except CryptoError as exc:
        raise HTTPException(409, str(exc)) from exc
    if published != shown:
        raise HTTPException(
            409, f"not pinned: {email}'s published key is now {published}, not {shown}"
        )
    TrustStore(ui.settings.state_dir).trust(email, shown)
    return RedirectResponse("/peers", status_code=303)
