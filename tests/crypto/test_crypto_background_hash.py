"""SHA-256 on a helper thread gives the same digest as hashlib, in order."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from fedbox.crypto._primitives import BackgroundSha256


def _helper_threads() -> int:
    return sum(t.name.startswith("fedbox-sha256") for t in threading.enumerate())


SIZES = [[], [0], [10], [1 << 20], [1 << 20] * 5, [3, 1 << 17, 5, 1 << 20]]


@pytest.mark.parametrize("sizes", SIZES)
def test_digest_matches_hashlib(sizes: list[int]) -> None:
    chunks = [os.urandom(n) for n in sizes]
    hasher = BackgroundSha256()
    for chunk in chunks:
        hasher.update(memoryview(chunk))
    assert hasher.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_one_segment_never_starts_a_thread_and_close_stops_it() -> None:
    before = _helper_threads()
    single = BackgroundSha256()
    single.update(os.urandom(1 << 20))
    assert _helper_threads() == before
    single.hexdigest()
    several = BackgroundSha256()
    for _ in range(3):
        several.update(os.urandom(1 << 20))
    assert _helper_threads() == before + 1
    several.hexdigest()
    several.close()
    assert _helper_threads() == before


def test_a_reused_buffer_is_safe_between_updates() -> None:
    """Each update waits for the previous one, so a caller may refill its buffer then."""
    buffer = bytearray(1 << 20)
    hasher, expected = BackgroundSha256(), hashlib.sha256()
    for i in range(4):
        hasher.wait()
        buffer[:] = bytes([i]) * len(buffer)
        expected.update(buffer)
        hasher.update(memoryview(buffer))
    assert hasher.hexdigest() == expected.hexdigest()
