"""SHA-256 on a helper thread gives the same digest as hashlib, in order."""

from __future__ import annotations

import gc
import hashlib
import os
import threading

import pytest
from waiting import wait_until

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


def test_an_abandoned_hasher_stops_its_thread() -> None:
    """An exception mid-body drops the hasher without close(): its thread must not leak."""
    before = _helper_threads()
    hasher = BackgroundSha256()
    for _ in range(3):
        hasher.update(os.urandom(1 << 20))  # the last one is still being hashed
    assert _helper_threads() == before + 1
    del hasher
    gc.collect()
    wait_until(lambda: _helper_threads() == before, "the helper thread to end", timeout=10)


def test_close_is_idempotent_and_survives_collection() -> None:
    before = _helper_threads()
    hasher = BackgroundSha256()
    for _ in range(3):
        hasher.update(os.urandom(1 << 20))
    hasher.close()
    hasher.close()
    del hasher
    gc.collect()
    wait_until(lambda: _helper_threads() == before, "the helper thread to end", timeout=10)


def test_an_error_on_the_helper_thread_surfaces_in_the_caller() -> None:
    hasher = BackgroundSha256()
    hasher.update(os.urandom(1 << 20))
    hasher.update("not bytes" * (1 << 14))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hasher.wait()
    hasher.close()
