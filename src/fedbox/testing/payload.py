"""Large bodies made on the fly, for services that test or measure streaming.

A download of gigabytes must not sit in the service's memory: it is one block,
repeated, handed out piece by piece.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["repeated_block"]


def repeated_block(block: bytes, size: int) -> Iterator[bytes]:
    """``size`` bytes made of ``block`` over and over, in pieces of at most ``len(block)``."""
    if not block:
        raise ValueError("the block to repeat is empty")
    left = size
    while left > 0:
        n = min(left, len(block))
        yield block[:n]
        left -= n
