"""Removing old message files; their metadata stays in the audit log."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fedbox.datasite.paths import BLOBS_DIR, OUTBOX_PREFIX
from fedbox.errors import NotFound, StoreError
from fedbox.rpc.blobs import DEFAULT_BLOB_REUSE
from fedbox.store import Entry, Store

__all__ = ["CleanupReport", "cleanup"]

logger = logging.getLogger(__name__)

BLOB_MARGIN = 2 * DEFAULT_BLOB_REUSE
"""A blob is kept while a remaining message is less than this much younger than it."""
TEMP_MIN_AGE = 3600.0
"""A writer's temporary file is removed only when older than this (and than the cleanup
age): a large body can take minutes to upload, and its writer must not lose it."""


@dataclass(frozen=True, slots=True)
class CleanupReport:
    files: int
    bytes: int


def cleanup(store: Store, email: str, older_than: float, now: float) -> CleanupReport:
    """Delete message files this identity wrote (its outboxes) older than ``older_than`` s,
    and the blobs (``{outbox}/{app}/blobs/``) no remaining message can refer to.

    Only one's own outboxes: on a hub nobody may delete another's files, and the writer
    is the one who knows when a file has served its purpose.

    Blobs are judged by age, without reading any message: a sender reuses a blob it finds
    in place only if it is younger than ``DEFAULT_BLOB_REUSE`` (else it writes it again,
    ``fedbox.rpc.blobs``), so a blob any message refers to is at most that much plus the
    message's writing time older than the message. A blob older than the cutoff and more
    than ``BLOB_MARGIN`` older than every remaining message of its app is unused.

    Temporary files that a writer killed mid-write left (``.{name}.tmp-*``) go too, once
    older than the cutoff and than ``TEMP_MIN_AGE``. So do the folders this emptied
    (``{app}/rpc/{endpoint}``, ``{app}/blobs``, ``{app}``), but never the outbox itself:
    a writer that finds its folder gone makes it again.
    """
    cutoff = now - older_than
    temp_cutoff = min(cutoff, now - TEMP_MIN_AGE)
    files = size = 0
    for folder in store.list_dirs():
        if not folder.startswith(f"{OUTBOX_PREFIX}{email}_to_"):
            continue
        emptied: set[str] = set()
        for entry in store.list_temps(folder):
            if entry.mtime <= temp_cutoff and _delete(store, entry):
                files += 1
                size += entry.size
                emptied.add(entry.path.rpartition("/")[0])
        oldest_kept: dict[str, float] = {}
        blobs: dict[str, list[Entry]] = {}
        for entry in store.list(folder):
            parts = entry.path.split("/")
            app = parts[1] if len(parts) > 2 else ""
            if len(parts) == 4 and parts[2] == BLOBS_DIR:
                blobs.setdefault(app, []).append(entry)
                continue
            if not entry.path.endswith((".request", ".response")):
                continue
            if entry.mtime > cutoff:
                oldest_kept[app] = min(oldest_kept.get(app, entry.mtime), entry.mtime)
                continue
            if _delete(store, entry):
                files += 1
                size += entry.size
                emptied.add(entry.path.rpartition("/")[0])
        for app, entries in blobs.items():
            unused_before = min(cutoff, oldest_kept.get(app, float("inf")) - BLOB_MARGIN)
            for entry in entries:
                if entry.mtime <= unused_before and _delete(store, entry):
                    files += 1
                    size += entry.size
                    emptied.add(entry.path.rpartition("/")[0])
        _remove_emptied(store, folder, emptied)
    if files:
        logger.info(
            "cleanup removed %d files (%d bytes) older than %.0f s", files, size, older_than
        )
    return CleanupReport(files=files, bytes=size)


def _delete(store: Store, entry: Entry) -> bool:
    try:
        store.delete(entry.path)
    except NotFound:
        return False
    except StoreError as exc:  # a folder on the way became a link: nothing to remove there
        logger.warning("cleanup left %s: %s", entry.path, exc)
        return False
    return True


def _remove_emptied(store: Store, outbox: str, folders: set[str]) -> None:
    """Remove each of ``folders``, and each of their parents up to (not including)
    ``outbox``, that is now empty; deepest first, so that a parent is tried after its
    children. A folder that still holds anything (a quarantine, a new message) stays."""
    candidates: set[str] = set()
    for path in folders:
        while path.startswith(f"{outbox}/") and path not in candidates:
            candidates.add(path)
            path = path.rpartition("/")[0]
    for path in sorted(candidates, key=lambda f: f.count("/"), reverse=True):
        store.remove_folder(path)
