"""Bodies that refer to blobs: the parts table, and how an outgoing body is cut into parts.

A body is stored whole in its message file unless part of it is shared by several
messages (a broadcast) or it is larger than the chunking threshold (issue 6). Then the
message's body (the plaintext, when encrypted) is a *parts container*::

    MAGIC | u32 count | count x entry | the inline parts' bytes, in order

    entry = u8 kind | 3 zero bytes | u32 segment_size | u64 length | u64 stored_len
            | 32-byte SHA-256 of the blob file (its name) | 32-byte key

and the logical body is the concatenation of its parts: inline parts from the message
file, blobs from ``{outbox}/{app}/blobs/{sha256}`` (see ``fedbox.datasite.paths``). A
sealed blob is STREAM ciphertext (``fedbox.crypto.stream``) under the entry's key with an
all-zero nonce prefix; the key is derived from the plaintext's digest and a secret of
the sender, so it encrypts that one plaintext only and a resent blob comes out the same.
The table sits inside the body, so on an encrypting box it is encrypted and
authenticated with the rest, keys included.

The magic starts with a NUL byte, which no Flower message does (a protobuf field number
is never 0); a plain body that happens to start with it is sent as a container with a
single inline part, so the first bytes of a body say unambiguously what it is.

Cutting: below the threshold, each Shared piece of at least ``MIN_SHARED_BLOB`` bytes
becomes one blob and everything else stays inline. Above it, small leading pieces (a
Flower message's metadata) stay inline and the rest is cut at fixed offsets into blobs of
``chunk_size`` bytes, so the same data always gives the same chunks: a chunk already at
the recipient is never written again (resuming), and chunks of a broadcast are shared.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from fedbox.errors import CorruptMessage
from fedbox.rpc.body import Body, Shared
from fedbox.sizes import parse_size

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CHUNK_THRESHOLD",
    "MAGIC",
    "MAX_PARTS",
    "MIN_SHARED_BLOB",
    "BlobSource",
    "Inline",
    "PartKind",
    "PartRef",
    "PlanCache",
    "decode_table",
    "default_chunk_size",
    "default_chunk_threshold",
    "encode_table",
    "plan",
]

MAGIC = b"\x00FBXPRT1"
DEFAULT_CHUNK_THRESHOLD = 512 << 20
"""Bodies larger than this (bytes) are cut into chunk blobs: well below protobuf's 2 GiB."""
DEFAULT_CHUNK_SIZE = 64 << 20
"""Bytes per chunk blob: what an interrupted transfer redoes at most, and what an
encrypting sender holds in memory at a time."""
MIN_SHARED_BLOB = 64 << 10
"""A shared piece smaller than this is copied into each message: a file costs more."""
MAX_PARTS = 1 << 20
"""Larger part counts in a table mean a corrupt or hostile body."""
_HEAD_PIECE = 64 << 10
_HEAD_TOTAL = 1 << 20

_PREFIX = struct.Struct("<8sI")
_ENTRY = struct.Struct("<B3xIQQ32s32s")
_NO_DIGEST = bytes(32)


def _default_size(name: str, value: int | None, default: int) -> int:
    if value is not None:
        if value < 1:
            raise ValueError(f"{name.lower()} must be positive, got {value}")
        return int(value)
    env = os.environ.get(name)
    if env:
        try:
            parsed = parse_size(env)
        except ValueError as exc:
            raise ValueError(f"${name}: {exc}") from exc
        if parsed > 0:
            return parsed
    return default


def default_chunk_threshold(value: int | None = None) -> int:
    """The argument, else ``$FEDBOX_CHUNK_THRESHOLD``, else 512 MiB (issue 6)."""
    return _default_size("FEDBOX_CHUNK_THRESHOLD", value, DEFAULT_CHUNK_THRESHOLD)


def default_chunk_size(value: int | None = None) -> int:
    """The argument, else ``$FEDBOX_CHUNK_SIZE``, else 64 MiB (issue 6)."""
    return _default_size("FEDBOX_CHUNK_SIZE", value, DEFAULT_CHUNK_SIZE)


class PartKind(IntEnum):
    INLINE = 0
    BLOB = 1
    SEALED_BLOB = 2


@dataclass(frozen=True, slots=True)
class PartRef:
    """One entry of a parts table."""

    kind: PartKind
    length: int
    """Bytes this part adds to the logical body (plaintext)."""
    stored_len: int = 0
    """Bytes of the blob file (ciphertext when sealed); 0 for inline parts."""
    digest: str = ""
    """SHA-256 (hex) of the blob file: its name."""
    key: bytes = b""
    segment_size: int = 0

    def __repr__(self) -> str:  # never print a key
        return f"PartRef({self.kind.name}, {self.length}, {self.digest[:12] or '-'})"


def encode_table(refs: Sequence[PartRef]) -> bytes:
    out = [_PREFIX.pack(MAGIC, len(refs))]
    for ref in refs:
        digest = bytes.fromhex(ref.digest) if ref.digest else _NO_DIGEST
        key = ref.key or bytes(32)
        out.append(_ENTRY.pack(ref.kind, ref.segment_size, ref.length, ref.stored_len, digest, key))
    return b"".join(out)


