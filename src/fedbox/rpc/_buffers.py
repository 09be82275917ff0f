"""A write-only file over a preallocated buffer: encryption and decryption write their
output straight into memory sized in advance, with no growing BytesIO to copy from."""

from __future__ import annotations

__all__ = ["BufferWriter"]


class BufferWriter:
    """``write`` fills ``buffer`` from the start; writing past its end raises ValueError
    (output larger than announced means the input lied about its size)."""

    def __init__(self, buffer: bytearray) -> None:
        self._view = memoryview(buffer)
        self._pos = 0

    def write(self, data: bytes) -> int:
        n = len(data)
        if self._pos + n > len(self._view):
            raise ValueError("output is larger than the space reserved for it")
        self._view[self._pos : self._pos + n] = data
        self._pos += n
        return n
