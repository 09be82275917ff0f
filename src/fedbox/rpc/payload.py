"""Received bodies, read once and verified as they are read.

A :class:`Payload` is the logical body of a received message: its parts (inline bytes
of the message file, blobs beside it; see ``fedbox.rpc.parts``) as one stream. Reading
copies each byte once, from the file into the caller's buffer: ``stream().read(n)`` of
a large ``n`` allocates the result and fills it directly (``io.BufferedReader`` hands
its raw reader a view of the new bytes object), so a Flower decoder gets each array's
data as ``bytes`` with no intermediate buffer and no memory map to keep alive.

Every part is checked the moment its last byte is read: the message file's bytes
against the header's ``body_sha256``, a blob against its name, a sealed blob by its
authentication tags (and, from envelope v1, its name); so once the whole body has been
read it is verified, and a consumer that reads to the end (decoders do) never acts on
bad data. A failure raises CorruptMessage or DecryptError and calls ``on_failure`` once
(to quarantine the file).
Encrypted message bodies are decrypted segment by segment straight into the caller's
buffer (each STREAM segment authenticated before it is handed out; the final segment,
the length and the digest when the last byte is read), so ``read()`` holds the plaintext
once; sealed blobs likewise, when reached.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from fedbox.crypto import TAG_SIZE, DecryptingReader, Readable, read_into
from fedbox.datasite.paths import blob_path, validate_blob_name
from fedbox.errors import CorruptMessage, CryptoError, DecryptError, InvalidIdentity, NotFound
from fedbox.rpc.blobs import BLOB_NONCE_PREFIX, sealed_blob_name
from fedbox.rpc.body import Buffer
from fedbox.rpc.envelope import Header, check_body_size
from fedbox.rpc.parts import MAGIC, PartKind, PartRef, decode_table
from fedbox.store import Store

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from fedbox.rpc.sealing import Sealer

__all__ = ["EAGER_LIMIT", "Payload", "open_payload"]

logger = logging.getLogger(__name__)

EAGER_LIMIT = 1 << 20
"""Plain message bodies up to this size are read and verified when opened."""
_BUFFER = 64 << 10
_UNSIZED_STEP = 16 << 20


def _read_hashing(f: Readable, view: memoryview, digest: hashlib._Hash) -> int:
    """Fill ``view`` from ``f`` (fewer bytes only at its end) and hash what was read."""
    n = read_into(f, view)
    digest.update(view[:n])
    return n


class Payload:
    """A received body. Read it once: :meth:`stream` (large data straight into the
    caller's objects) or :meth:`read` (all of it as bytes). Close it when done."""

    def __init__(
        self,
        segments: list[_Segment],
        *,
        files: list[io.BufferedIOBase] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.size = sum(s.length for s in segments)
        self._raw = _Raw(segments, on_failure)  # no reference back: no cycle to collect
        self._files = list(files or [])
        self._taken = False

    def __repr__(self) -> str:
        return f"<Payload {self.size} bytes in {len(self._raw.segments)} parts>"

    @classmethod
    def of(cls, data: Buffer) -> Payload:
        """A payload over bytes already in memory (and already verified)."""
        source = _MemorySource(memoryview(data))
        return cls([_Inline(source, source.length)])

    @property
    def verified(self) -> bool:
        """Whether every byte has been read and checked."""
        return self._raw.done

    @property
    def failure(self) -> Exception | None:
        """What was found wrong with the body while it was read, if anything."""
        return self._raw.failure

    def stream(self) -> io.BufferedReader:
        """The body as a stream, once. Reading it to the end verifies it."""
        if self._taken:
            raise RuntimeError("a payload can be read only once")
        self._taken = True
        return io.BufferedReader(self._raw, _BUFFER)

    def read(self) -> bytes:
        """The whole body, verified.

        It is allocated at once when every part's size was checked against its file;
        otherwise (blobs on a remote store, whose sizes only their downloads tell) it is
        read in steps, so a table claiming a terabyte fails on the bytes really there.
        """
        stream = self.stream()
        if not self.size:
            data = b""
        elif all(segment.sized for segment in self._raw.segments):
            data = stream.read(self.size)
        else:
            data = b"".join(iter(partial(stream.read, _UNSIZED_STEP), b""))
        if len(data) != self.size or not self._raw.done:
            short = CorruptMessage(f"body ended after {len(data)} of {self.size} bytes")
            raise self._raw.fail(short)
        return data

    def close(self) -> None:
        """Release the files; idempotent."""
        files, self._files = self._files, []
        for f in files:
            f.close()
        self._raw.close()

    def __enter__(self) -> Payload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_payload(
    store: Store,
    f: io.BufferedIOBase,
    header: Header,
    *,
    writer: str,
    reader: str,
    sealer: Sealer | None,
    path: str | None = None,
    on_failure: Callable[[Exception], None] | None = None,
) -> Payload:
    """The body of the message whose header was just read from ``f`` (which the payload
    now owns). Blobs are looked up in the ``writer`` -> ``reader`` folder of the
    message's app, never anywhere a header could point to.

    Raises CorruptMessage (bad body_ref or table, missing blob), DecryptError and the
    other CryptoErrors of ``sealer.open_body`` when the envelope body does not open.
    """
    files = [f]
    try:
        source_file = f
        if header.body_ref is not None:
            source_file = _open_body_ref(store, f, header, writer, reader, path)
            files.append(source_file)
        what = "body" if header.body_ref is None else f"body blob {header.body_ref[:12]}"
        if header.enc is not None:
            assert sealer is not None, "callers refuse encrypted bodies without a sealer"
            decrypting = sealer.open_body_stream(source_file, header, path=path)
            if decrypting is not None:
                source: _Source = _DecryptingSource(decrypting, path, header.id)
            else:  # a file that cannot seek: decrypted whole
                plain = sealer.open_body(source_file, header, path=path)
                source = _MemorySource(memoryview(plain))
        else:
            check_body_size(source_file, header, path=path, what=what)
            if header.body_len <= EAGER_LIMIT:
                data = _read_verified(source_file, header, path, what)
                source = _MemorySource(memoryview(data))
            else:
                source = _FileSource(source_file, header, path, what)
        segments = _segments(source, store, header, writer, reader, path)
    except BaseException:
        for opened in files:
            opened.close()
        raise
    return Payload(segments, files=files, on_failure=on_failure)


def _open_body_ref(
    store: Store, f: io.BufferedIOBase, header: Header, writer: str, reader: str, path: str | None
) -> io.BufferedIOBase:
    """The blob holding the whole (possibly encrypted) body of a broadcast message."""
    name = header.body_ref
    if name != header.body_sha256:
        raise CorruptMessage("body_ref names another blob than body_sha256", path, header.id)
    if f.read(1):
        raise CorruptMessage("a message with body_ref has bytes after its header", path, header.id)
    try:
        where = str(blob_path(writer, reader, header.app, validate_blob_name(name)))
    except InvalidIdentity:  # not chained: the refusal quotes the name, the file's bytes
        raise CorruptMessage("body_ref is not a blob name", path, header.id) from None
    try:
        return store.open(where)
    except NotFound as exc:
        raise CorruptMessage(f"body blob {name[:12]} is missing", path, header.id) from exc


def _read_verified(f: io.BufferedIOBase, header: Header, path: str | None, what: str) -> bytes:
    data = f.read(header.body_len)
    if len(data) < header.body_len:
        raise CorruptMessage(
            f"{what} is {len(data)} bytes, header says {header.body_len}", path, header.id
        )
    if f.read(1):
        raise CorruptMessage(f"file has bytes after the {what}", path, header.id)
    if hashlib.sha256(data).hexdigest() != header.body_sha256:
        raise CorruptMessage(f"{what} digest does not match the header", path, header.id)
    return data


def _segments(
    source: _Source, store: Store, header: Header, writer: str, reader: str, path: str | None
) -> list[_Segment]:
    if source.length < len(MAGIC) or source.peek(len(MAGIC)) != MAGIC:
        return [_Inline(source, source.length)]
    try:
        refs = decode_table(source.read, source.length)
    except CorruptMessage as exc:
        raise CorruptMessage(str(exc), path, header.id) from exc
    inline = sum(r.length for r in refs if r.kind is PartKind.INLINE)
    if inline != source.remaining:
        raise CorruptMessage(
            f"parts table says {inline} inline bytes, the body has {source.remaining}",
            path,
            header.id,
        )
    segments: list[_Segment] = []
    for ref in refs:
        if ref.kind is PartKind.INLINE:
            segments.append(_Inline(source, ref.length))
            continue
        try:
            where = str(blob_path(writer, reader, header.app, validate_blob_name(ref.digest)))
        except InvalidIdentity as exc:
            raise CorruptMessage(f"bad blob reference: {exc}", path, header.id) from exc
        blob: _PlainBlob | _SealedBlob
        if ref.kind is PartKind.SEALED_BLOB:
            blob = _SealedBlob(store, where, ref, header.id, hashed_name=header.v < 2)
        else:
            blob = _PlainBlob(store, where, ref, header.id)
        blob.sized = _check_blob_size(store, where, ref, path, header.id)
        segments.append(blob)
    return segments


def _check_blob_size(
    store: Store, where: str, ref: PartRef, path: str | None, message_id: str
) -> bool:
    """Refuse a table whose sizes the blobs cannot have before anything is allocated for
    them (a few bytes claiming a terabyte); on a folder the blob's size is checked too.
    Whether it was (else only reading the blob will tell)."""
    plain_max = ref.stored_len if ref.kind is PartKind.BLOB else ref.stored_len - TAG_SIZE
    if ref.length > plain_max or (ref.kind is PartKind.BLOB and ref.length != ref.stored_len):
        raise CorruptMessage(f"blob {ref.digest[:12]}: impossible sizes", path, message_id)
    local = store.local_path(where)
    if local is None:
        return False
    try:
        size = local.stat().st_size
    except FileNotFoundError as exc:
        raise CorruptMessage(f"blob {ref.digest[:12]} is missing", path, message_id) from exc
    if size != ref.stored_len:
        raise CorruptMessage(
            f"blob {ref.digest[:12]} is {size} bytes, its reference says {ref.stored_len}",
            path,
            message_id,
        )
    return True


# -- sources: the message body itself ---------------------------------------------------


class _Source:
    """The (plaintext) body of the message file, read front to back."""

    length: int

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        raise NotImplementedError

    def peek(self, n: int) -> bytes:
        raise NotImplementedError

    def read(self, n: int) -> bytes:
        buf = bytearray(min(n, self.remaining))
        got = self.readinto(memoryview(buf))
        return bytes(buf[:got])

    def readinto(self, view: memoryview) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class _MemorySource(_Source):
    """Bytes already verified (a small body, or a decrypted one)."""

    remaining: int = 0  # a plain attribute here: shadows the base's read-only property

    def __init__(self, data: memoryview) -> None:
        self._data = data.cast("B") if data.format != "B" else data
        self.length = self.remaining = len(self._data)
        self._pos = 0

    def peek(self, n: int) -> bytes:
        return bytes(self._data[self._pos : self._pos + n])

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), self.remaining)
        view[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        self.remaining -= n
        return n

    def close(self) -> None:
        self._data = memoryview(b"")


class _DecryptingSource(_Source):
    """An encrypted body, decrypted segment by segment straight into the reader's buffer
    (``DecryptingReader``): authenticated segments only, and the last read raises unless
    the final segment, the length and the ciphertext's digest check out."""

    def __init__(self, reader: DecryptingReader, path: str | None, message_id: str) -> None:
        self._reader = reader
        self._path = path
        self._id = message_id
        self.length = reader.length

    @property
    def remaining(self) -> int:
        return self._reader.remaining

    def _failed(self, exc: CryptoError) -> CryptoError:
        exc.path = exc.path or self._path
        exc.message_id = exc.message_id or self._id
        return exc

    def peek(self, n: int) -> bytes:
        try:
            return self._reader.peek(n)
        except CryptoError as exc:
            raise self._failed(exc) from None

    def readinto(self, view: memoryview) -> int:
        try:
            return self._reader.readinto(view)
        except CryptoError as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        self._reader.close()


class _FileSource(_Source):
    """A large plain body, read from the message file and hashed as it goes; checked
    against the header when its last byte has been read."""

    remaining: int = 0  # a plain attribute here: shadows the base's read-only property

    def __init__(self, f: io.BufferedIOBase, header: Header, path: str | None, what: str) -> None:
        self._f = f
        self._header = header
        self._path = path
        self._what = what
        self.length = self.remaining = header.body_len
        self._digest = hashlib.sha256()
        self._pending = b""

    def peek(self, n: int) -> bytes:
        if len(self._pending) < n:
            more = self._f.read(min(n, self.remaining) - len(self._pending))
            self._digest.update(more)
            self._pending += more
        return self._pending[:n]

    def readinto(self, view: memoryview) -> int:
        want = min(len(view), self.remaining)
        if not want:
            return 0
        n = 0
        if self._pending:
            n = min(want, len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        if n < want:
            got = _read_hashing(self._f, view[n:want], self._digest)
            if n + got < want:
                raise CorruptMessage(
                    f"{self._what} ends {self.remaining - n - got} bytes early",
                    self._path,
                    self._header.id,
                )
            n = want
        self.remaining -= n
        if not self.remaining:
            self._finish()
        return n

    def _finish(self) -> None:
        if self._f.read(1):
            raise CorruptMessage(
                f"file has bytes after the {self._what}", self._path, self._header.id
            )
        if self._digest.hexdigest() != self._header.body_sha256:
            raise CorruptMessage(
                f"{self._what} digest does not match the header", self._path, self._header.id
            )


# -- segments: the parts of the logical body ---------------------------------------------


class _Segment:
    length: int
    sized = True
    """Whether ``length`` was checked against a file before reading (see Payload.read)."""

    def readinto(self, view: memoryview) -> int:
        """Fill some of ``view``; 0 only once the segment is complete (and verified)."""
        raise NotImplementedError

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the segment holds."""


class _Inline(_Segment):
    def __init__(self, source: _Source, length: int) -> None:
        self._source = source
        self.length = self._left = length

    @property
    def done(self) -> bool:
        return not self._left

    def readinto(self, view: memoryview) -> int:
        n = self._source.readinto(view[: self._left]) if self._left else 0
        self._left -= n
        return n

    def close(self) -> None:
        self._source.close()


class _PlainBlob(_Segment):
    """A blob read straight into the caller's buffer, hashed, checked against its name."""

    def __init__(self, store: Store, path: str, ref: PartRef, message_id: str) -> None:
        self._store, self._path, self._ref, self._id = store, path, ref, message_id
        self.length = self._left = ref.length
        self._f: io.BufferedIOBase | None = None
        self._digest = hashlib.sha256()

    @property
    def done(self) -> bool:
        return not self._left

    def _corrupt(self, reason: str) -> CorruptMessage:
        return CorruptMessage(f"blob {self._ref.digest[:12]}: {reason}", self._path, self._id)

    def _open(self) -> io.BufferedIOBase:
        if self._f is None:
            if self._ref.stored_len != self._ref.length:
                raise self._corrupt("a plain blob's stored and logical sizes differ")
            try:
                self._f = self._store.open(self._path)
            except NotFound as exc:
                raise self._corrupt("missing") from exc
        return self._f

    def readinto(self, view: memoryview) -> int:
        if not self._left:
            return 0
        f = self._open()
        want = min(len(view), self._left)
        got = _read_hashing(f, view[:want], self._digest)
        if got < want:
            raise self._corrupt(f"ends {self._left - got} bytes early")
        self._left -= got
        if not self._left:
            if f.read(1):
                raise self._corrupt("longer than its reference says")
            if not hmac.compare_digest(self._digest.hexdigest(), self._ref.digest):
                raise self._corrupt("content does not match its name (SHA-256)")
            self.close()
        return got

    def close(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()


class _SealedBlob(_Segment):
    """An encrypted blob, decrypted segment by segment straight into the caller's buffer
    (``DecryptingReader``), each segment authenticated before it is handed out. In an
    envelope v1 message the blob's name is the SHA-256 of its bytes, checked when the
    last byte is read; in v2 it is a digest of its key (``sealed_blob_name``), checked
    when the blob is opened, and the tags alone vouch for the bytes."""

    def __init__(
        self, store: Store, path: str, ref: PartRef, message_id: str, *, hashed_name: bool
    ) -> None:
        self._store, self._path, self._ref, self._id = store, path, ref, message_id
        self._hashed_name = hashed_name
        self.length = ref.length
        self._f: io.BufferedIOBase | None = None
        self._reader: DecryptingReader | None = None
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _failed(self, reason: object) -> DecryptError:
        return DecryptError(f"blob {self._ref.digest[:12]}: {reason}", self._path, self._id)

    def _open(self) -> DecryptingReader:
        ref = self._ref
        if not self._hashed_name and not hmac.compare_digest(sealed_blob_name(ref.key), ref.digest):
            raise self._failed("its name does not belong to its key")
        try:
            f = self._f = self._store.open(self._path)
        except NotFound as exc:
            raise CorruptMessage(
                f"blob {ref.digest[:12]} is missing", self._path, self._id
            ) from exc
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        if size != ref.stored_len:
            raise CorruptMessage(
                f"blob {ref.digest[:12]} is {size} bytes, its reference says {ref.stored_len}",
                self._path,
                self._id,
            )
        try:
            reader = DecryptingReader(
                f,
                ref.key,
                nonce_prefix=BLOB_NONCE_PREFIX,
                segment_size=ref.segment_size,
                ciphertext_len=ref.stored_len,
                sha256=ref.digest if self._hashed_name else None,
            )
        except CryptoError as exc:
            raise self._failed(exc) from exc
        if reader.length != ref.length:
            reader.close()
            raise self._failed("its size does not match its reference")
        return reader

    def readinto(self, view: memoryview) -> int:
        if self._done:
            return 0
        if self._reader is None:
            self._reader = self._open()
        try:
            n = self._reader.readinto(view[: self._reader.remaining])
        except CryptoError as exc:
            raise self._failed(exc) from exc
        if self._reader.done:
            self._done = True
            self.close()
        return n

    def close(self) -> None:
        """Release the file and the reader's buffers: a body of many chunks holds one
        chunk's at a time."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        f, self._f = self._f, None
        if f is not None:
            f.close()


class _Raw(io.RawIOBase):
    """The segments as one raw stream; the first failure is kept and reported."""

    def __init__(
        self, segments: list[_Segment], on_failure: Callable[[Exception], None] | None
    ) -> None:
        self.segments = segments
        self._on_failure = on_failure
        self.failure: Exception | None = None
        self._index = 0
        self._skip_empty()

    def fail(self, exc: Exception) -> Exception:
        """Record ``exc`` (and report it, once); return it for raising."""
        if self.failure is None:
            self.failure = exc
            if self._on_failure is not None:
                try:
                    self._on_failure(exc)
                except Exception:  # reporting must not hide the failure itself
                    logger.exception("could not report a damaged body")
        return exc

    def _skip_empty(self) -> None:
        while self._index < len(self.segments) and self.segments[self._index].done:
            self._index += 1

    @property
    def done(self) -> bool:
        return self._index >= len(self.segments)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        total = 0
        try:
            while total < len(view) and not self.done:
                n = self.segments[self._index].readinto(view[total:])
                total += n
                if self.segments[self._index].done:
                    self._index += 1
                    self._skip_empty()
                elif not n:
                    raise CorruptMessage("a body part returned no data")
        except (CorruptMessage, CryptoError) as exc:
            raise self.fail(exc) from None
        return total

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
        super().close()
