"""A reproducible rng for key generation in tests and known-answer vectors."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable


def counter_rng(seed: bytes) -> Callable[[int], bytes]:
    """SHA-256(seed || u64 counter) blocks: reproducible anywhere."""
    counter = itertools.count()

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()
        return out[:n]

    return rng
