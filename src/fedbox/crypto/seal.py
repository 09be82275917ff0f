"""Encrypting one body for several readers: a content key, wrapped X3DH-style per reader.

A body is encrypted once (``stream``) under a random content key; that key is then
wrapped for each recipient and for the sender, so a broadcast costs one encryption and
the sender can reread what it sent. Each wrap is a one-way X3DH
(https://signal.org/docs/specifications/x3dh/) with an ephemeral key E, the sender's
DH identity key IK_A, the recipient's DH identity key IK_B and signed prekey SPK_B:

    DH1 = DH(IK_A, SPK_B)   authenticates the sender
    DH2 = DH(E, IK_B)       binds the recipient's long-term key
    DH3 = DH(E, SPK_B)      forward secrecy once E is forgotten and the prekey rotated out
    KEK = HKDF-SHA256(salt = 32 zero bytes, ikm = 0xFF*32 || DH1 || DH2 || DH3, info)
    info = "fedbox/wrap/v3" || lp(sender email) || lp(recipient email)
           || lp(sender signing key) || lp(recipient signing key) || lp(prekey id)
           || lp(ephemeral public key) || lp(body nonce prefix) || lp(SHA-256(header AAD))

where lp(x) is x's length as u16 big-endian then x. The ephemeral key is in ``info``
because X25519 ignores its top bit: without it, a wrap with that bit flipped would still
open (as in age, whose X25519 stanza also binds the share). The label names the format
version, so a KEK derived for one version is never used by another. The content key is
sealed with AES-256-GCM under the KEK with a zero nonce, and the header AAD as associated
data: a wrap only opens for the header it was made for.

One E serves a sender for up to :data:`EPHEMERAL_TTL` seconds, every header and reader
alike (v3; in v2 each header drew its own), so DH2 and DH3 are computed once per reader
in that time, by both sides (issue 20: the X25519 operations were an eighth of a round at
a thousand virtual clients). This is multi-recipient DH key encapsulation (Kurosawa 2002;
Bellare, Boldyreva and Staddon 2003) stretched over time: each KEK still needs a
recipient's private keys or E's. What keeps each KEK single-use, and the zero nonce
safe, is the body's fresh random nonce prefix and the header's AAD digest in ``info``.
What it costs: E's private key lives in the sender's memory for up to
:data:`EPHEMERAL_TTL` seconds, so whoever reads that memory meanwhile can open what
the sender sent in that time (as with a TLS session's keys); then it is dropped.

The header AAD binds the ciphertext's length and SHA-256. Every reader of a broadcast
knows the content key and could encrypt another body with it; the digest, checked by
``open_sealed``, stops one reader from passing a forged body to another.

The ``enc`` header field (``enc_header``)::

    {"alg": "aes-256-gcm", "v": 3, "segment_size": 1048576,
     "nonce_prefix": "<base64, 7 bytes>",
     "wraps": [{"to": "bob@x.org", "prekey_id": "<id>",
                "ephemeral": "<base64, 32 bytes>", "wrapped": "<base64, 48 bytes>"}, ...]}

Version 2 is the same but for ``info``, which has the label ``fedbox/wrap/v2`` and ends
with the ephemeral key; it is still read. Version 1 used ChaCha20-Poly1305
(``"alg": "chacha20-poly1305", "v": 1``); any other ``alg`` or ``v`` is refused with a
DecryptError naming both.

Failing closed: recipient bundles are verified before anything is wrapped (CryptoError);
anything wrong while opening is DecryptError, with the ``cryptography`` cause chained.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedbox.crypto._primitives import (
    BackgroundSha256,
    Rng,
    b64decode,
    b64encode,
    length_prefixed,
    random_bytes,
)
from fedbox.crypto.keys import KEY_SIZE, Identity, PublicBundle
from fedbox.crypto.stream import (
    CONTENT_KEY_SIZE,
    MAX_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    DecryptingReader,
    Readable,
    Sink,
    decrypt_body,
    encrypt_body,
)
from fedbox.errors import CryptoError, DecryptError

__all__ = [
    "AAD_FIELDS",
    "ALG",
    "ENC_VERSION",
    "describe_enc",
    "enc_header",
    "find_wrap",
    "header_aad",
    "new_body_keys",
    "open_sealed",
    "open_sealed_reader",
    "seal",
    "unwrap_key",
    "wrap_key",
    "wrap_keys",
]

ALG = "aes-256-gcm"
AEAD_ONLY_ENVELOPE = 2
"""The envelope version (header ``v``) whose sealed bodies may carry an empty
``body_sha256``: then the segments' tags alone authenticate the ciphertext (issue 20).
``v`` is bound by the wraps, so no one can turn an older header into one of these."""
ENC_VERSION = 3
READ_VERSIONS = (2, 3)
"""The ``enc`` versions this fedbox opens; it writes :data:`ENC_VERSION`."""
EPHEMERAL_TTL = 60.0
"""Seconds one ephemeral key serves a sender's wraps (see the module docstring)."""
AAD_FIELDS = (
    "v",
    "id",
    "kind",
    "sender",
    "recipient",
    "app",
    "endpoint",
    "created",
    "expires",
    "status",
    "headers",
    "body_len",
    "body_sha256",
)
"""The envelope header fields a wrap is bound to (``body_*`` describe the ciphertext).

``v`` and the caller's ``headers`` are bound too, so whoever carries the file can read
them but not change them; only ``enc`` itself is outside (each wrap authenticates itself).
"""

