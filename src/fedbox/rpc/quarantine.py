"""Moving unusable files aside so they are kept for inspection but never read again."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from fedbox.errors import NotFound, PermissionDenied, StoreError
from fedbox.store import Store

__all__ = ["QUARANTINE_DIR", "quarantine", "quarantine_path"]

logger = logging.getLogger(__name__)

QUARANTINE_DIR = ".quarantine"


def quarantine_path(path: str) -> str:
    """``a/b/x.request`` -> ``a/b/.quarantine/x.request``: beside it, hidden from watchers."""
    p = PurePosixPath(path)
    return str(p.parent / QUARANTINE_DIR / p.name)


def quarantine(store: Store, path: str) -> str | None:
    """Move ``path`` into quarantine; None if it vanished or the store refused the move.

    Never raises: a file that cannot be moved is only logged, because one bad file must
    not stop the traffic around it. On a hub the reader of an inbox may not write it (only
    the sender writes its outbox), so the move is refused there by design: the file stays
    where the sender can see it and clean it up, and the reader's own records keep it
    from being taken again (a request is answered once, from the audit log; a response
    is held back, :meth:`fedbox.rpc.box.Box.hold_back`).
    """
    target = quarantine_path(path)
    try:
        store.move(path, target)
    except NotFound:
        return None
    except PermissionDenied:
        logger.warning("%s is not ours to move aside on this store; left in place, ignored", path)
        return None
    except (StoreError, OSError) as exc:
        logger.error("cannot quarantine %s: %s", path, exc)
        return None
    logger.warning("quarantined %s", path)
    return target
