"""Sealing bodies for several readers: who can open them, and what tampering is caught."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import importlib
import io
import json
import os
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedbox.crypto import (
    AAD_FIELDS,
    Identity,
    PublicBundle,
    describe_enc,
    encrypt_body,
    find_wrap,
    header_aad,
    new_body_keys,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from fedbox.errors import CryptoError, DecryptError

SMALL = 64
MESSAGE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate("alice@example.org")


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate("bob@example.org")


@pytest.fixture(scope="module")
def carol() -> Identity:
    return Identity.generate("carol@example.org")


def make_header(recipient: str = "bob@example.org") -> dict[str, Any]:
    return {
        "v": 1,
        "id": MESSAGE_ID,
        "kind": "request",
        "sender": "alice@example.org",
        "recipient": recipient,
        "app": "demo",
        "endpoint": "messages",
        "created": 1700000000,
        "expires": 1700086400,
        "status": None,
        "headers": {},
    }


def do_seal(
    sender: Identity, recipients: list[Identity], body: bytes, **kwargs: Any
) -> tuple[dict[str, Any], bytes]:
    header = {**make_header(recipients[0].email), "sender": sender.email}
    out = io.BytesIO()
    header["enc"] = seal(
        io.BytesIO(body),
        out,
        sender=sender,
        recipients=[r.public_bundle() for r in recipients],
        header=header,
        segment_size=kwargs.pop("segment_size", SMALL),
        **kwargs,
    )
    return header, out.getvalue()


def do_open(
    header: dict[str, Any], cipher: bytes, me: Identity, sender: PublicBundle | Identity
) -> bytes:
    if isinstance(sender, Identity):
        sender = sender.public_bundle()
    out = io.BytesIO()
    open_sealed(io.BytesIO(cipher), out, me=me, sender=sender, header=header)
    return out.getvalue()


def test_header_aad_is_canonical_and_covers_exactly_its_fields() -> None:
    header = make_header()
    aad = header_aad(header)
    decoded = json.loads(aad)
    assert list(decoded) == sorted(AAD_FIELDS)
    assert decoded["body_len"] is None and decoded["status"] is None
    assert b" " not in aad
    assert header_aad({**header, "enc": {}, "unknown": 1}) == aad
    assert header_aad({**header, "headers": {"x": "y"}}) != aad
    assert decoded["v"] == 1 and decoded["headers"] == {}
    assert header_aad(dict(reversed(list(header.items())))) == aad
    with pytest.raises(ValueError):
        header_aad({"created": float("nan")})


@pytest.mark.parametrize("size", [0, 1, SMALL, 10 * SMALL + 3])
def test_recipient_and_sender_can_open(alice: Identity, bob: Identity, size: int) -> None:
    body = os.urandom(size)
    header, cipher = do_seal(alice, [bob], body)
    assert header["body_len"] == len(cipher)
    assert [w["to"] for w in header["enc"]["wraps"]] == [bob.email, alice.email]
    assert do_open(header, cipher, bob, alice) == body
    assert do_open(header, cipher, alice, alice) == body


def test_several_recipients_share_one_encryption(
    alice: Identity, bob: Identity, carol: Identity
) -> None:
    header, cipher = do_seal(alice, [bob, carol, alice], b"broadcast")
    assert [w["to"] for w in header["enc"]["wraps"]] == [bob.email, carol.email, alice.email]
    for me in (alice, bob, carol):
        assert do_open(header, cipher, me, alice) == b"broadcast"


def test_a_third_identity_cannot_open(alice: Identity, bob: Identity, carol: Identity) -> None:
    header, cipher = do_seal(alice, [bob], b"private")
    with pytest.raises(DecryptError, match="not encrypted for carol") as info:
        do_open(header, cipher, carol, alice)
    assert info.value.message_id == MESSAGE_ID
    # Even with bob's wrap relabelled for her, the key agreement does not work out.
    relabelled = copy.deepcopy(header)
    relabelled["enc"]["wraps"][0]["to"] = carol.email
    relabelled["enc"]["wraps"][0]["prekey_id"] = carol.prekey_id
    with pytest.raises(DecryptError, match="failed authentication"):
        do_open(relabelled, cipher, carol, alice)


def test_unwrap_refuses_a_wrap_for_someone_else(alice: Identity, bob: Identity) -> None:
    prefix = bytes(7)
    wrap = wrap_key(
        bytes(32), sender=alice, recipient=bob.public_bundle(), aad=b"aad", nonce_prefix=prefix
    )
    sender = alice.public_bundle()
    with pytest.raises(DecryptError, match=re.escape("for 'bob@example.org', not alice")):
        unwrap_key(wrap, me=alice, sender=sender, aad=b"aad", nonce_prefix=prefix)
    with pytest.raises(DecryptError, match="for None"):
        unwrap_key("junk", me=bob, sender=sender, aad=b"aad", nonce_prefix=prefix)  # type: ignore[arg-type]
    assert unwrap_key(wrap, me=bob, sender=sender, aad=b"aad", nonce_prefix=prefix) == bytes(32)


@pytest.mark.parametrize("field", AAD_FIELDS)
def test_changing_any_bound_header_field_is_refused(
    alice: Identity, bob: Identity, field: str
) -> None:
    header, cipher = do_seal(alice, [bob], b"payload")
    tampered = copy.deepcopy(header)
    value = tampered.get(field)
    tampered[field] = value + 1 if isinstance(value, int) else f"{value}x"
    with pytest.raises(DecryptError):
        do_open(tampered, cipher, bob, alice)
    if value is not None:  # a missing field reads as null, so only a set one can vanish
        del tampered[field]
        with pytest.raises(DecryptError):
            do_open(tampered, cipher, bob, alice)


@pytest.mark.parametrize("part", ["ephemeral", "wrapped"])
def test_every_flipped_byte_of_the_wrap_is_refused(
    alice: Identity, bob: Identity, part: str
) -> None:
    header, cipher = do_seal(alice, [bob], b"payload")
    raw = base64.b64decode(header["enc"]["wraps"][0][part])
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x80
        tampered = copy.deepcopy(header)
        tampered["enc"]["wraps"][0][part] = base64.b64encode(bytes(flipped)).decode()
        with pytest.raises(DecryptError):
            do_open(tampered, cipher, bob, alice)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("ephemeral", "AAAA", "must be 32 bytes"),
        ("ephemeral", None, "base64 string"),
        ("wrapped", "not base64!", "not valid base64"),
        ("prekey_id", "0123456789abcdef", "does not hold"),
        ("prekey_id", 7, "does not hold"),
    ],
)
def test_malformed_wraps_are_refused(
    alice: Identity, bob: Identity, key: str, value: Any, reason: str
) -> None:
    header, cipher = do_seal(alice, [bob], b"payload")
    header["enc"]["wraps"][0][key] = value
    with pytest.raises(DecryptError, match=reason):
        do_open(header, cipher, bob, alice)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("alg", "chacha20-poly1305", "unsupported encryption"),
        ("alg", None, "unsupported encryption"),
        ("v", 1, "older fedbox; the sender must upgrade"),
        ("v", 4, "newer fedbox; upgrade fedbox"),
        ("v", 2, "failed authentication"),  # a v3 wrap read as v2 derives another KEK
        ("v", 2.0, "unsupported encryption"),
        ("v", "2", "unsupported encryption"),
        ("v", None, "unsupported encryption"),
        ("segment_size", SMALL + 1, "segment 0 failed"),
        ("segment_size", 0, "out of range"),
        ("segment_size", True, "out of range"),
        ("nonce_prefix", base64.b64encode(bytes(7)).decode(), "failed authentication"),
        ("nonce_prefix", "AAAA", "must be 7 bytes"),
        ("wraps", "bob", "must be a list"),
    ],
)
def test_tampered_enc_headers_are_refused(
    alice: Identity, bob: Identity, key: str, value: Any, reason: str
) -> None:
    header, cipher = do_seal(alice, [bob], os.urandom(3 * SMALL))
    header["enc"][key] = value
    with pytest.raises(DecryptError, match=reason):
        do_open(header, cipher, bob, alice)


def test_duplicate_wraps_for_one_reader_are_refused(alice: Identity, bob: Identity) -> None:
    header, cipher = do_seal(alice, [bob], b"x")
    header["enc"]["wraps"].append(header["enc"]["wraps"][0])
    with pytest.raises(DecryptError, match="same reader twice"):
        do_open(header, cipher, bob, alice)


def test_every_flipped_body_byte_is_refused(alice: Identity, bob: Identity) -> None:
    header, cipher = do_seal(alice, [bob], os.urandom(2 * SMALL + 5))
    for i in range(len(cipher)):
        bad = bytearray(cipher)
        bad[i] ^= 0x01
        with pytest.raises(DecryptError):
            do_open(header, bytes(bad), bob, alice)


def test_a_truncated_body_is_refused(alice: Identity, bob: Identity) -> None:
    header, cipher = do_seal(alice, [bob], os.urandom(2 * SMALL + 5))
    with pytest.raises(DecryptError, match="truncated"):
        do_open(header, cipher[:-1], bob, alice)


def test_a_co_recipient_cannot_forge_a_body_for_another(
    alice: Identity, bob: Identity, carol: Identity
) -> None:
    header, cipher = do_seal(alice, [bob, carol], b"the real orders")
    assert do_open(header, cipher, carol, alice) == b"the real orders"
    # Bob learns the content key, as every reader does, and re-encrypts a body of his own.
    content_key = unwrap_key(
        find_wrap(header["enc"], bob.email),
        me=bob,
        sender=alice.public_bundle(),
        aad=header_aad(header),
        nonce_prefix=base64.b64decode(header["enc"]["nonce_prefix"]),
    )
    forged = io.BytesIO()
    encrypt_body(
        io.BytesIO(b"the fake orders"),
        forged,
        content_key,
        nonce_prefix=base64.b64decode(header["enc"]["nonce_prefix"]),
        segment_size=SMALL,
    )
    assert len(forged.getvalue()) == header["body_len"]
    with pytest.raises(DecryptError, match="body_sha256"):
        do_open(header, forged.getvalue(), carol, alice)
    # Fixing up the digest in the header breaks Carol's wrap instead.
    header["body_sha256"] = hashlib.sha256(forged.getvalue()).hexdigest()
    with pytest.raises(DecryptError, match="failed authentication"):
        do_open(header, forged.getvalue(), carol, alice)


def test_the_wrong_sender_key_is_refused(alice: Identity, bob: Identity) -> None:
    header, cipher = do_seal(alice, [bob], b"payload")
    impostor = Identity.generate(alice.email)  # same email, other keys
    with pytest.raises(DecryptError, match="failed authentication"):
        do_open(header, cipher, bob, impostor)
    with pytest.raises(DecryptError, match="does not match key of bob"):
        do_open(header, cipher, bob, bob)
    forged = dataclasses.replace(alice.public_bundle(), prekey=impostor.public_bundle().prekey)
    with pytest.raises(DecryptError, match="bad signature"):
        do_open(header, cipher, bob, forged)


def test_a_badly_signed_recipient_is_refused_before_anything_is_written(
    alice: Identity, bob: Identity
) -> None:
    other = Identity.generate(bob.email).public_bundle()
    forged = dataclasses.replace(bob.public_bundle(), prekey=other.prekey)
    out = io.BytesIO()
    header = make_header()
    with pytest.raises(CryptoError, match="bad signature"):
        seal(io.BytesIO(b"x"), out, sender=alice, recipients=[forged], header=header)
    assert out.getvalue() == b"" and "body_len" not in header
    with pytest.raises(CryptoError, match="bad signature"):
        wrap_key(bytes(32), sender=alice, recipient=forged, aad=b"", nonce_prefix=bytes(7))


def test_a_low_order_recipient_key_is_refused(alice: Identity) -> None:
    mallory = Identity.generate("mallory@example.org")
    good = mallory.public_bundle()
    zero = bytes(32)  # the identity point: every DH with it is all zeros
    from fedbox.crypto.keys import _prekey_message

    bundle = dataclasses.replace(
        good,
        prekey=zero,
        prekey_sig=mallory.signing_key.sign(_prekey_message(good.email, good.prekey_id, zero)),
    )
    with pytest.raises(CryptoError, match="unusable X25519"):
        wrap_key(bytes(32), sender=alice, recipient=bundle, aad=b"", nonce_prefix=bytes(7))


def test_two_different_keys_for_one_recipient_is_a_bug(alice: Identity, bob: Identity) -> None:
    other = Identity.generate(bob.email).public_bundle()
    with pytest.raises(ValueError, match="two different identity keys"):
        seal(
            io.BytesIO(),
            io.BytesIO(),
            sender=alice,
            recipients=[bob.public_bundle(), other],
            header=make_header(),
        )


def test_wraps_to_a_rotated_prekey_still_open(alice: Identity) -> None:
    bob = Identity.generate("bob@example.org")
    header, cipher = do_seal(alice, [bob], b"in flight")
    old = bob.prekey_id
    bob.rotate_prekey(retain=1)
    assert do_open(header, cipher, bob, alice) == b"in flight"
    new_header, new_cipher = do_seal(alice, [bob], b"after")
    assert new_header["enc"]["wraps"][0]["prekey_id"] == bob.prekey_id != old
    bob.rotate_prekey(retain=1)
    assert do_open(new_header, new_cipher, bob, alice) == b"after"
    with pytest.raises(DecryptError, match="rotated out"):
        do_open(header, cipher, bob, alice)


def test_key_agreements_kept_between_messages_never_cross_parties(
    alice: Identity, bob: Identity, carol: Identity
) -> None:
    """Sealing keeps each pair's identity-to-prekey agreement; it must stay that pair's."""
    for round_ in range(2):  # the second round runs on what the first one kept
        for sender, to in ((alice, bob), (carol, bob), (bob, alice), (bob, carol)):
            body = f"{sender.email}->{to.email} {round_}".encode()
            header, cipher = do_seal(sender, [to], body)
            assert do_open(header, cipher, to, sender) == body
            assert do_open(header, cipher, sender, sender) == body
            other = carol if sender is alice else alice if sender is carol else None
            if other is not None:  # the same recipient, another sender's keys
                forged = {**header, "sender": other.email}
                with pytest.raises(DecryptError, match="failed authentication"):
                    do_open(forged, cipher, to, other)
        bob.rotate_prekey(retain=1)


def test_missing_body_fields_are_refused(alice: Identity, bob: Identity) -> None:
    header, cipher = do_seal(alice, [bob], b"x")
    del header["enc"]
    with pytest.raises(DecryptError, match="not encrypted"):
        do_open(header, cipher, bob, alice)


def test_injected_rng_makes_sealing_reproducible(alice: Identity, bob: Identity) -> None:
    def rng(n: int) -> bytes:
        return b"\x42" * n

    one = do_seal(alice, [bob], b"same", rng=rng)
    two = do_seal(alice, [bob], b"same", rng=rng)
    assert one == two
    assert new_body_keys(rng) == (b"\x42" * 32, b"\x42" * 7)


def test_describe_enc(alice: Identity, bob: Identity) -> None:
    header, _ = do_seal(alice, [bob], b"x", segment_size=1 << 20)
    assert describe_enc(header["enc"]) == (
        "encrypted (aes-256-gcm, 1 MiB segments) for bob@example.org, alice@example.org"
    )
    header, _ = do_seal(alice, [bob], b"x", segment_size=2048)
    assert "2 KiB segments" in describe_enc(header["enc"])
    assert describe_enc(None) == "not encrypted"
    assert describe_enc({"alg": "rot13"}).startswith("encrypted (unreadable enc header:")


def test_the_wrap_follows_the_documented_key_schedule(alice: Identity, bob: Identity) -> None:
    """Recompute the KEK from the module docstring with raw primitives only."""
    ephemeral = X25519PrivateKey.from_private_bytes(b"\x07" * 32)
    content_key = os.urandom(32)
    aad = b"header aad"
    prefix = os.urandom(7)
    wrap = wrap_key(
        content_key,
        sender=alice,
        recipient=bob.public_bundle(),
        aad=aad,
        nonce_prefix=prefix,
        rng=lambda n: b"\x07" * n,
    )
    assert base64.b64decode(wrap["ephemeral"]) == ephemeral.public_key().public_bytes_raw()

    b = bob.public_bundle()
    a = alice.public_bundle()
    spk = X25519PublicKey.from_public_bytes(b.prekey)
    dh1 = alice.dh_identity_key.exchange(spk)
    dh2 = ephemeral.exchange(X25519PublicKey.from_public_bytes(b.dh_identity_key))
    dh3 = ephemeral.exchange(spk)

    def lp(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    info = (
        b"fedbox/wrap/v3"
        + lp(a.email.encode())
        + lp(b.email.encode())
        + lp(a.signing_key)
        + lp(b.signing_key)
        + lp(b.prekey_id.encode())
        + lp(ephemeral.public_key().public_bytes_raw())
        + lp(prefix)
        + lp(hashlib.sha256(aad).digest())
    )
    kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=info).derive(
        b"\xff" * 32 + dh1 + dh2 + dh3
    )
    wrapped = base64.b64decode(wrap["wrapped"])
    assert AESGCM(kek).decrypt(bytes(12), wrapped, aad) == content_key


def _ephemeral(header: dict[str, Any]) -> str:
    (key,) = {wrap["ephemeral"] for wrap in header["enc"]["wraps"]}
    return str(key)


def test_a_sender_keeps_one_ephemeral_key_until_it_expires(
    alice: Identity, bob: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = do_seal(alice, [bob], b"one")
    second, cipher = do_seal(alice, [bob], b"two")
    assert _ephemeral(first) == _ephemeral(second)
    assert do_open(second, cipher, bob, alice) == b"two"
    other, _ = do_seal(bob, [alice], b"three")  # each sender has its own
    assert _ephemeral(other) != _ephemeral(first)
    monkeypatch.setattr(importlib.import_module("fedbox.crypto.seal"), "EPHEMERAL_TTL", 0.0)
    third, cipher = do_seal(alice, [bob], b"four")
    assert _ephemeral(third) != _ephemeral(first)
    assert do_open(third, cipher, bob, alice) == b"four"


def test_wraps_under_one_ephemeral_key_do_not_open_for_another_message(
    alice: Identity, bob: Identity
) -> None:
    """The KEK binds the body's nonce prefix and the header: a wrap moved to another
    message of the same sender, reader and ephemeral key does not open there, even
    with that message's header fields copied over."""
    first, _ = do_seal(alice, [bob], b"first")
    second, cipher = do_seal(alice, [bob], b"other")
    assert _ephemeral(first) == _ephemeral(second)
    moved = copy.deepcopy(second)
    moved["enc"]["wraps"] = first["enc"]["wraps"]
    with pytest.raises(DecryptError, match="failed authentication"):
        do_open(moved, cipher, bob, alice)
    moved["enc"]["nonce_prefix"] = first["enc"]["nonce_prefix"]  # same header, other body
    with pytest.raises(DecryptError, match="failed authentication"):
        do_open(moved, cipher, bob, alice)
    # The two wraps are under different KEKs: one KEK with the zero nonce would encrypt
    # both content keys with the same keystream, so their XORs would match.
    keys, wrapped = [], []
    for header in (first, second):
        wrap = find_wrap(header["enc"], bob.email)
        keys.append(
            unwrap_key(
                wrap,
                me=bob,
                sender=alice.public_bundle(),
                aad=header_aad(header),
                nonce_prefix=base64.b64decode(header["enc"]["nonce_prefix"]),
            )
        )
        wrapped.append(base64.b64decode(wrap["wrapped"])[:32])
    xor = [bytes(a ^ b for a, b in zip(*pair, strict=True)) for pair in (keys, wrapped)]
    assert xor[0] != xor[1]


def test_a_forked_child_draws_ephemeral_keys_of_its_own(alice: Identity, bob: Identity) -> None:
    parent, _ = do_seal(alice, [bob], b"parent")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: seal once, report the ephemeral key, leave at once
        try:
            child, _ = do_seal(alice, [bob], b"child")
            os.write(write_end, _ephemeral(child).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_key = pipe.read().decode()
    os.waitpid(pid, 0)
    assert child_key and child_key != _ephemeral(parent)
    again, _ = do_seal(alice, [bob], b"parent again")
    assert _ephemeral(again) == _ephemeral(parent)