_WRAP_INFO_LABELS = {2: b"fedbox/wrap/v2", 3: b"fedbox/wrap/v3"}
_X3DH_PAD = b"\xff" * 32  # X3DH's F: keeps the KDF input distinct from any XEdDSA use
_WRAP_NONCE = bytes(12)
_WRAPPED_SIZE = CONTENT_KEY_SIZE + TAG_SIZE


def header_aad(header: Mapping[str, Any]) -> bytes:
    """Canonical bytes of the ``AAD_FIELDS`` of ``header``: sorted compact UTF-8 JSON.

    A missing field is encoded as null; every other header key is ignored.
    """
    fields = {name: header.get(name) for name in AAD_FIELDS}
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def new_body_keys(rng: Rng | None = None) -> tuple[bytes, bytes]:
    """A fresh ``(content_key, nonce_prefix)`` for one body; never reuse either."""
    return random_bytes(rng, CONTENT_KEY_SIZE), random_bytes(rng, NONCE_PREFIX_SIZE)


def _kek(
    dh1: bytes,
    dh2: bytes,
    dh3: bytes,
    *,
    sender: str,
    recipient: str,
    sender_signing_key: bytes,
    recipient_signing_key: bytes,
    prekey_id: str,
    ephemeral: bytes,
    version: int,
    nonce_prefix: bytes,
    aad: bytes,
) -> bytes:
    fields = [
        _WRAP_INFO_LABELS[version],
        sender.encode(),
        recipient.encode(),
        sender_signing_key,
        recipient_signing_key,
        prekey_id.encode(),
        ephemeral,
    ]
    if version >= 3:
        fields += [nonce_prefix, hashlib.sha256(aad).digest()]
    info = length_prefixed(*fields)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=bytes(32), info=info)
    return hkdf.derive(_X3DH_PAD + dh1 + dh2 + dh3)


class _Ephemeral:
    """A sender's ephemeral key and what it agreed with each reader's keys so far."""

    def __init__(self, rng: Rng | None = None) -> None:
        self.private = X25519PrivateKey.from_private_bytes(random_bytes(rng, KEY_SIZE))
        self.public = self.private.public_key().public_bytes_raw()
        self.born = time.monotonic()
        self._agreed: dict[bytes, bytes] = {}

    def exchange(self, public: bytes) -> bytes:
        secret = self._agreed.get(public)
        if secret is None:
            if len(self._agreed) >= _MAX_AGREED:
                self._agreed.clear()
            secret = self._agreed[public] = self.private.exchange(
                X25519PublicKey.from_public_bytes(public)
            )
        return secret


_MAX_AGREED = 65536
_ephemeral_lock = threading.Lock()
_ephemerals: dict[str, _Ephemeral] = {}
"""Each sender's current ephemeral key, by email (a process may host many senders)."""