def decode_table(read: Callable[[int], bytes], available: int) -> list[PartRef]:
    """The table at the start of a container (``read(n)`` returns the next ``n`` bytes of
    the ``available`` ones, MAGIC included); CorruptMessage if it is not one."""
    head = read(_PREFIX.size)
    if len(head) < _PREFIX.size or head[:8] != MAGIC:
        raise CorruptMessage("not a parts container")
    _, count = _PREFIX.unpack(head)
    if count > MAX_PARTS or _PREFIX.size + count * _ENTRY.size > available:
        raise CorruptMessage(f"parts table of {count} entries does not fit the body")
    raw = read(count * _ENTRY.size)
    if len(raw) < count * _ENTRY.size:
        raise CorruptMessage("body ends inside the parts table")
    refs = []
    for kind, segment, length, stored, digest, key in _ENTRY.iter_unpack(raw):
        try:
            part = PartKind(kind)
        except ValueError:
            raise CorruptMessage("unknown part kind in the parts table") from None
        if part is PartKind.INLINE:
            refs.append(PartRef(part, length))
        else:
            sealed = part is PartKind.SEALED_BLOB
            refs.append(
                PartRef(part, length, stored, digest.hex(), key if sealed else b"", segment)
            )
    return refs


# -- cutting an outgoing body -----------------------------------------------------------


@dataclass(eq=False, slots=True)
class Inline:
    """Bytes that go into the message file itself."""

    buffers: list[memoryview] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class BlobSource:
    """The plaintext of one blob to store, as views; the writer fills in the rest once
    per batch (digests, the encrypted form, where it was first written)."""

    buffers: list[memoryview]
    size: int
    plain_sha256: bytes | None = None
    stored: dict[bool, PartRef] = field(default_factory=dict)
    """Sealed or not -> the table entry, once known."""
    written_at: dict[bool, str] = field(default_factory=dict)
    """Sealed or not -> the first store path holding it: later copies link to it."""
    cipher: bytearray | None = None
    """The sealed form until it is first written."""


class PlanCache:
    """Per batch: the blobs of each Shared piece, so a model sent to N nodes is hashed,
    encrypted and written once. Holds the Shared objects, so their ids stay unique."""

    def __init__(self) -> None:
        self._plans: dict[tuple[int, int | None], tuple[Shared, list[BlobSource]]] = {}

    def blobs(self, shared: Shared, chunk_size: int | None) -> list[BlobSource]:
        key = (id(shared), chunk_size)
        cached = self._plans.get(key)
        if cached is None or cached[0] is not shared:
            if chunk_size is None:
                blobs = [BlobSource(list(shared.buffers), shared.size)]
            else:
                blobs = _cut(shared.buffers, chunk_size)
            cached = self._plans[key] = (shared, blobs)
        return cached[1]


def plan(
    body: Body, *, threshold: int, chunk_size: int, cache: PlanCache
) -> list[Inline | BlobSource]:
    """How ``body`` is stored: inline parts and blobs, in body order (see module doc)."""
    items: list[Inline | BlobSource] = []

    def inline(views: Iterable[memoryview]) -> None:
        last = items[-1] if items else None
        if not isinstance(last, Inline):
            last = Inline()
            items.append(last)
        last.buffers.extend(views)

    if body.size <= threshold:
        for piece in body.pieces:
            if isinstance(piece, Shared) and piece.size >= MIN_SHARED_BLOB:
                items.extend(cache.blobs(piece, None))
            else:
                inline(piece.buffers if isinstance(piece, Shared) else [piece])
        return items
    pieces = list(body.pieces)
    head_size = 0
    while pieces and isinstance(head := pieces[0], memoryview):
        size = head.nbytes
        if size > _HEAD_PIECE or head_size + size > _HEAD_TOTAL:
            break
        inline([head])
        del pieces[0]
        head_size += size
    if len(pieces) == 1 and isinstance(pieces[0], Shared):
        items.extend(cache.blobs(pieces[0], chunk_size))
    elif pieces:
        views = [v for p in pieces for v in (p.buffers if isinstance(p, Shared) else [p])]
        items.extend(_cut(views, chunk_size))
    return items


def _cut(views: Sequence[memoryview], chunk_size: int) -> list[BlobSource]:
    """``views`` as consecutive blobs of ``chunk_size`` bytes (the last one shorter),
    each a list of slices of the views: nothing is copied."""
    blobs: list[BlobSource] = []
    current: list[memoryview] = []
    filled = 0
    for view in views:
        offset = 0
        while offset < view.nbytes:
            take = min(chunk_size - filled, view.nbytes - offset)
            current.append(view[offset : offset + take])
            filled += take
            offset += take
            if filled == chunk_size:
                blobs.append(BlobSource(current, filled))
                current, filled = [], 0
    if filled:
        blobs.append(BlobSource(current, filled))
    return blobs
