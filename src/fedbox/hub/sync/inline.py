"""Small files' bytes that came with the change feed, kept until their download.

The hub's feed carries the bytes of others' new files of at most
:data:`~fedbox.hub.sync.remote.INLINE_MAX` bytes. A download of that very version then
writes them instead of asking the hub again: a burst of small files costs no GET per
file. The bytes are still checked against the sha256 the feed states before they are
placed (:func:`fedbox.hub.sync.transfer.place`).
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["InlineBytes"]

_KEEP_BYTES = 64 << 20
"""Held at most; the oldest are dropped first (their download then asks the hub)."""


class InlineBytes:
    """Thread-safe: the feed thread adds, the workers take."""

    def __init__(self, keep_bytes: int = _KEEP_BYTES) -> None:
        self._held: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._size = 0
        self._keep = keep_bytes
        self._lock = threading.Lock()

    def note(self, changes: list[dict[str, Any]]) -> None:
        """Keep the inline bytes of a feed batch's changes (the newest per path)."""
        with self._lock:
            for change in changes:
                data = change.get("data")
                if data is None or change["op"] != "put":
                    continue
                self._drop(change["path"])
                raw = base64.b64decode(data)
                self._held[change["path"]] = (int(change["seq"]), raw)
                self._size += len(raw)
            while self._size > self._keep:
                self._drop(next(iter(self._held)))

    def take(self, path: str, version: int) -> bytes | None:
        """The bytes of ``path`` at ``version`` if they came with the feed (once)."""
        with self._lock:
            held = self._held.get(path)
            if held is None or held[0] != version:
                return None
            self._drop(path)
            return held[1]

    def _drop(self, path: str) -> None:
        held = self._held.pop(path, None)
        if held is not None:
            self._size -= len(held[1])