def _current_ephemeral(sender: str, rng: Rng | None) -> _Ephemeral:
    """The ephemeral key for a header's wraps: ``sender``'s current one while it is
    younger than :data:`EPHEMERAL_TTL`, else a new one; with ``rng`` (known-answer
    tests), always a new one drawn from it."""
    if rng is not None:
        return _Ephemeral(rng)
    with _ephemeral_lock:
        current = _ephemerals.get(sender)
        if current is None or time.monotonic() - current.born >= EPHEMERAL_TTL:
            current = _ephemerals[sender] = _Ephemeral()
        return current


def _forget_ephemerals() -> None:
    """A forked child draws its own ephemeral keys rather than share its parent's."""
    _ephemerals.clear()


os.register_at_fork(after_in_child=_forget_ephemerals)


@functools.lru_cache(maxsize=32768)
def _agreed(private: X25519PrivateKey, public: bytes) -> bytes:
    """DH between one of our keys and a peer's public key that recurs: DH1 (a long-term
    key and a signed prekey) for every message between two parties, and on the reading
    side DH2 and DH3 for every message under one ephemeral key (a thousand virtual
    clients spent most of a message's asymmetric crypto on them again and again, issue
    20). A low-order point raises ValueError, which is not cached."""
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def wrap_key(
    content_key: bytes,
    *,
    sender: Identity,
    recipient: PublicBundle,
    aad: bytes,
    nonce_prefix: bytes,
    rng: Rng | None = None,
) -> dict[str, str]:
    """Wrap ``content_key`` (of a body encrypted under ``nonce_prefix``) for
    ``recipient``'s current prekey, bound to ``aad``.

    Raises CryptoError if the recipient's signatures do not verify; with ``rng``, the
    ephemeral private key is the next 32 bytes it gives.
    """
    (wrap,) = wrap_keys(
        content_key,
        sender=sender,
        recipients=[recipient],
        aad=aad,
        nonce_prefix=nonce_prefix,
        rng=rng,
    )
    return wrap


def wrap_keys(
    content_key: bytes,
    *,
    sender: Identity,
    recipients: Sequence[PublicBundle],
    aad: bytes,
    nonce_prefix: bytes,
    rng: Rng | None = None,
) -> list[dict[str, str]]:
    """:func:`wrap_key` for each of ``recipients``, under the sender's current ephemeral
    key (see the module docstring). Raises CryptoError before wrapping anything if a
    bundle does not verify."""
    if len(content_key) != CONTENT_KEY_SIZE:
        raise ValueError(f"content key must be {CONTENT_KEY_SIZE} bytes")
    if len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
    for recipient in recipients:
        recipient.verify()
    ephemeral = _current_ephemeral(sender.email, rng)
    return [
        _wrap(content_key, sender, recipient, aad, ephemeral, nonce_prefix)
        for recipient in recipients
    ]


def _wrap(
    content_key: bytes,
    sender: Identity,
    recipient: PublicBundle,
    aad: bytes,
    ephemeral: _Ephemeral,
    nonce_prefix: bytes,
) -> dict[str, str]:
    try:
        dh1 = _agreed(sender.dh_identity_key, recipient.prekey)
        dh2 = ephemeral.exchange(recipient.dh_identity_key)
        dh3 = ephemeral.exchange(recipient.prekey)
    except ValueError as exc:  # a low-order point gives an all-zero secret
        raise CryptoError(f"{recipient.email}: unusable X25519 public key") from exc
    kek = _kek(
        dh1,
        dh2,
        dh3,
        sender=sender.email,
        recipient=recipient.email,
        sender_signing_key=sender.signing_key.public_key().public_bytes_raw(),
        recipient_signing_key=recipient.signing_key,
        prekey_id=recipient.prekey_id,
        ephemeral=ephemeral.public,
        version=ENC_VERSION,
        nonce_prefix=nonce_prefix,
        aad=aad,
    )
    return {
        "to": recipient.email,
        "prekey_id": recipient.prekey_id,
        "ephemeral": b64encode(ephemeral.public),
        "wrapped": b64encode(AESGCM(kek).encrypt(_WRAP_NONCE, content_key, aad)),
    }


