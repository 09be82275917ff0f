"""Writing one outgoing message: its blobs, then its file (requests and responses alike).

A :class:`~fedbox.rpc.body.Body` goes to the file buffer by buffer, never joined; when
it has Shared pieces or exceeds the chunking threshold, its blobs are stored first
(``fedbox.rpc.blobs``) and the message body is the parts table with the inline parts
(``fedbox.rpc.parts``), so a reader never finds a message whose blobs are missing.
A plain body that happens to start like a parts table is sent as a one-part table, so
the first bytes of every body say unambiguously what it is.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from fedbox.crypto import PublicBundle, Readable
from fedbox.rpc.blobs import BlobStorer
from fedbox.rpc.body import Body, PiecesReader
from fedbox.rpc.envelope import Header, write_buffers, write_envelope
from fedbox.rpc.parts import (
    MAGIC,
    BlobSource,
    Inline,
    PartKind,
    PartRef,
    PlanCache,
    encode_table,
    plan,
)

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["Batch", "chunk_threshold", "write_message"]


class Batch:
    """Messages an app sends together, e.g. one round of a strategy: the Shared pieces of
    their bodies are cut, hashed, encrypted and written once, then linked into each
    further recipient's folder. Get one from ``App.batch()``; use it for one batch."""

    def __init__(self, box: Box, app_name: str) -> None:
        self.cache = PlanCache()
        self.blobs = BlobStorer(box.store, box.email, app_name, sealer=box.sealer, clock=box.clock)

    def __repr__(self) -> str:
        return f"<Batch {self.blobs.stats!r}>"


def chunk_threshold(box: Box, *, sealed: bool) -> int:
    """Bodies above this are stored as chunks. Encrypted ones as soon as they exceed a
    chunk: a reader decrypts a part whole before handing out any of it, so chunks keep
    its memory to one chunk instead of one body (issue 6)."""
    return min(box.chunk_threshold, box.chunk_size) if sealed else box.chunk_threshold


def write_message(
    box: Box,
    path: str,
    header: Header,
    body: bytes | io.BufferedIOBase | Body,
    recipient: str,
    bundle: PublicBundle | None,
    batch: Batch,
) -> Header:
    """Write the message at ``path`` (encrypted for ``bundle`` and us if given); its
    final header. Blobs go to the ``box`` -> ``recipient`` folder of ``batch``'s app."""
    sealer = box.sealer if bundle is not None else None
    sealed = sealer is not None
    large = chunk_threshold(box, sealed=sealed)
    if isinstance(body, bytes | bytearray | memoryview) and len(body) > large:
        body = Body([body])  # stored as chunks
    if isinstance(body, Body):
        source: bytes | Readable | list[memoryview] = _store_parts(
            box, body, recipient, sealed=sealed, batch=batch
        )
    elif isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body).cast("B")
        source = _escaped([view]) if _looks_like_parts([view]) else bytes(view)
    else:
        source = _escape_stream(body)
    with box.store.writer(path) as f:
        if sealer is not None and bundle is not None:
            stream = PiecesReader(source) if isinstance(source, list) else source
            final, _ = sealer.encrypt_into(f, header, stream, bundle)
            return final
        if isinstance(source, list):
            return write_buffers(f, header, source)
        return write_envelope(f, header, source)


def _store_parts(
    box: Box, body: Body, recipient: str, *, sealed: bool, batch: Batch
) -> list[memoryview]:
    """Store the blobs ``body`` is cut into; the buffers of the message body itself:
    the parts table and the inline parts, or ``body``'s own buffers if it has no blob.
    """
    items = plan(
        body,
        threshold=chunk_threshold(box, sealed=sealed),
        chunk_size=box.chunk_size,
        cache=batch.cache,
    )
    if not any(isinstance(item, BlobSource) for item in items):
        buffers = list(body.buffers())
        return _escaped(buffers) if _looks_like_parts(buffers) else buffers
    refs: list[PartRef] = []
    inline: list[memoryview] = []
    for item in items:
        if isinstance(item, Inline):
            refs.append(PartRef(PartKind.INLINE, sum(v.nbytes for v in item.buffers)))
            inline.extend(item.buffers)
        else:
            refs.append(batch.blobs.put(recipient, item, sealed=sealed))
    return [memoryview(encode_table(refs)), *inline]


def _looks_like_parts(buffers: list[memoryview]) -> bool:
    """Whether these bytes start like a parts container (see ``fedbox.rpc.parts``)."""
    head = b""
    for view in buffers:
        head += bytes(view[: len(MAGIC) - len(head)])
        if len(head) == len(MAGIC):
            break
    return head == MAGIC


def _escaped(buffers: list[memoryview]) -> list[memoryview]:
    """A plain body that starts like a parts container, sent as one: a single inline part."""
    size = sum(v.nbytes for v in buffers)
    return [memoryview(encode_table([PartRef(PartKind.INLINE, size)])), *buffers]


class _Prefixed:
    """A stream with some bytes put back in front (what :func:`_escape_stream` peeked)."""

    def __init__(self, head: bytes, rest: io.BufferedIOBase) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readinto(self, buffer: memoryview) -> int:
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buffer)

    def read(self, n: int = -1) -> bytes:
        out = bytes(self._head) if n < 0 else bytes(self._head[:n])
        self._head = self._head[len(out) :]
        if n < 0:
            return out + self._rest.read()
        return out + (self._rest.read(n - len(out)) if n > len(out) else b"")


def _escape_stream(body: io.BufferedIOBase) -> bytes | Readable:
    """``body``, unless it starts like a parts container: then that body wrapped in one
    (read whole, which only such an unlikely body pays)."""
    head = body.read(len(MAGIC))
    if head != MAGIC:
        return _Prefixed(head, body)
    data = head + body.read()
    return encode_table([PartRef(PartKind.INLINE, len(data))]) + data
