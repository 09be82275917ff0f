"""STREAM body encryption: round trips and every way of damaging a ciphertext."""

from __future__ import annotations

import io
import os

import pytest

from fedbox.crypto import (
    MAX_SEGMENT_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    ciphertext_size,
    decrypt_body,
    encrypt_body,
)
from fedbox.errors import DecryptError

KEY = bytes(range(32))
PREFIX = b"\x01" * 7
SMALL = 64


def encrypt(plain: bytes, segment_size: int = SMALL, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    written = encrypt_body(
        io.BytesIO(plain), out, key, nonce_prefix=PREFIX, segment_size=segment_size
    )
    assert written == len(out.getvalue())
    return out.getvalue()


def decrypt(
    cipher: bytes,
    segment_size: int = SMALL,
    *,
    key: bytes = KEY,
    prefix: bytes = PREFIX,
    ciphertext_len: int | None = None,
) -> bytes:
    out = io.BytesIO()
    written = decrypt_body(
        io.BytesIO(cipher),
        out,
        key,
        nonce_prefix=prefix,
        segment_size=segment_size,
        ciphertext_len=len(cipher) if ciphertext_len is None else ciphertext_len,
    )
    assert written == len(out.getvalue())
    return out.getvalue()


def segments(cipher: bytes, segment_size: int = SMALL) -> list[bytes]:
    step = segment_size + TAG_SIZE
    return [cipher[i : i + step] for i in range(0, len(cipher), step)]


@pytest.mark.parametrize(
    ("size", "segment_size"),
    [
        (0, SEGMENT_SIZE),
        (1, SEGMENT_SIZE),
        (SMALL - 1, SMALL),
        (SMALL, SMALL),
        (SMALL + 1, SMALL),
        (SEGMENT_SIZE, SEGMENT_SIZE),
        (1000, SMALL),
        (1000, 1),
        (5_000_000, SEGMENT_SIZE),
    ],
)
def test_round_trip(size: int, segment_size: int) -> None:
    plain = os.urandom(size)
    cipher = encrypt(plain, segment_size)
    assert len(cipher) == ciphertext_size(size, segment_size)
    assert decrypt(cipher, segment_size) == plain


def test_layout_ends_with_a_short_final_segment() -> None:
    assert ciphertext_size(0, SMALL) == TAG_SIZE
    assert ciphertext_size(SMALL, SMALL) == SMALL + 2 * TAG_SIZE
    assert [len(s) for s in segments(encrypt(bytes(SMALL * 2 + 5)))] == [80, 80, 21]


def test_every_flipped_byte_is_refused_and_the_segment_named() -> None:
    cipher = encrypt(os.urandom(3 * SMALL + 10))
    for i in range(len(cipher)):
        bad = bytearray(cipher)
        bad[i] ^= 0x01
        with pytest.raises(DecryptError, match=rf"segment {i // (SMALL + TAG_SIZE)} "):
            decrypt(bytes(bad))


def test_wrong_key_or_nonce_prefix_is_refused() -> None:
    cipher = encrypt(b"secret")
    with pytest.raises(DecryptError, match="segment 0 failed"):
        decrypt(cipher, key=bytes(32))
    with pytest.raises(DecryptError, match="segment 0 failed"):
        decrypt(cipher, prefix=bytes(7))


@pytest.mark.parametrize("cut", [1, TAG_SIZE, 10 + TAG_SIZE, 10 + TAG_SIZE + 1])
def test_truncation_is_refused(cut: int) -> None:
    # 2 full segments and a final one of 10 bytes: every cut lands somewhere else.
    cipher = encrypt(os.urandom(2 * SMALL + 10))
    with pytest.raises(DecryptError, match="segment"):
        decrypt(cipher[:-cut])


def test_dropping_the_final_segment_is_refused() -> None:
    segs = segments(encrypt(os.urandom(2 * SMALL)))
    assert len(segs) == 3 and len(segs[-1]) == TAG_SIZE
    with pytest.raises(DecryptError, match="segment 1 failed"):
        decrypt(b"".join(segs[:-1]))


def test_a_source_shorter_than_announced_is_refused() -> None:
    cipher = encrypt(os.urandom(2 * SMALL))
    with pytest.raises(DecryptError, match="segment 2 is truncated"):
        decrypt(cipher[:-5], ciphertext_len=len(cipher))


def test_dropping_reordering_duplicating_segments_is_refused() -> None:
    segs = segments(encrypt(os.urandom(4 * SMALL + 3)))
    damaged = [
        segs[:1] + segs[2:],
        [segs[1], segs[0], *segs[2:]],
        [*segs[:3], segs[2], *segs[3:]],
        [*segs[:-1], segs[0], segs[-1]],
    ]
    for parts in damaged:
        with pytest.raises(DecryptError):
            decrypt(b"".join(parts))


@pytest.mark.parametrize("extra", [b"\x00", b"x" * TAG_SIZE, b"y" * (SMALL + TAG_SIZE)])
def test_appending_data_is_refused(extra: bytes) -> None:
    cipher = encrypt(os.urandom(SMALL + 3))
    with pytest.raises(DecryptError):
        decrypt(cipher + extra)


def test_segments_from_another_body_are_refused() -> None:
    # Each body has its own content key (seal.new_body_keys); splicing across keys fails.
    first = encrypt(os.urandom(2 * SMALL))
    second = encrypt(os.urandom(2 * SMALL), key=os.urandom(32))
    spliced = segments(first)[:1] + segments(second)[1:]
    with pytest.raises(DecryptError, match="segment 1 failed"):
        decrypt(b"".join(spliced))


def test_decrypt_reads_exactly_the_announced_length() -> None:
    cipher = encrypt(b"abc" * 50)
    src = io.BytesIO(cipher + b"TRAILER")
    out = io.BytesIO()
    decrypt_body(src, out, KEY, nonce_prefix=PREFIX, segment_size=SMALL, ciphertext_len=len(cipher))
    assert out.getvalue() == b"abc" * 50
    assert src.read() == b"TRAILER"


class Trickle(io.RawIOBase):
    """A source that hands out one byte per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(memoryview(buffer)[:1])


def test_short_reads_are_retried() -> None:
    plain = os.urandom(3 * SMALL + 7)
    out = io.BytesIO()
    encrypt_body(Trickle(plain), out, KEY, nonce_prefix=PREFIX, segment_size=SMALL)
    assert out.getvalue() == encrypt(plain)
    back = io.BytesIO()
    decrypt_body(
        Trickle(out.getvalue()),
        back,
        KEY,
        nonce_prefix=PREFIX,
        segment_size=SMALL,
        ciphertext_len=len(out.getvalue()),
    )
    assert back.getvalue() == plain


@pytest.mark.parametrize(
    ("key", "prefix", "segment_size"),
    [(bytes(31), PREFIX, SMALL), (KEY, bytes(8), SMALL), (KEY, PREFIX, 0)],
)
def test_bad_parameters(key: bytes, prefix: bytes, segment_size: int) -> None:
    with pytest.raises(ValueError):
        encrypt_body(
            io.BytesIO(), io.BytesIO(), key, nonce_prefix=prefix, segment_size=segment_size
        )
    # On the decrypting side the parameters come from a message header: not a bug of ours.
    with pytest.raises(DecryptError):
        decrypt_body(
            io.BytesIO(bytes(TAG_SIZE)),
            io.BytesIO(),
            key,
            nonce_prefix=prefix,
            segment_size=segment_size,
            ciphertext_len=TAG_SIZE,
        )


def test_hostile_lengths_are_refused_before_reading() -> None:
    with pytest.raises(DecryptError, match="too short"):
        decrypt(b"", ciphertext_len=TAG_SIZE - 1)
    with pytest.raises(DecryptError, match="2\\*\\*32"):
        decrypt(b"", segment_size=1, ciphertext_len=(1 << 32) * (1 + TAG_SIZE) + 1)
    with pytest.raises(DecryptError, match="segment size"):
        decrypt(b"", segment_size=MAX_SEGMENT_SIZE + 1, ciphertext_len=TAG_SIZE)
    with pytest.raises(ValueError):
        ciphertext_size(-1)


@pytest.mark.parametrize("size", [0, 1, SMALL, 3 * SMALL + 7])
def test_a_body_in_memory_encrypts_like_a_file(size: int) -> None:
    plain = os.urandom(size)
    expected = encrypt(plain)
    for src in (plain, bytearray(plain), memoryview(plain)):
        out = io.BytesIO()
        written = encrypt_body(src, out, KEY, nonce_prefix=PREFIX, segment_size=SMALL)
        assert out.getvalue() == expected and written == len(expected)


def decrypt_into(cipher: bytes, buffer: bytearray) -> int:
    return decrypt_body(
        io.BytesIO(cipher),
        memoryview(buffer),
        KEY,
        nonce_prefix=PREFIX,
        segment_size=SMALL,
        ciphertext_len=len(cipher),
    )


@pytest.mark.parametrize("has_decrypt_into", [True, False])
@pytest.mark.parametrize("size", [0, 1, SMALL, 3 * SMALL + 7])
def test_decrypting_into_a_buffer(
    size: int, has_decrypt_into: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fedbox.crypto.stream._DECRYPT_INTO", has_decrypt_into)
    plain = os.urandom(size)
    buffer = bytearray(size)
    assert decrypt_into(encrypt(plain), buffer) == size
    assert buffer == plain


def test_decrypting_into_a_buffer_too_small_is_refused_before_writing_past_it() -> None:
    cipher = encrypt(os.urandom(2 * SMALL))
    buffer = bytearray(2 * SMALL - 1)
    with pytest.raises(DecryptError, match=f"past the {2 * SMALL - 1} bytes"):
        decrypt_into(cipher, buffer)


def test_a_forged_segment_leaves_no_plaintext_in_the_buffer() -> None:
    plain = b"\x5a" * (2 * SMALL + 5)
    bad = bytearray(encrypt(plain))
    bad[SMALL + TAG_SIZE + 3] ^= 0x01  # in segment 1
    buffer = bytearray(len(plain))
    with pytest.raises(DecryptError, match="segment 1 failed"):
        decrypt_into(bytes(bad), buffer)
    assert buffer[:SMALL] == plain[:SMALL]  # segment 0 had authenticated
    assert buffer[SMALL:] == bytes(len(plain) - SMALL)


def test_decrypting_into_a_read_only_buffer_is_a_bug() -> None:
    with pytest.raises(ValueError, match="writable"):
        decrypt_body(
            io.BytesIO(encrypt(b"x")),
            memoryview(b"x"),
            KEY,
            nonce_prefix=PREFIX,
            segment_size=SMALL,
            ciphertext_len=1 + TAG_SIZE,
        )


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 7])
def test_a_file_of_known_size_encrypts_as_without_it(size: int) -> None:
    plain = os.urandom(size)
    out = io.BytesIO()
    written = encrypt_body(
        io.BytesIO(plain), out, KEY, nonce_prefix=PREFIX, segment_size=SMALL, size=size
    )
    assert out.getvalue() == encrypt(plain) and written == len(out.getvalue())


@pytest.mark.parametrize("size", [0, 10, SMALL - 1, SMALL, 2 * SMALL])
def test_a_file_longer_than_its_announced_size_is_refused(size: int) -> None:
    """A smaller buffer must never pass off a longer body's first bytes as all of it."""
    with pytest.raises(ValueError, match="longer than"):
        encrypt_body(
            io.BytesIO(os.urandom(size + 1)),
            io.BytesIO(),
            KEY,
            nonce_prefix=PREFIX,
            segment_size=SMALL,
            size=size,
        )