def unwrap_key(
    wrap: Mapping[str, Any],
    *,
    me: Identity,
    sender: PublicBundle,
    aad: bytes,
    nonce_prefix: bytes,
    version: int = ENC_VERSION,
) -> bytes:
    """The content key in ``wrap`` (from an ``enc`` of ``version``, whose body is
    encrypted under ``nonce_prefix``), or DecryptError.

    Refused: a wrap for someone else, a prekey this identity no longer holds, a sender
    bundle whose signatures fail, and any change to the wrap or to the header AAD.
    """
    if not isinstance(wrap, Mapping) or wrap.get("to") != me.email:
        to = wrap.get("to") if isinstance(wrap, Mapping) else None
        raise DecryptError(f"key wrap is for {to!r}, not {me.email}")
    if version not in READ_VERSIONS:
        raise DecryptError(_unsupported(ALG, version))
    prekey_id = wrap.get("prekey_id")
    if not isinstance(prekey_id, str) or (prekey := me.prekey(prekey_id)) is None:
        raise DecryptError(
            f"key wrap uses prekey {prekey_id!r}, which {me.email} does not hold "
            f"(held: {', '.join(me.prekey_ids)}); it may have been rotated out"
        )
    try:
        sender.verify()
        ephemeral_key = b64decode(wrap.get("ephemeral"), "key wrap ephemeral", KEY_SIZE)
        wrapped = b64decode(wrap.get("wrapped"), "wrapped key", _WRAPPED_SIZE)
        dh1 = _agreed(prekey, sender.dh_identity_key)
        dh2 = _agreed(me.dh_identity_key, ephemeral_key)
        dh3 = _agreed(prekey, ephemeral_key)
        kek = _kek(
            dh1,
            dh2,
            dh3,
            sender=sender.email,
            recipient=me.email,
            sender_signing_key=sender.signing_key,
            recipient_signing_key=me.signing_key.public_key().public_bytes_raw(),
            prekey_id=prekey_id,
            ephemeral=ephemeral_key,
            version=version,
            nonce_prefix=nonce_prefix,
            aad=aad,
        )
        return AESGCM(kek).decrypt(_WRAP_NONCE, wrapped, aad)
    except CryptoError as exc:
        raise DecryptError(f"cannot unwrap key from {sender.email}: {exc}") from exc
    except ValueError as exc:
        raise DecryptError(f"malformed key wrap from {sender.email}: {exc}") from exc
    except InvalidTag as exc:
        raise DecryptError(
            f"key wrap from {sender.email} failed authentication: tampered wrap or header, "
            "or not made by this sender"
        ) from exc


def enc_header(
    nonce_prefix: bytes, segment_size: int, wraps: list[dict[str, str]]
) -> dict[str, Any]:
    """The ``enc`` value of an envelope header (format in the module docstring)."""
    return {
        "alg": ALG,
        "v": ENC_VERSION,
        "segment_size": segment_size,
        "nonce_prefix": b64encode(nonce_prefix),
        "wraps": wraps,
    }


