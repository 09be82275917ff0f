"""Which HTTP status answers which refusal.

One table for the app's error handlers and for a batch's per-file answers
(:mod:`fedbox.hub.routes_batch`), so a file in a batch is refused exactly as it would be
on its own: same status, same detail (and a hidden path the same 404 as a missing one).
"""

from __future__ import annotations

from fedbox.datasite.permissions import InvalidPermissionFile
from fedbox.errors import InvalidIdentity, NotFound, PermissionDenied
from fedbox.hub.identity import Unauthorized
from fedbox.hub.index import PreconditionFailed, QuotaExceeded
from fedbox.hub.routes_files import NOT_FOUND
from fedbox.hub.uploads import UploadMismatch

__all__ = ["REFUSALS", "refusal"]

REFUSALS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthorized, 401),
    (InvalidIdentity, 400),
    (InvalidPermissionFile, 400),
    (NotFound, 404),
    (PermissionDenied, 403),
    (PreconditionFailed, 412),
    (QuotaExceeded, 413),
    (UploadMismatch, 409),
)


def refusal(exc: Exception) -> tuple[int, str] | None:
    """(status, detail) for an error the hub answers to its caller; None for a fault."""
    for kind, status in REFUSALS:
        if isinstance(exc, kind):
            return status, NOT_FOUND if status == 404 else str(exc)
    return None
