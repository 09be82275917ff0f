"""The envelope: one file = one message, ``FBX1 | u32 header length | header JSON | body``.

The body is raw bytes, never base64 or JSON. A broadcast's body may live in a blob
beside the message instead (``body_ref``, the blob's name, equal to ``body_sha256``; see
``fedbox.datasite.paths``): then the file ends after the header and each recipient's
file still has its own header. A body from a stream is written in one
pass (``write_streamed``): the header is written first with room reserved for the fields
only known at the end (``body_len``, ``body_sha256``, and ``enc`` when the body is
encrypted on the way), the body is streamed, then the header is rewritten in place
(JSON allows the trailing spaces that pad it to the reserved size).

Versions (the header's ``v``; readers take both):

1. ``body_sha256`` is the SHA-256 of the body bytes in the file (the ciphertext when
   encrypted), and a sealed blob in a parts table is named by the SHA-256 of its bytes.
2. The same, except for encrypted bodies (issue 20): the authenticated cipher already
   vouches for every segment and the end of the body under a key only the sender and
   the recipient hold, and the key wraps bind ``v`` and ``body_len``, so a sealed body
   written directly to its message file leaves ``body_sha256`` empty, and a sealed blob
   is named by a digest of its key (``fedbox.rpc.blobs.sealed_blob_name``), so neither
   side hashes the ciphertext. A non-empty ``body_sha256`` (a broadcast's ``body_ref``)
   is still checked. Plain bodies keep their SHA-256, which readers verify.

Everything read from a file is hostile until checked (issue 11): every length is held
against what the file holds before anything is allocated for it, times must be finite,
and no error message quotes the file's bytes (a request linked to a private file must
not be answered with its contents).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedbox.crypto import Readable
from fedbox.crypto._primitives import BackgroundSha256
from fedbox.datasite.paths import MessagePath
from fedbox.errors import CorruptMessage

__all__ = [
    "MAGIC",
    "MAX_HEADER_LEN",
    "MAX_TIME",
    "READABLE_VERSIONS",
    "VERSION",
    "Header",
    "bytes_left",
    "check_body_size",
    "copy_body",
    "header_mismatch",
    "read_body",
    "read_envelope",
    "read_header",
    "write_buffers",
    "write_envelope",
    "write_head",
    "write_header",
    "write_streamed",
]

MAGIC = b"FBX1"
VERSION = 2
"""The version this fedbox writes (see the module docstring)."""
READABLE_VERSIONS = (1, 2)
MAX_HEADER_LEN = 1 << 20
"""Headers are small; a larger length field means a corrupt or hostile file."""
MAX_TIME = 253402300799.0
"""The last second of the year 9999: later (or non-finite) times are refused."""
_MAX_BODY_LEN = (1 << 63) - 1

_PREFIX = struct.Struct("<4sI")
_CHUNK = 1 << 20
_RESERVE = {"body_len": 10**18, "body_sha256": "0" * 64}


class Header(BaseModel):
    """What a message says about itself. Validated on read: it crossed a trust boundary."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = VERSION
    id: str
    kind: Literal["request", "response"]
    sender: str
    recipient: str
    app: str
    endpoint: str
    created: float = Field(ge=0, le=MAX_TIME, allow_inf_nan=False)
    expires: float = Field(ge=0, le=MAX_TIME, allow_inf_nan=False)
    headers: dict[str, str] = Field(default_factory=dict)
    status: int | None = Field(default=None, ge=100, le=599)
    body_len: int = Field(default=0, ge=0, le=_MAX_BODY_LEN)
    body_sha256: str = ""
    enc: dict[str, Any] | None = None
    body_ref: str | None = None
    """The blob holding the body (a broadcast's), or None: the body follows the header."""

    def to_json(self) -> bytes:
        fields = self.model_dump(exclude={"body_ref"} if self.body_ref is None else None)
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def write_head(f: BinaryIO, header: Header) -> None:
    """Write the prefix and ``header``, whose ``body_*`` fields are final: the body, if
    it is in the file, comes next."""
    raw = header.to_json()
    f.write(_PREFIX.pack(MAGIC, len(raw)))
    f.write(raw)


