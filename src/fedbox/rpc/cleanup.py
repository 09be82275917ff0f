"""Removing old message files; their metadata stays in the audit log."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fedbox.datasite.paths import OUTBOX_PREFIX
from fedbox.errors import NotFound
from fedbox.store import Store

__all__ = ["CleanupReport", "cleanup"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CleanupReport:
    files: int
    bytes: int


def cleanup(store: Store, email: str, older_than: float, now: float) -> CleanupReport:
    """Delete message files this identity wrote (its outboxes) older than ``older_than`` s.

    Only one's own outboxes: on a hub nobody may delete another's files, and the writer
    is the one who knows when a file has served its purpose.
    """
    cutoff = now - older_than
    files = size = 0
    for folder in store.list_dirs():
        if not folder.startswith(f"{OUTBOX_PREFIX}{email}_to_"):
            continue
        for entry in store.list(folder):
            if entry.mtime > cutoff or not entry.path.endswith((".request", ".response")):
                continue
            try:
                store.delete(entry.path)
            except NotFound:
                continue
            files += 1
            size += entry.size
    if files:
        logger.info(
            "cleanup removed %d files (%d bytes) older than %.0f s", files, size, older_than
        )
    return CleanupReport(files=files, bytes=size)