def _parse_enc(enc: object) -> tuple[bytes, int, list[Mapping[str, Any]], int]:
    """``(nonce_prefix, segment_size, wraps, version)`` of an ``enc`` header, or
    DecryptError."""
    if not isinstance(enc, Mapping):
        raise DecryptError("the message is not encrypted (no enc header)")
    alg, version = enc.get("alg"), enc.get("v")
    if alg != ALG or type(version) is not int or version not in READ_VERSIONS:
        raise DecryptError(_unsupported(alg, version))
    size = enc.get("segment_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SEGMENT_SIZE:
        raise DecryptError(f"enc segment_size {size!r} is out of range")
    try:
        nonce_prefix = b64decode(enc.get("nonce_prefix"), "enc nonce_prefix", NONCE_PREFIX_SIZE)
    except ValueError as exc:
        raise DecryptError(str(exc)) from exc
    wraps = enc.get("wraps")
    if not isinstance(wraps, list) or not all(
        isinstance(w, Mapping) and isinstance(w.get("to"), str) for w in wraps
    ):
        raise DecryptError("enc wraps must be a list of objects with a 'to' email")
    recipients = [w["to"] for w in wraps]
    if len(set(recipients)) != len(recipients):
        raise DecryptError("enc wraps name the same reader twice")
    return nonce_prefix, size, wraps, version


def _unsupported(alg: object, version: object) -> str:
    """Why an ``enc`` of another algorithm or version is refused, and who should upgrade."""
    problem = (
        f"unsupported encryption {alg!r} v{version!r} (this fedbox reads {ALG} "
        f"v{' and v'.join(map(str, READ_VERSIONS))})"
    )
    if type(version) is int and version > ENC_VERSION:
        return f"{problem}: written by a newer fedbox; upgrade fedbox to read it"
    if type(version) is int and 1 <= version < min(READ_VERSIONS):
        return f"{problem}: written by an older fedbox; the sender must upgrade and resend"
    return problem


def find_wrap(enc: Mapping[str, Any], email: str) -> Mapping[str, Any]:
    """The wrap for ``email`` in ``enc``; DecryptError if malformed or not for them."""
    _, _, wraps, _ = _parse_enc(enc)
    for wrap in wraps:
        if wrap["to"] == email:
            return wrap
    readers = ", ".join(w["to"] for w in wraps) or "nobody"
    raise DecryptError(f"the message is not encrypted for {email} (readers: {readers})")


def describe_enc(enc: Mapping[str, Any] | None) -> str:
    """One line for ``fedbox inspect``; never raises on a malformed header."""
    if enc is None:
        return "not encrypted"
    try:
        _, size, wraps, _ = _parse_enc(enc)
    except DecryptError as exc:
        return f"encrypted (unreadable enc header: {exc})"
    units = ((1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B"))
    unit, name = next((unit, name) for unit, name in units if size % unit == 0)
    readers = ", ".join(w["to"] for w in wraps) or "nobody"
    return f"encrypted ({ALG}, {size // unit} {name} segments) for {readers}"


def seal(
    src: Readable,
    dst: Sink,
    *,
    sender: Identity,
    recipients: Sequence[PublicBundle],
    header: MutableMapping[str, Any],
    segment_size: int = SEGMENT_SIZE,
    rng: Rng | None = None,
) -> dict[str, Any]:
    """Encrypt ``src`` into ``dst`` for ``recipients`` and the sender; return ``enc``.

    Order: (1) every recipient bundle is verified, before anything is written (fail
    closed: CryptoError); (2) the body is encrypted; (3) ``header["body_len"]`` and
    ``header["body_sha256"]`` (hex) are set to the ciphertext's; (4) the content key is
    wrapped for each recipient, then the sender, bound to ``header_aad(header)``. The
    caller stores the result as ``header["enc"]`` and must not change the AAD fields after.
    """
    readers: dict[str, PublicBundle] = {}
    for bundle in [*recipients, sender.public_bundle()]:
        known = readers.setdefault(bundle.email, bundle)
        if known.signing_key != bundle.signing_key:
            raise ValueError(f"two different identity keys given for {bundle.email}")
    for bundle in readers.values():
        bundle.verify()
    content_key, nonce_prefix = new_body_keys(rng)
    out = _HashingWriter(dst)
    header["body_len"] = encrypt_body(
        src, out, content_key, nonce_prefix=nonce_prefix, segment_size=segment_size
    )
    header["body_sha256"] = out.digest.hexdigest()
    wraps = wrap_keys(
        content_key,
        sender=sender,
        recipients=list(readers.values()),
        aad=header_aad(header),
        nonce_prefix=nonce_prefix,
        rng=rng,
    )
    return enc_header(nonce_prefix, segment_size, wraps)


def open_sealed(
    src: Readable,
    dst: Sink | memoryview,
    *,
    me: Identity,
    sender: PublicBundle,
    header: Mapping[str, Any],
) -> int:
    """Decrypt a body sealed for ``me`` by ``sender`` (the bundle of ``header["sender"]``)
    into ``dst`` (a file, or a memoryview as ``decrypt_body`` takes); return its size.

    Reads exactly ``header["body_len"]`` bytes from ``src``. Raises DecryptError (with
    ``.message_id``) if anything fails, including a ciphertext whose SHA-256 differs from
    ``header["body_sha256"]`` (unless an envelope v2 header leaves it empty); that is only
    known at the end, so as with ``decrypt_body``, ``dst`` must be discarded unless this
    returns.
    """
    with _about(header.get("id")):
        content_key, nonce_prefix, segment_size, expected = _unwrap_for(me, sender, header)
        body_len = _body_len(header)
        reader = _HashingReader(src, body_len) if expected is not None else None
        size = decrypt_body(
            reader or src,
            dst,
            content_key,
            nonce_prefix=nonce_prefix,
            segment_size=segment_size,
            ciphertext_len=body_len,
        )
        if reader is not None and not hmac.compare_digest(reader.digest.hexdigest(), str(expected)):
            raise DecryptError("body SHA-256 differs from the header's body_sha256")
        return size


def open_sealed_reader(
    src: Readable,
    *,
    me: Identity,
    sender: PublicBundle,
    header: Mapping[str, Any],
) -> DecryptingReader:
    """``open_sealed`` as a stream: the body sealed for ``me`` by ``sender``, decrypted
    segment by segment as it is read from ``src`` (see ``DecryptingReader``: the body's
    length, final segment and ``body_sha256`` are checked when its last byte is read).
    Its first segment is authenticated here. Raises DecryptError (with ``.message_id``).
    """
    with _about(header.get("id")):
        content_key, nonce_prefix, segment_size, expected = _unwrap_for(me, sender, header)
        reader = DecryptingReader(
            src,
            content_key,
            nonce_prefix=nonce_prefix,
            segment_size=segment_size,
            ciphertext_len=_body_len(header),
            sha256=expected,
        )
        try:
            reader.prime()
        except BaseException:
            reader.close()
            raise
        return reader


def _unwrap_for(
    me: Identity, sender: PublicBundle, header: Mapping[str, Any]
) -> tuple[bytes, bytes, int, str | None]:
    """The checks both ways of opening share: sender matches its key, a wrap for ``me``
    unwraps under the header's AAD; returns (content key, nonce prefix, segment size,
    expected ciphertext SHA-256, or None when the cipher alone vouches for it)."""
    if header.get("sender") != sender.email:
        raise DecryptError(
            f"header sender {header.get('sender')!r} does not match key of {sender.email}"
        )
    nonce_prefix, segment_size, _, version = _parse_enc(header.get("enc"))
    wrap = find_wrap(header["enc"], me.email)
    content_key = unwrap_key(
        wrap,
        me=me,
        sender=sender,
        aad=header_aad(header),
        nonce_prefix=nonce_prefix,
        version=version,
    )
    expected = header.get("body_sha256")
    if not isinstance(expected, str):
        raise DecryptError("header body_sha256 is missing")
    if not expected and header.get("v") == AEAD_ONLY_ENVELOPE:
        return content_key, nonce_prefix, segment_size, None
    return content_key, nonce_prefix, segment_size, expected


def _body_len(header: Mapping[str, Any]) -> int:
    """The header's ``body_len``; a header without one (the AAD covers it) cannot open."""
    body_len = header.get("body_len")
    if not isinstance(body_len, int):
        raise DecryptError(f"header body_len {body_len!r} is not a length")
    return body_len


@contextmanager
def _about(message_id: object) -> Iterator[None]:
    """Attach the message id to crypto errors raised below (httpx's request_context)."""
    try:
        yield
    except CryptoError as exc:
        if exc.message_id is None and isinstance(message_id, str):
            exc.message_id = message_id
        raise


class _HashingWriter:
    """Passes writes through to ``dst`` and hashes them on a helper thread.

    ``encrypt_body`` writes each segment as a new bytes object, so it can be hashed while
    the next one is encrypted.
    """

    def __init__(self, dst: Sink) -> None:
        self._dst = dst
        self.digest = BackgroundSha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._dst.write(data)


class _HashingReader:
    """Passes ``readinto`` through to ``src`` and hashes what was read on a helper thread.

    The caller reuses its buffer, so each read first waits for the previous hash.
    """

    def __init__(self, src: Readable, total: int | None) -> None:
        self._src = src
        self.digest = BackgroundSha256(total)

    def readinto(self, view: memoryview) -> int:
        self.digest.wait()
        n = self._src.readinto(view)
        if n:
            self.digest.update(view[:n])
        return n