def write_header(f: BinaryIO, header: Header) -> Header:
    """Write a message whose body lives elsewhere (``header.body_ref``): the header only."""
    if header.body_ref is None or header.body_ref != header.body_sha256:
        raise ValueError("write_header is for messages whose body_ref names their body")
    write_head(f, header)
    return header


def write_envelope(f: BinaryIO, header: Header, body: bytes | Readable) -> Header:
    """Write the message to ``f`` (seekable, positioned at 0); return the final header."""
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        final = header.model_copy(
            update={"body_len": view.nbytes, "body_sha256": hashlib.sha256(view).hexdigest()}
        )
        write_head(f, final)
        f.write(view)
        return final
    return write_streamed(f, header, lambda out: _copy_hashing(body, out))


def write_buffers(f: BinaryIO, header: Header, buffers: Iterable[memoryview]) -> Header:
    """Write a body given as buffers (array data included) straight to ``f``: no joined
    copy, each buffer hashed on a helper thread while it is written (``write_streamed``).
    The buffers must not change until this returns."""

    def write_body(out: BinaryIO) -> dict[str, Any]:
        digest = BackgroundSha256()
        size = 0
        try:
            for view in buffers:
                digest.update(view)
                out.write(view)
                size += view.nbytes
        except BaseException:
            digest.close()
            raise
        return {"body_len": size, "body_sha256": digest.hexdigest()}

    return write_streamed(f, header, write_body)


BodyWriter = Callable[[BinaryIO], Mapping[str, Any]]
"""Writes the body to the file it is given; returns the header fields that describe it."""


def write_streamed(
    f: BinaryIO,
    header: Header,
    write_body: BodyWriter,
    *,
    reserve: Mapping[str, Any] | None = None,
) -> Header:
    """Write the header with room reserved, the body via ``write_body(f)``, then the final
    header (``header`` updated with what ``write_body`` returned) in place; return it.

    The reservation is the JSON size of ``header`` with the largest ``body_len``, a
    ``body_sha256`` and the ``reserve`` fields (give values of the same JSON size as the
    real ones, e.g. an ``enc`` with placeholder wraps). ``f`` must be seekable.
    """
    reserved = len(header.model_copy(update={**_RESERVE, **(reserve or {})}).to_json())
    start = f.tell()
    f.write(_PREFIX.pack(MAGIC, reserved))
    f.write(b" " * reserved)
    final = header.model_copy(update=dict(write_body(f)))
    raw = final.to_json()
    if len(raw) > reserved:
        raise RuntimeError(f"final header is {len(raw)} bytes, only {reserved} were reserved")
    end = f.tell()
    f.seek(start + _PREFIX.size)
    f.write(raw.ljust(reserved))
    f.seek(end)
    return final


def _copy_hashing(body: Readable, out: BinaryIO) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := body.readinto(view):
        digest.update(view[:n])
        out.write(view[:n])
        size += n
    return {"body_len": size, "body_sha256": digest.hexdigest()}


def read_header(f: io.BufferedIOBase, *, path: str | None = None) -> Header:
    """Parse the header and leave ``f`` at the first body byte; CorruptMessage on anything off."""
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise CorruptMessage(f"file is too short to be a message ({len(prefix)} bytes)", path)
    magic, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise CorruptMessage(f"bad magic (not a fedbox message, which starts {MAGIC!r})", path)
    if length > MAX_HEADER_LEN:
        raise CorruptMessage(f"header length {length} exceeds {MAX_HEADER_LEN}", path)
    raw = f.read(length)
    if len(raw) < length:
        raise CorruptMessage("file ends inside the header", path)
    try:
        header = Header.model_validate_json(raw)
    except ValidationError as exc:
        # Not chained: a ValidationError quotes the values it refused, the file's bytes.
        raise CorruptMessage(f"unreadable header: {_first_error(exc)}", path) from None
    if header.v not in READABLE_VERSIONS:
        raise CorruptMessage(f"unsupported envelope version {header.v}", path, header.id)
    return header


