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
import threading
import weakref
from collections.abc import Callable
from typing import Any

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
    overlaps with encrypting or decrypting the next: on two cores a body then costs about
    max(hash, AEAD), not their sum.

    The handover matters: ``hashlib`` releases the GIL while it hashes, but the AEAD in
    ``cryptography`` does not, and the helper needs the GIL to pick up its work. Left to
    the scheduler, it would get it only when the caller next blocks (usually waiting for
    this very hash), and the two would run one after the other. So ``update`` returns
    only once the helper has started: the caller blocks briefly, the helper takes the
    GIL, enters ``hashlib`` and releases it again. The helper is a bare thread driven by
    three locks, not an executor: a handover per 1 MiB segment must cost microseconds.

    ``update(data)`` returns without waiting for the hash; ``data`` must stay unchanged
    until the next call to ``update``, ``wait`` or ``hexdigest``, each of which first
    waits for the previous update (so updates apply in order). Short updates are hashed
    inline, and so is the first unless ``total`` (the bytes that will be hashed, if known)
    says more follow: a one-segment body never starts the helper thread. Fed by one
    thread at a time; the helper stops on ``close``/``hexdigest`` or when this object is
    garbage collected.
    """

    __slots__ = ("__weakref__", "_hash", "_helper", "_total", "_updates")

    def __init__(self, total: int | None = None) -> None:
        self._hash = hashlib.sha256()
        self._helper: _HashHelper | None = None
        self._total = total
        self._updates = 0

    def update(self, data: bytes | memoryview) -> None:
        self.wait()
        self._updates += 1
        alone = self._updates == 1 and (self._total is None or self._total <= len(data))
        if alone or len(data) < _INLINE_HASH:
            self._hash.update(data)
            return
        if self._helper is None:
            try:
                self._helper = _HashHelper(self._hash)
            except RuntimeError:  # the interpreter is shutting down: no new threads
                self._hash.update(data)
                return
            weakref.finalize(self, self._helper.stop, join=False)
        self._helper.submit(data)

    def wait(self) -> None:
        """Block until every update so far is hashed."""
        if self._helper is not None:
            self._helper.wait()

    def hexdigest(self) -> str:
        self.wait()
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the helper thread (after the update in progress); idempotent."""
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.stop(join=True)


class _HashHelper:
    """The thread behind one BackgroundSha256. It holds the hash object, never its owner,
    so an owner dropped without ``close`` (an exception mid-body) is still collected, and
    its finalizer stops the thread."""

    __slots__ = (
        "_busy",
        "_data",
        "_done",
        "_error",
        "_go",
        "_hash",
        "_started",
        "_stopping",
        "_thread",
    )

    def __init__(self, digest: Any) -> None:
        self._hash = digest
        self._data: Any = None
        self._busy = False
        self._stopping = False
        self._error: BaseException | None = None
        # Each lock starts held and is released by the other side: go (caller -> helper:
        # data is ready, None to stop), started (helper -> caller: it has the data),
        # done (helper -> caller: hashed).
        self._go, self._started, self._done = threading.Lock(), threading.Lock(), threading.Lock()
        for lock in (self._go, self._started, self._done):
            lock.acquire()
        self._thread = threading.Thread(target=self._run, name="fedbox-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._go.acquire()
            data, self._data = self._data, None
            self._started.release()
            if data is None:
                return
            try:
                self._hash.update(data)
            except BaseException as exc:  # handed to the caller by wait()
                self._error = exc
            del data
            self._done.release()

    def submit(self, data: bytes | memoryview) -> None:
        """Hand ``data`` over (after ``wait``) and return once the helper has taken it."""
        self._data = data
        self._busy = True
        self._go.release()
        self._started.acquire()  # blocks, GIL released, until the helper is hashing

    def wait(self) -> None:
        """Wait for the submitted update, if it is unfinished; re-raise its error."""
        if self._busy:
            self._done.acquire()
            self._busy = False
            error, self._error = self._error, None
            if error is not None:
                raise error

    def stop(self, *, join: bool) -> None:
        """End the thread once the update in progress is hashed; idempotent, and without
        ``join`` it never blocks (it runs as a finalizer, possibly on any thread)."""
        if not self._stopping:
            self._stopping = True
            self._data = None
            self._go.release()
        if join:
            self._thread.join()
