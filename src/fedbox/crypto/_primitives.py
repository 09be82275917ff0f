"""Encodings and randomness shared by the crypto modules (not API: no stability promise).

Everything here is strict on input, because its input comes from files other people wrote:
base64 must be canonical standard base64, multibase must be base58btc with the expected
multicodec prefix, and injected randomness must return exactly the bytes asked for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

Rng = Callable[[int], bytes]
"""Source of randomness: ``rng(n)`` returns ``n`` bytes. ``os.urandom`` unless injected."""

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
# Multibase strings are short (a prefix and a 32-byte key); refusing long ones keeps the
# quadratic base58 decoding away from hostile documents.
_MAX_MULTIBASE_CHARS = 128


def random_bytes(rng: Rng | None, n: int) -> bytes:
    """``n`` bytes from ``rng`` (default ``os.urandom``); a wrong-sized answer is a bug."""
    data = (rng or os.urandom)(n)
    if not isinstance(data, bytes) or len(data) != n:
        raise ValueError(f"rng must return {n} bytes, got {data!r:.40}")
    return data


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str, size: int | None = None) -> bytes:
    """Decode canonical standard base64, or raise ValueError naming ``what``."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if b64encode(data) != text:
        raise ValueError(f"{what} is not canonical base64")
    if size is not None and len(data) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(data)}")
    return data


def length_prefixed(label: bytes, *parts: bytes) -> bytes:
    """``label`` then each part as u16 big-endian length || bytes: unambiguous to split."""
    out = bytearray(label)
    for part in parts:
        if len(part) > 0xFFFF:
            raise ValueError("length-prefixed part longer than 65535 bytes")
        out += len(part).to_bytes(2, "big") + part
    return bytes(out)


def multibase_encode(codec: bytes, key: bytes) -> str:
    """``z`` + base58btc(multicodec prefix || key), as Ed25519/X25519 ...Key2020 use."""
    data = codec + key
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_B58[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "z" + "1" * zeros + "".join(reversed(digits))


def multibase_decode(text: object, codec: bytes, size: int, what: str) -> bytes:
    """The key inside a ``z``-multibase string, or ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.startswith("z"):
        raise ValueError(f"{what} must be a base58btc multibase string starting with 'z'")
    body = text[1:]
    if len(body) > _MAX_MULTIBASE_CHARS or any(c not in _B58_INDEX for c in body):
        raise ValueError(f"{what} is not valid base58btc")
    number = 0
    for c in body:
        number = number * 58 + _B58_INDEX[c]
    zeros = len(body) - len(body.lstrip("1"))
    data = b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
    if not data.startswith(codec) or len(data) != len(codec) + size:
        raise ValueError(f"{what} is not a {size}-byte key with multicodec prefix {codec.hex()}")
    return data[len(codec) :]


_INLINE_HASH = 1 << 16  # below this, a thread hop costs more than the hashing


class BackgroundSha256:
    """SHA-256 fed by one thread and computed on another, so that hashing one body segment
    overlaps with encrypting or decrypting the next: the AEAD holds the GIL, ``hashlib``
    releases it, and on two cores a body then costs about max(hash, AEAD), not their sum.

    ``update(data)`` returns at once; ``data`` must stay unchanged until the next call to
    ``update``, ``wait`` or ``hexdigest``, each of which first waits for the previous
    update (so updates apply in order). The first update and short ones are hashed inline:
    a one-segment body never starts the helper thread.
    """

    __slots__ = ("_hash", "_pending", "_pool", "_updates")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._updates = 0

    def update(self, data: bytes | memoryview) -> None:
        self.wait()
        self._updates += 1
        if self._updates == 1 or len(data) < _INLINE_HASH:
            self._hash.update(data)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fedbox-sha256")
        try:
            self._pending = self._pool.submit(self._hash.update, data)
        except RuntimeError:  # the interpreter is shutting down: no new threads
            self._hash.update(data)

    def wait(self) -> None:
        """Block until every update so far is hashed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def hexdigest(self) -> str:
        self.wait()
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the helper thread (after the update in progress); idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
