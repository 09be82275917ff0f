"""Length-prefixed frames over a pipe: how the owner's daemon and a sandboxed job that
has no network and no store (an FL client) exchange messages.

A frame is 8 bytes of big-endian length, then that many bytes. The end of the stream
between frames is a clean end (``None``); inside a frame it is an error.
"""

from __future__ import annotations

import struct
from typing import IO

from fedbox.errors import FedboxError

__all__ = ["REPLY_OK", "REPLY_REFUSED", "PipeClosed", "read_frame", "write_frame"]

_HEADER = struct.Struct(">Q")

REPLY_OK = b"\x00"
"""First byte of a reply frame that carries the reply's body."""
REPLY_REFUSED = b"\x01"
"""First byte of a reply frame that says, in UTF-8, why the request was not handled."""


class PipeClosed(FedboxError, EOFError):
    """The other side of the pipe went away in the middle of a frame, or before replying."""


def write_frame(stream: IO[bytes], data: bytes | memoryview) -> None:
    try:
        stream.write(_HEADER.pack(len(data)))
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError) as exc:  # ValueError: the pipe was closed here
        raise PipeClosed(f"the other side of the pipe is gone: {exc}") from exc


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at a clean end of the stream."""
    header = _read_exactly(stream, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise PipeClosed("the stream ended inside a frame header")
    (size,) = _HEADER.unpack(header)
    data = _read_exactly(stream, size)
    if len(data) < size:
        raise PipeClosed(f"the stream ended after {len(data)} of {size} bytes of a frame")
    return data
