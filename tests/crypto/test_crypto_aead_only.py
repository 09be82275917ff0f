"""Envelope v2 (issue 20): a sealed body may leave ``body_sha256`` empty, and then the
cipher alone vouches for it; v1 headers and non-empty digests are still checked."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from fedbox.crypto import (
    Identity,
    enc_header,
    encrypt_body,
    header_aad,
    new_body_keys,
    open_sealed,
    open_sealed_reader,
    wrap_key,
)
from fedbox.errors import DecryptError

BODY = os.urandom(3 << 20)


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate("alice@example.org")


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate("bob@example.org")


def _sealed(
    alice: Identity, bob: Identity, *, v: int, digest: str
) -> tuple[dict[str, Any], bytearray]:
    """A body sealed for bob whose header (bound by the wrap) says ``v`` and ``digest``,
    whatever the ciphertext really hashes to: what a sender could write."""
    key, prefix = new_body_keys()
    out = io.BytesIO()
    body_len = encrypt_body(BODY, out, key, nonce_prefix=prefix)
    header: dict[str, Any] = {
        "v": v,
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "kind": "request",
        "sender": alice.email,
        "recipient": bob.email,
        "app": "demo",
        "endpoint": "messages",
        "created": 1700000000,
        "expires": 1700086400,
        "status": None,
        "headers": {},
        "body_len": body_len,
        "body_sha256": digest,
    }
    wrap = wrap_key(
        key,
        sender=alice,
        recipient=bob.public_bundle(),
        aad=header_aad(header),
        nonce_prefix=prefix,
    )
    header["enc"] = enc_header(prefix, 1 << 20, [wrap])
    return header, bytearray(out.getvalue())


def _open_whole(bob: Identity, alice: Identity, header: dict, cipher: bytes) -> bytes:
    out = io.BytesIO()
    open_sealed(io.BytesIO(cipher), out, me=bob, sender=alice.public_bundle(), header=header)
    return out.getvalue()


def _open_stream(bob: Identity, alice: Identity, header: dict, cipher: bytes) -> bytes:
    reader = open_sealed_reader(
        io.BytesIO(cipher), me=bob, sender=alice.public_bundle(), header=header
    )
    return reader.read()


OPENERS = pytest.mark.parametrize("opener", [_open_whole, _open_stream], ids=["whole", "stream"])


@OPENERS
def test_a_v2_body_without_digest_opens(alice: Identity, bob: Identity, opener) -> None:
    header, cipher = _sealed(alice, bob, v=2, digest="")
    assert opener(bob, alice, header, bytes(cipher)) == BODY


@OPENERS
def test_a_tampered_v2_body_without_digest_is_refused_by_the_cipher(
    alice: Identity, bob: Identity, opener
) -> None:
    header, cipher = _sealed(alice, bob, v=2, digest="")
    cipher[(1 << 20) + 100] ^= 1
    with pytest.raises(DecryptError, match="segment 1 failed authentication"):
        opener(bob, alice, header, bytes(cipher))


@OPENERS
@pytest.mark.parametrize("v", [1, 2])
def test_a_digest_that_is_given_is_checked(alice: Identity, bob: Identity, opener, v) -> None:
    header, cipher = _sealed(alice, bob, v=v, digest="00" * 32)
    with pytest.raises(DecryptError, match="body_sha256"):
        opener(bob, alice, header, bytes(cipher))


@OPENERS
def test_a_v1_body_needs_its_digest(alice: Identity, bob: Identity, opener) -> None:
    """An empty digest means "the cipher alone" only in v2: a v1 reader never skipped it."""
    header, cipher = _sealed(alice, bob, v=1, digest="")
    with pytest.raises(DecryptError, match="body_sha256"):
        opener(bob, alice, header, bytes(cipher))