def _first_error(exc: ValidationError) -> str:
    """The first problem, named by field only: deeper parts of a location (a key of
    ``headers``) come from the file and are not repeated."""
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = err.get("loc", ())
    where = str(loc[0]) if loc and loc[0] in Header.model_fields else "header"
    return f"{where}: {err.get('msg', 'invalid')}"


def bytes_left(f: io.BufferedIOBase) -> int | None:
    """Bytes from the current position of ``f`` to its end; None if that cannot be known."""
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


def check_body_size(
    f: io.BufferedIOBase, header: Header, *, path: str | None = None, what: str = "body"
) -> None:
    """Refuse a plaintext body (``f`` positioned at its start) whose file does not hold
    exactly ``header.body_len`` bytes, before anything is allocated for it: a header
    claiming a terabyte must be a CorruptMessage, not a MemoryError (issue 11, point 5).
    A file whose size cannot be known is left to the readers, which stop at its end."""
    left = bytes_left(f)
    if left is None or left == header.body_len:
        return
    if left < header.body_len:
        raise CorruptMessage(
            f"{what} is {left} bytes, header says {header.body_len}", path, header.id
        )
    raise CorruptMessage(f"file has bytes after the {what}", path, header.id)


def read_envelope(f: io.BufferedIOBase, *, path: str | None = None) -> tuple[Header, bytes]:
    """Header and verified body, the body read into memory exactly once."""
    header = read_header(f, path=path)
    return header, read_body(f, header, path=path)


def read_body(f: io.BufferedIOBase, header: Header, *, path: str | None = None) -> bytes:
    """The body (``f`` positioned after the header), verified against the header."""
    check_body_size(f, header, path=path)
    body = f.read(header.body_len)
    if len(body) < header.body_len:
        raise CorruptMessage(
            f"body is {len(body)} bytes, header says {header.body_len}", path, header.id
        )
    if f.read(1):
        raise CorruptMessage("file has bytes after the body", path, header.id)
    if hashlib.sha256(body).hexdigest() != header.body_sha256:
        raise CorruptMessage("body digest does not match the header", path, header.id)
    return body


def copy_body(
    f: io.BufferedIOBase, header: Header, dst: BinaryIO, *, path: str | None = None
) -> None:
    """Stream the body (``f`` positioned after the header) into ``dst``, verifying it.

    ``dst`` has received unverified bytes when this raises; callers write into a temp
    file and discard it on error.
    """
    digest = hashlib.sha256()
    remaining = header.body_len
    buf = bytearray(max(1, min(remaining, _CHUNK)))
    view = memoryview(buf)
    while remaining:
        n = f.readinto(view[: min(remaining, _CHUNK)])
        if not n:
            raise CorruptMessage(f"body ends {remaining} bytes early", path, header.id)
        digest.update(view[:n])
        dst.write(view[:n])
        remaining -= n
    if f.read(1):
        raise CorruptMessage("file has bytes after the body", path, header.id)
    if digest.hexdigest() != header.body_sha256:
        raise CorruptMessage("body digest does not match the header", path, header.id)


def header_mismatch(header: Header, expected: MessagePath) -> str | None:
    """Why a header disagrees with the path it was found at, or None.

    The path is the authority: on a hub only its writer can create files in an outbox,
    so a header claiming another sender or recipient is forged or misplaced.
    """
    if header.kind != expected.kind.value:
        return f"kind is {header.kind!r}, file is a {expected.kind.value}"
    if header.id != expected.id:
        return f"header id {header.id} differs from file name {expected.id}"
    if header.recipient != expected.reader:
        return f"addressed to {header.recipient}, not {expected.reader}"
    if header.sender != expected.writer:
        return f"claims sender {header.sender} but sits in {expected.writer}'s outbox"
    if header.app != expected.app or header.endpoint != expected.endpoint:
        return (
            f"header names {header.app}/{header.endpoint}, path {expected.app}/{expected.endpoint}"
        )
    return None
