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

from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbox.errors import DecryptError

__all__ = [
    "CONTENT_KEY_SIZE",
    "MAX_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "ciphertext_size",
    "decrypt_body",
    "encrypt_body",
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


def encrypt_body(
    src: BinaryIO | bytes | bytearray | memoryview,
    dst: BinaryIO,
    content_key: bytes,
    *,
    nonce_prefix: bytes,
    segment_size: int = SEGMENT_SIZE,
) -> int:
    """Encrypt ``src`` to its end into ``dst``; return the ciphertext bytes written.

    ``content_key`` must be fresh for this body (``seal.new_body_keys``): the nonces
    repeat across bodies that share a key and prefix. ``src`` is a file (it must support
    ``readinto``) or a body already in memory, encrypted in place without a copy; it must
    not change meanwhile. Each segment is written to ``dst`` as a new bytes object.
    """
    if problem := _param_problem(content_key, nonce_prefix, segment_size):
        raise ValueError(problem)
    aead = AESGCM(content_key)
    if isinstance(src, bytes | bytearray | memoryview):
        body = memoryview(src).cast("B")

        def next_chunk(index: int) -> memoryview:
            return body[index * segment_size : (index + 1) * segment_size]
    else:
        view = memoryview(bytearray(segment_size))

        def next_chunk(index: int) -> memoryview:
            return view[: _read_into(src, view)]

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
    src: BinaryIO,
    dst: BinaryIO | memoryview,
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
        got = _read_into(src, view[:want])
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
                dst.write(plain)  # type: ignore[union-attr]
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


def _read_into(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless it ends first; short reads are retried."""
    total = 0
    while total < len(view):
        got = src.readinto(view[total:])  # type: ignore[attr-defined]
        if not got:
            break
        total += got
    return total
