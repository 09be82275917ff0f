"""Waiting for datasites' public keys before an encrypted run starts.

With encryption on, a request can only be written once its recipient has
published keys (``datasites/{email}/public/did.json``), which happens when the
recipient first connects. A deployment's datasites start in any order, so the
aggregator waits for their keys (woken by file events) before the first round;
whoever is still missing gets Error replies instead of requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from fedbox.errors import CryptoError
from fedbox.rpc import Box

__all__ = ["keys_missing", "wait_for_keys"]

logger = logging.getLogger(__name__)


def keys_missing(box: Box, emails: Iterable[str]) -> dict[str, str]:
    """``{email: reason}`` for every peer we cannot encrypt to yet (empty without encryption)."""
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
    with box.store.watch("datasites", ("did.json",)) as watcher:
        while True:
            missing = keys_missing(box, wanted)
            remaining = deadline - time.monotonic()
            if not missing or remaining <= 0:
                break
            watcher.next_batch(remaining)
    if missing:
        logger.warning(
            "no usable keys from %d datasites after %.1f s: %s",
            len(missing),
            timeout,
            "; ".join(missing.values()),
        )
    return missing
