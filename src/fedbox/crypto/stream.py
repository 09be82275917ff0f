"""Segmented authenticated encryption of message bodies (the STREAM construction).

A body can be far larger than memory (model weights), so it is cut into segments that
are encrypted and checked one at a time, as in STREAM (Hoang, Reyhanitabar, Rogaway,
Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO
2015) and age's payload format. Each segment is AES-256-GCM with the 12-byte nonce

    nonce_prefix (7 bytes) || segment index (u32 big-endian) || last flag (0x00 or 0x01)

so a segment moved, dropped, duplicated or copied from another body fails its tag, and so
does cutting the body short or extending it: only the last segment carries the flag.

Layout: every segment but the last holds exactly ``segment_size`` plaintext bytes; the
last holds the rest, 0 to ``segment_size - 1`` bytes, so a body whose length is a multiple
of the segment size ends in an empty final segment and a 0-byte body is one empty final
segment. Encryption therefore never needs to read ahead. Each segment adds a 16-byte tag.

AES-256-GCM, not ChaCha20-Poly1305 (as in format v1): with AES-NI and carry-less multiply
it runs at several GB/s, about three times ChaCha20-Poly1305 in ``cryptography``. GCM
must never see a nonce twice under one key: a content key encrypts one body only, and
within a body the index and flag make every nonce distinct. A segment of at most
``MAX_SEGMENT_SIZE`` bytes is far below GCM's limit of 2**39 - 256 bits per message.

Contract of ``decrypt_body``: plaintext is written segment by segment as each one
authenticates; if it raises DecryptError, what was already written to ``dst`` must be
discarded (write to a temp file, rename on success).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbox.crypto._primitives import BackgroundSha256
from fedbox.errors import DecryptError

__all__ = [
    "CONTENT_KEY_SIZE",
    "MAX_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "DecryptingReader",
    "Readable",
    "Sink",
    "ciphertext_size",
    "decrypt_body",
    "encrypt_body",
    "read_into",
]

SEGMENT_SIZE = 1 << 20
"""Default plaintext bytes per segment (1 MiB): memory use is about two of these."""

MAX_SEGMENT_SIZE = 1 << 24
"""Largest segment accepted (16 MiB), so a hostile header cannot make us allocate more."""

CONTENT_KEY_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
_MAX_SEGMENTS = 1 << 32  # the index is a u32
_DECRYPT_INTO = hasattr(AESGCM, "decrypt_into")  # not in older cryptography releases


def ciphertext_size(plaintext_len: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Bytes ``encrypt_body`` writes for ``plaintext_len`` bytes: known before encrypting."""
    if plaintext_len < 0:
        raise ValueError("plaintext_len must be >= 0")
    if problem := _param_problem(bytes(CONTENT_KEY_SIZE), bytes(NONCE_PREFIX_SIZE), segment_size):
        raise ValueError(problem)
    return plaintext_len + (plaintext_len // segment_size + 1) * TAG_SIZE


class Readable(Protocol):
    """Where a body is read from: anything with ``readinto`` (a file, a decrypting or
    hashing reader)."""

    def readinto(self, buffer: memoryview, /) -> int: ...


class Sink(Protocol):
    """Where ciphertext goes: anything with ``write`` (a file, a hashing wrapper)."""

    def write(self, data: bytes, /) -> int: ...


def encrypt_body(
    src: Readable | bytes | bytearray | memoryview,
    dst: Sink,
    content_key: bytes,
    *,
    nonce_prefix: bytes,
    segment_size: int = SEGMENT_SIZE,
    size: int | None = None,
) -> int:
    """Encrypt ``src`` to its end into ``dst``; return the ciphertext bytes written.

    ``content_key`` must be fresh for this body (``seal.new_body_keys``): the nonces
    repeat across bodies that share a key and prefix. ``src`` is a file (it must support
    ``readinto``) or a body already in memory, encrypted in place without a copy; it must
    not change meanwhile. Each segment is written to ``dst`` as a new bytes object.

    ``size``, when the caller knows it, sizes the buffer a file is read into: a 40 KB
    body then needs no zeroed 1 MiB per message (issue 20: valgrind counted a fifth of a
    virtual client host's instructions in that zeroing; it costs less time than that,
    but pages of fresh memory too). A file longer than ``size`` is a ValueError.
    """
    if problem := _param_problem(content_key, nonce_prefix, segment_size):
        raise ValueError(problem)
    aead = AESGCM(content_key)
    if isinstance(src, bytes | bytearray | memoryview):
        body = memoryview(src).cast("B")

        def next_chunk(index: int) -> memoryview:
            return body[index * segment_size : (index + 1) * segment_size]
    else:
        room = segment_size if size is None else max(1, min(segment_size, size + 1))
        view = memoryview(bytearray(room))
        read = 0

        def next_chunk(index: int) -> memoryview:
            nonlocal read
            n = read_into(src, view)
            read += n
            if size is not None and read > size:
                raise ValueError(f"the body is longer than the {size} bytes announced")
            return view[:n]

    written = 0
    for index in range(_MAX_SEGMENTS):
        chunk = next_chunk(index)
        last = len(chunk) < segment_size
        segment = aead.encrypt(_nonce(nonce_prefix, index, last), chunk, None)
        dst.write(segment)
        written += len(segment)
        del segment  # before the next one exists: two segments in memory, not three
        if last:
            return written
    raise ValueError(f"body has more than 2**32 segments of {segment_size} bytes")


def decrypt_body(
    src: Readable,
    dst: Sink | memoryview,
    content_key: bytes,
    *,
    nonce_prefix: bytes,
    segment_size: int = SEGMENT_SIZE,
    ciphertext_len: int,
) -> int:
    """Read exactly ``ciphertext_len`` bytes of ``src``, write the plaintext; return its size.

    ``dst`` is a file, or a writable memoryview that the plaintext is decrypted into
    directly (no per-segment copy), from its start; a body that would not fit is refused.
    Raises DecryptError naming the first segment that is short or fails authentication
    (see the module docstring for what ``dst`` then holds; in a memoryview, the failed
    segment's bytes are zeroed). Bad parameters also raise DecryptError: they come from
    a message header.
    """
    if problem := _param_problem(content_key, nonce_prefix, segment_size):
        raise DecryptError(problem)
    chunk = segment_size + TAG_SIZE
    if not isinstance(ciphertext_len, int) or ciphertext_len < TAG_SIZE:
        raise DecryptError(f"body length {ciphertext_len!r} is too short for one segment")
    if -(-ciphertext_len // chunk) > _MAX_SEGMENTS:
        raise DecryptError(f"body length {ciphertext_len} needs more than 2**32 segments")
    aead = AESGCM(content_key)
    into = dst.cast("B") if isinstance(dst, memoryview) else None
    if into is not None and into.readonly:
        raise ValueError("decrypt_body needs a writable memoryview")
    view = memoryview(bytearray(min(chunk, ciphertext_len)))
    remaining = ciphertext_len
    written = 0
    index = 0
    while remaining:
        want = min(chunk, remaining)
        got = read_into(src, view[:want])
        if got < want:
            raise DecryptError(
                f"body segment {index} is truncated: the body ends "
                f"{remaining - got} bytes short of {ciphertext_len}"
            )
        if want < TAG_SIZE:
            raise DecryptError(f"body segment {index} is shorter than its tag")
        remaining -= want
        nonce = _nonce(nonce_prefix, index, not remaining)
        size = want - TAG_SIZE
        if into is not None and written + size > len(into):
            raise DecryptError(
                f"body segment {index} goes past the {len(into)} bytes of plaintext expected"
            )
        try:
            if into is None:
                plain = aead.decrypt(nonce, view[:want], None)
                assert not isinstance(dst, memoryview)  # into is None: dst is a Sink
                dst.write(plain)
                del plain  # before the next one exists: two segments in memory, not three
            elif _DECRYPT_INTO:
                aead.decrypt_into(nonce, view[:want], None, into[written : written + size])
            else:  # cryptography without decrypt_into: one copy per segment
                into[written : written + size] = aead.decrypt(nonce, view[:want], None)
        except InvalidTag as exc:
            if into is not None:  # decrypt_into has written the forgery's plaintext
                into[written : written + size] = bytes(size)
            raise DecryptError(
                f"body segment {index} failed authentication: "
                "tampered, reordered, truncated, extended or not encrypted with this key"
            ) from exc
        written += size
        index += 1
    return written


class DecryptingReader:
    """A STREAM body decrypted segment by segment as it is read, never held whole.

    ``readinto(view)`` decrypts the next segments straight into ``view`` when they fit
    (else into one segment buffer, handed out from there), so each byte of plaintext is
    written once, where the caller wants it. Only authenticated segments are handed out;
    cutting, extending or reordering fails a tag (the last-segment flag), and when the
    last plaintext byte is read the final segment, the ciphertext's length, its SHA-256
    (``sha256``, hex, if given) and the absence of trailing bytes (if ``src`` can
    ``read``) are checked before ``readinto`` returns. As with ``decrypt_body``, the
    plaintext counts only once the final read returned: on DecryptError, discard it.
    Every failure raises DecryptError, and so does every read after one.
    """

    def __init__(
        self,
        src: Readable,
        content_key: bytes,
        *,
        nonce_prefix: bytes,
        segment_size: int = SEGMENT_SIZE,
        ciphertext_len: int,
        sha256: str | None = None,
    ) -> None:
        if problem := _param_problem(content_key, nonce_prefix, segment_size):
            raise DecryptError(problem)
        chunk = segment_size + TAG_SIZE
        if not isinstance(ciphertext_len, int) or ciphertext_len < TAG_SIZE:
            raise DecryptError(f"body length {ciphertext_len!r} is too short for one segment")
        count = -(-ciphertext_len // chunk)
        if count > _MAX_SEGMENTS:
            raise DecryptError(f"body length {ciphertext_len} needs more than 2**32 segments")
        if ciphertext_len - (count - 1) * chunk < TAG_SIZE:
            raise DecryptError(f"body segment {count - 1} is shorter than its tag")
        self.length = self.remaining = ciphertext_len - count * TAG_SIZE
        self.ciphertext_len = ciphertext_len
        self._src = src
        self._aead = AESGCM(content_key)
        self._prefix = nonce_prefix
        self._segment_size = segment_size
        self._chunk = chunk
        self._left = ciphertext_len  # ciphertext bytes not yet read
        self._index = 0
        self._cipher = memoryview(bytearray(min(chunk, ciphertext_len)))
        self._own: memoryview | None = None  # plaintext of a segment too big for the view
        self._pending = memoryview(b"")
        self._expected = sha256
        self._digest = BackgroundSha256(ciphertext_len) if sha256 is not None else None
        self._error: DecryptError | None = None
        self._finished = False

    @property
    def done(self) -> bool:
        """Whether the whole body has been read and verified."""
        return self._finished

    def prime(self) -> None:
        """Authenticate the first segment now (the whole body if it is empty): a wrong
        key or a damaged start shows up before anything is read."""
        if self.remaining:
            self.peek(1)
        else:
            self._run(self._finish)

    def peek(self, n: int) -> bytes:
        """Up to ``n`` plaintext bytes ahead, without consuming them."""

        def fill() -> None:
            while len(self._pending) < n and len(self._pending) < self.remaining:
                out = memoryview(bytearray(self._next_size()))
                self._decrypt_next(out)
                self._pending = memoryview(bytes(self._pending) + bytes(out))

        self._run(fill)
        return bytes(self._pending[:n])

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with authenticated plaintext; fewer bytes only at the end."""
        out = memoryview(view).cast("B")
        n = 0

        def fill() -> None:
            nonlocal n
            while n < len(out) and self.remaining:
                if len(self._pending):
                    k = min(len(self._pending), len(out) - n)
                    out[n : n + k] = self._pending[:k]
                    self._pending = self._pending[k:]
                else:
                    size = self._next_size()
                    if size <= len(out) - n:
                        self._decrypt_next(out[n : n + size])
                        k = size
                    else:
                        if self._own is None:  # a body shorter than a segment needs less
                            own = min(self._segment_size, self.length)
                            self._own = memoryview(bytearray(own))
                        self._decrypt_next(self._own[:size])
                        self._pending = self._own[:size]
                        continue
                n += k
                self.remaining -= k
            if not self.remaining:
                self._finish()

        self._run(fill)
        return n

    def read(self, n: int = -1) -> bytes:
        buf = bytearray(self.remaining if n < 0 else min(n, self.remaining))
        got = self.readinto(memoryview(buf))
        return bytes(buf[:got])

    def close(self) -> None:
        """Stop the hashing helper, if any; idempotent."""
        if self._digest is not None:
            self._digest.close()
        self._pending = memoryview(b"")
        self._own = None

    def _run(self, step: Callable[[], None]) -> None:
        if self._error is not None:
            raise DecryptError(str(self._error))
        try:
            step()
        except DecryptError as exc:
            self._error = exc
            self._pending = memoryview(b"")
            self.close()
            raise

    def _next_size(self) -> int:
        return min(self._chunk, self._left) - TAG_SIZE

    def _decrypt_next(self, out: memoryview) -> None:
        """Read, authenticate and decrypt the next segment into ``out`` (its exact size)."""
        want = min(self._chunk, self._left)
        if self._digest is not None:
            self._digest.wait()  # the previous segment's ciphertext is still being hashed
        view = self._cipher[:want]
        got = read_into(self._src, view)
        if got < want:
            raise DecryptError(
                f"body segment {self._index} is truncated: the body ends "
                f"{self._left - got} bytes short of {self.ciphertext_len}"
            )
        if self._digest is not None:
            self._digest.update(view)
        self._left -= want
        nonce = _nonce(self._prefix, self._index, not self._left)
        try:
            if _DECRYPT_INTO:
                self._aead.decrypt_into(nonce, view, None, out)
            else:
                out[:] = self._aead.decrypt(nonce, view, None)
        except InvalidTag as exc:
            out[:] = bytes(len(out))  # decrypt_into has written the forgery's plaintext
            raise DecryptError(
                f"body segment {self._index} failed authentication: "
                "tampered, reordered, truncated, extended or not encrypted with this key"
            ) from exc
        self._index += 1

    def _finish(self) -> None:
        """The plaintext is all out: check the final (empty) segment and the rest."""
        if self._finished:
            return
        while self._left:  # only an empty final segment can remain
            self._decrypt_next(memoryview(bytearray(self._next_size())))
        read = getattr(self._src, "read", None)
        if read is not None and read(1):
            raise DecryptError("file has bytes after the body")
        if self._digest is not None and not hmac.compare_digest(
            self._digest.hexdigest(), str(self._expected)
        ):
            raise DecryptError("body SHA-256 differs from the header's body_sha256")
        self._finished = True


def _param_problem(content_key: bytes, nonce_prefix: bytes, segment_size: int) -> str | None:
    if not isinstance(content_key, bytes) or len(content_key) != CONTENT_KEY_SIZE:
        return f"content key must be {CONTENT_KEY_SIZE} bytes"
    if not isinstance(nonce_prefix, bytes) or len(nonce_prefix) != NONCE_PREFIX_SIZE:
        return f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes"
    if not isinstance(segment_size, int) or not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        return f"segment size {segment_size!r} is not between 1 and {MAX_SEGMENT_SIZE}"
    return None


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def read_into(src: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless it ends first (short reads are retried); the
    number of bytes read."""
    total = 0
    while total < len(view):
        got = src.readinto(view[total:])
        if not got:
            break
        total += got
    return total
