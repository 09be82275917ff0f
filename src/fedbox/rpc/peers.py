"""Waiting for peers' public keys before encrypted traffic starts.

With encryption on, a request can only be written once its recipient has published
keys (``datasites/{email}/public/did.json``), which
happens when the recipient first connects. Participants start in any order, so a caller
that is about to address several peers (an FL aggregator, a bridge client, a data
scientist submitting to owners) waits for their keys, woken by file events, and learns
who is still missing instead of failing on the first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from fedbox.errors import CryptoError
from fedbox.rpc.box import Box
from fedbox.rpc.sealing import DID_FILE

__all__ = ["keys_missing", "wait_for_keys"]

logger = logging.getLogger(__name__)


def keys_missing(box: Box, emails: Iterable[str]) -> dict[str, str]:
    """``{email: reason}`` for every peer we cannot encrypt to yet (empty without encryption).

    A reason is a missing or malformed ``did.json``, or a key refused as untrusted
    (changed since it was pinned, or not pinned on a box that requires pins).
    """
    if box.sealer is None:
        return {}
    missing: dict[str, str] = {}
    for email in emails:
        try:
            box.sealer.bundle(email)
        except CryptoError as exc:
            missing[email] = str(exc)
    return missing


def wait_for_keys(box: Box, emails: Iterable[str], timeout: float) -> dict[str, str]:
    """Block until every peer's keys are usable or ``timeout`` passes; what is still missing."""
    wanted = list(emails)
    deadline = time.monotonic() + timeout
    with box.store.watch("datasites", (DID_FILE,)) as watcher:
        while True:
            missing = keys_missing(box, wanted)
            remaining = deadline - time.monotonic()
            if not missing or remaining <= 0:
                break
            watcher.next_batch(remaining)
    if missing:
        logger.warning(
            "no usable keys from %d peers after %.1f s: %s",
            len(missing),
            timeout,
            "; ".join(missing.values()),
        )
    return missing
