"""How an HTTP request and response travel as the body of one fedbox message.

The HTTP metadata travels inside the body, never in the envelope's ``headers``: the
envelope header is plaintext on the store, the body is encrypted end to end, and a
method, a path, a cookie or an ``Authorization`` header are the caller's business only.

Request body::

    REQUEST_MAGIC | u32 head length | head JSON | the request body, raw, to the end

    head = {"method": "GET", "target": "/path?query", "headers": [[name, value], ...]}

Response body::

    RESPONSE_MAGIC | u32 head length | head JSON | frame ... | end

    head  = {"status": 200, "headers": [[name, value], ...]}
    frame = u32 n (1 <= n <= MAX_FRAME) | n bytes
    end   = u32 0                                  the body is complete
          | u32 FAILED | u32 m | m bytes (UTF-8)    the application failed mid-body

The response is framed because the owner starts writing it before the application has
finished: an application that fails half-way leaves a body the caller can tell from a
complete one (httpx raises ``RemoteProtocolError``, as for a connection closed early).
All integers are little-endian; header names and values are Latin-1 (as on the wire).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "FAILED",
    "MAX_FRAME",
    "MAX_HEAD",
    "REQUEST_MAGIC",
    "RESPONSE_MAGIC",
    "ChunkStream",
    "Head",
    "IncompleteBody",
    "WireError",
    "read_frames",
    "read_request_head",
    "read_response_head",
    "request_prefix",
    "response_frames",
]

REQUEST_MAGIC = b"FBXHTQ1\n"
RESPONSE_MAGIC = b"FBXHTR1\n"
MAX_HEAD = 1 << 20
"""Heads larger than this are refused: headers are small, a larger head is hostile."""
MAX_FRAME = 1 << 24
"""Application chunks larger than this are cut into several frames."""
FAILED = 0xFFFFFFFF
_U32 = struct.Struct("<I")
_READ = 1 << 16

Headers = list[tuple[str, str]]


class WireError(ValueError):
    """A body that is not a well-formed bridge request or response."""


@dataclass(frozen=True, slots=True)
class Head:
    """The HTTP part of a request (``method``, ``target``) or a response (``status``)."""

    headers: Headers
    method: str = ""
    target: str = ""
    status: int = 0
    length: int = 0
    """Bytes the head took in the body (magic and length included)."""


def _encode(magic: bytes, fields: dict[str, object]) -> bytes:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    if len(raw) > MAX_HEAD:
        raise WireError(f"HTTP head is {len(raw)} bytes, more than {MAX_HEAD}")
    return magic + _U32.pack(len(raw)) + raw


def request_prefix(method: str, target: str, headers: Headers) -> bytes:
    """The bytes a request body starts with; the HTTP body follows them as it is."""
    return _encode(
        REQUEST_MAGIC,
        {"method": method, "target": target, "headers": [list(h) for h in headers]},
    )


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise WireError(f"body ends inside the {what} ({len(data)} of {n} bytes)")
    return data


def _read_head(f: BinaryIO, magic: bytes) -> tuple[dict[str, object], int]:
    if _read_exact(f, len(magic), "magic") != magic:
        raise WireError(f"not a bridge message (does not start with {magic!r})")
    (length,) = _U32.unpack(_read_exact(f, _U32.size, "head length"))
    if length > MAX_HEAD:
        raise WireError(f"HTTP head length {length} exceeds {MAX_HEAD}")
    try:
        fields = json.loads(_read_exact(f, length, "head"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"unreadable HTTP head: {exc}") from None
    if not isinstance(fields, dict):
        raise WireError("the HTTP head is not a JSON object")
    return fields, len(magic) + _U32.size + length


def _headers(value: object) -> Headers:
    if not isinstance(value, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in value
    ):
        raise WireError("HTTP headers must be a list of [name, value] strings")
    return [(name, v) for name, v in value]


def read_request_head(f: BinaryIO) -> Head:
    """The request's head; ``f`` is left at the first byte of the HTTP body."""
    fields, length = _read_head(f, REQUEST_MAGIC)
    method, target = fields.get("method"), fields.get("target")
    if not isinstance(method, str) or not method.isalpha() or not method.isascii():
        raise WireError(f"bad HTTP method {method!r}")
    if not isinstance(target, str) or not target.startswith("/"):
        raise WireError(f"bad HTTP target {target!r} (must start with '/')")
    headers = _headers(fields.get("headers"))
    return Head(headers=headers, method=method.upper(), target=target, length=length)


def read_response_head(f: BinaryIO) -> Head:
    """The response's head; ``f`` is left at its first frame."""
    fields, length = _read_head(f, RESPONSE_MAGIC)
    status = fields.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise WireError(f"bad HTTP status {status!r}")
    return Head(headers=_headers(fields.get("headers")), status=status, length=length)


def response_frames(status: int, headers: Headers, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The response body, piece by piece: head, a frame per chunk, the end mark. An
    exception from ``chunks`` ends the body with a failure frame instead of propagating:
    the message is being written, and the caller must learn that the body is incomplete.
    """
    yield _encode(RESPONSE_MAGIC, {"status": status, "headers": [list(h) for h in headers]})
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), MAX_FRAME):
                piece = view[start : start + MAX_FRAME]
                yield _U32.pack(len(piece))
                yield bytes(piece)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".encode()[:MAX_HEAD]
        yield _U32.pack(FAILED) + _U32.pack(len(reason)) + reason
        return
    yield _U32.pack(0)


class IncompleteBody(WireError):
    """The application failed after the response had begun: the body is cut short."""


def read_frames(f: BinaryIO) -> Iterator[bytes]:
    """The response body's bytes (``f`` after the head), in pieces of at most 64 KiB.
    IncompleteBody if the owner's application failed mid-body, WireError if the frames
    are damaged or cut."""
    while True:
        (n,) = _U32.unpack(_read_exact(f, _U32.size, "frame length"))
        if n == 0:
            if f.read(1):
                raise WireError("bytes after the end of the response body")
            return
        if n == FAILED:
            (m,) = _U32.unpack(_read_exact(f, _U32.size, "failure length"))
            if m > MAX_HEAD:
                raise WireError(f"failure reason length {m} exceeds {MAX_HEAD}")
            reason = _read_exact(f, m, "failure reason").decode("utf-8", "replace")
            raise IncompleteBody(f"the application failed while sending the body: {reason}")
        if n > MAX_FRAME:
            raise WireError(f"frame of {n} bytes exceeds {MAX_FRAME}")
        while n:
            piece = _read_exact(f, min(n, _READ), "frame")
            n -= len(piece)
            yield piece


class ChunkStream(io.RawIOBase):
    """A read-once binary stream over an iterator of chunks, without joining them: what
    ``App.send`` and a handler's response read a streamed body from."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        while not self._view.nbytes:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._view = memoryview(chunk).cast("B")
        n = min(len(out), self._view.nbytes)
        out[:n] = self._view[:n]
        self._view = self._view[n:]
        return n
