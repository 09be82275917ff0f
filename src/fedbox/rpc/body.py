"""Outgoing bodies made of pieces, so large data reaches the file without being joined.

A :class:`Body` is a sequence of buffers written one after the other (``memoryview`` s of
numpy or Flower buffers included: they go to the file as they are), and of
:class:`Shared` pieces: bytes that several messages of one batch carry identically, such
as the model a strategy sends to every node. The sender stores a Shared piece once per
store, as a blob that each recipient's message refers to (issue 6).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["Body", "Buffer", "PiecesReader", "Shared"]

Buffer = bytes | bytearray | memoryview


def _view(buffer: ReadableBuffer) -> memoryview:
    view = memoryview(buffer)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class Shared:
    """Bytes that several bodies of a batch share. Identity matters: the sender stores one
    Shared object once, so give every body the same object. Its buffers must not change
    until the batch is written.
    """

    __slots__ = ("buffers", "size")

    def __init__(self, buffers: Iterable[Buffer]) -> None:
        self.buffers = [v for v in map(_view, buffers) if v.nbytes]
        self.size = sum(v.nbytes for v in self.buffers)

    def __repr__(self) -> str:
        return f"<Shared {self.size} bytes in {len(self.buffers)} buffers>"


class Body:
    """A body to send: buffers and Shared pieces, in order. ``bytes(body)`` joins them
    (a copy, for tests and small bodies); senders write the pieces one by one."""

    __slots__ = ("pieces", "size")

    def __init__(self, pieces: Iterable[Buffer | Shared]) -> None:
        self.pieces: list[memoryview | Shared] = []
        for piece in pieces:
            item = piece if isinstance(piece, Shared) else _view(piece)
            if item.nbytes if isinstance(item, memoryview) else item.size:
                self.pieces.append(item)
        self.size = sum(p.size if isinstance(p, Shared) else p.nbytes for p in self.pieces)

    def __repr__(self) -> str:
        shared = sum(isinstance(p, Shared) for p in self.pieces)
        return f"<Body {self.size} bytes, {len(self.pieces)} pieces ({shared} shared)>"

    def buffers(self) -> Iterator[memoryview]:
        """Every buffer in order, Shared pieces unpacked."""
        for piece in self.pieces:
            if isinstance(piece, Shared):
                yield from piece.buffers
            else:
                yield piece

    def __bytes__(self) -> bytes:
        return b"".join(self.buffers())

    def reader(self) -> PiecesReader:
        return PiecesReader(self.buffers())


class PiecesReader(io.RawIOBase):
    """A read-once binary stream over buffers, without joining them (for encryption,
    which reads its input segment by segment)."""

    def __init__(self, buffers: Iterable[Buffer]) -> None:
        self._parts = [v for v in map(_view, buffers) if v.nbytes]
        self._index = 0
        self._offset = 0
        self.size = sum(p.nbytes for p in self._parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        out = _view(buffer)
        written = 0
        while written < len(out) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(out) - written, len(part) - self._offset)
            out[written : written + n] = part[self._offset : self._offset + n]
            written += n
            self._offset += n
            if self._offset == len(part):
                self._index, self._offset = self._index + 1, 0
        return written
