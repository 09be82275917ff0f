"""Streaming bodies keep memory bounded by segments, not by body size."""

from __future__ import annotations

import hashlib
import io
import tracemalloc

from fedbox.crypto import ciphertext_size, decrypt_body, encrypt_body

BODY = 64 * 1024 * 1024
PEAK_LIMIT = 3 * 1024 * 1024  # two 1 MiB segments plus slack; a third copy fails
KEY = bytes(range(32))
PREFIX = bytes(7)
BLOCK = memoryview(b"\xab" * (1 << 20))  # allocated before tracing starts


class Pattern(io.RawIOBase):
    """``size`` bytes of a repeating pattern, generated on demand."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = BLOCK[:n]
        self._left -= n
        return n


class Sink(io.RawIOBase):
    """Counts and hashes what is written, keeps nothing."""

    def __init__(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.size += len(data)
        self.digest.update(data)
        return len(data)


def test_encrypting_64_mb_keeps_peak_memory_small() -> None:
    sink = Sink()
    tracemalloc.start()
    try:
        written = encrypt_body(Pattern(BODY), sink, KEY, nonce_prefix=PREFIX)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == sink.size == ciphertext_size(BODY)
    assert peak < PEAK_LIMIT, f"peak {peak} bytes"


def test_decrypting_64_mb_keeps_peak_memory_small(tmp_path) -> None:
    cipher_path = tmp_path / "body.enc"
    with open(cipher_path, "wb") as f:
        encrypt_body(Pattern(BODY), f, KEY, nonce_prefix=PREFIX)
    sink = Sink()
    with open(cipher_path, "rb") as f:
        tracemalloc.start()
        try:
            written = decrypt_body(
                f, sink, KEY, nonce_prefix=PREFIX, ciphertext_len=ciphertext_size(BODY)
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert written == sink.size == BODY
    expected = hashlib.sha256()
    for _ in range(BODY // len(BLOCK)):
        expected.update(BLOCK)
    assert sink.digest.digest() == expected.digest()
    assert peak < PEAK_LIMIT, f"peak {peak} bytes"


def test_a_small_body_of_known_size_needs_no_whole_segment_buffer() -> None:
    """Issue 20: a 40 KB reply was read through a zeroed 1 MiB buffer (a fifth of a
    virtual client host's instructions, by valgrind). Given its size, the buffer fits
    the body."""
    size = 40_000
    sink = Sink()
    tracemalloc.start()
    try:
        encrypt_body(Pattern(size), sink, KEY, nonce_prefix=PREFIX, size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size == ciphertext_size(size)
    assert peak < 4 * size, f"peak {peak} bytes"
