"""Known-answer vectors: fixed keys and randomness must give the bytes checked in.

Any change to a byte here is a wire-format change: bump ``ENC_VERSION`` (or the key file
or signature labels) rather than regenerating. To regenerate after such a bump, run
``FEDBOX_REGENERATE_VECTORS=1 pytest tests/crypto/test_crypto_vectors.py``, which writes
``vectors/e2e_v{ENC_VERSION}.json``. Older files stay checked in: a message of an older
version must be refused with a clear error, never misread.

The one regeneration without a bump: when the sender draws its randomness differently
in the same format, the old file is kept under a name of its own, as a message an
earlier sender wrote, which must still open. ``e2e_v2_own_ephemerals.json`` is such a
message: each of its wraps has an ephemeral key of its own, where a header's wraps came
to share one (issue 20).

Version 3 changed only what a wrap's KEK is derived from (issue 20: one ephemeral key
per sender for a while); v2 messages (``e2e_v2*.json``) are still read.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from crypto_rng import counter_rng
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbox.crypto import (
    ENC_VERSION,
    Identity,
    PublicBundle,
    did_document,
    encrypt_body,
    header_aad,
    open_sealed,
    seal,
)
from fedbox.errors import DecryptError

VECTORS = Path(__file__).parent / "vectors" / f"e2e_v{ENC_VERSION}.json"
V1_VECTORS = Path(__file__).parent / "vectors" / "e2e_v1.json"
"""Format v1 (ChaCha20-Poly1305), kept to check that such messages are refused."""
V2_VECTORS = Path(__file__).parent / "vectors" / "e2e_v2.json"
"""Format v2, whose KEKs did not bind the body's nonce prefix and the header AAD digest."""
OWN_EPHEMERALS_VECTORS = Path(__file__).parent / "vectors" / "e2e_v2_own_ephemerals.json"
"""Format v2 as fedbox wrote it before a header's wraps shared their ephemeral key."""
BODY = bytes(range(40))
SEGMENT = 16
HEADER = {
    "v": 1,
    "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "kind": "request",
    "sender": "alice@example.org",
    "recipient": "bob@example.org",
    "app": "demo",
    "endpoint": "messages",
    "created": 1700000000,
    "expires": 1700086400,
    "headers": {},
}


def identities() -> tuple[Identity, Identity]:
    alice = Identity.generate("alice@example.org", rng=counter_rng(b"alice"))
    bob = Identity.generate("bob@example.org", rng=counter_rng(b"bob"))
    return alice, bob


def bundle_hex(bundle: PublicBundle) -> dict[str, str]:
    return {
        "email": bundle.email,
        "signing_key": bundle.signing_key.hex(),
        "dh_identity_key": bundle.dh_identity_key.hex(),
        "dh_identity_sig": bundle.dh_identity_sig.hex(),
        "prekey_id": bundle.prekey_id,
        "prekey": bundle.prekey.hex(),
        "prekey_sig": bundle.prekey_sig.hex(),
        "fingerprint": bundle.fingerprint,
    }


def compute() -> dict[str, Any]:
    alice, bob = identities()
    stream_out = io.BytesIO()
    encrypt_body(
        io.BytesIO(BODY),
        stream_out,
        bytes(range(32)),
        nonce_prefix=bytes(range(7)),
        segment_size=SEGMENT,
    )
    header = dict(HEADER)
    sealed = io.BytesIO()
    header["enc"] = seal(
        io.BytesIO(BODY),
        sealed,
        sender=alice,
        recipients=[bob.public_bundle()],
        header=header,
        segment_size=SEGMENT,
        rng=counter_rng(b"seal"),
    )
    return {
        "inputs": {
            "rng": "counter_rng(seed): SHA-256(seed || u64 big-endian counter) blocks",
            "alice_seed": "alice",
            "bob_seed": "bob",
            "seal_seed": "seal",
            "body": BODY.hex(),
            "segment_size": SEGMENT,
            "header": HEADER,
        },
        "alice": bundle_hex(alice.public_bundle()),
        "bob": bundle_hex(bob.public_bundle()),
        "alice_did": did_document(alice.public_bundle()),
        "stream": {
            "content_key": bytes(range(32)).hex(),
            "nonce_prefix": bytes(range(7)).hex(),
            "ciphertext": stream_out.getvalue().hex(),
        },
        "sealed": {
            "header": header,
            "header_aad": header_aad(header).decode(),
            "ciphertext": sealed.getvalue().hex(),
        },
    }


def test_known_answers() -> None:
    actual = json.loads(json.dumps(compute()))
    if os.environ.get("FEDBOX_REGENERATE_VECTORS"):
        VECTORS.parent.mkdir(exist_ok=True)
        VECTORS.write_text(json.dumps(actual, indent=2) + "\n")
        pytest.skip(f"regenerated {VECTORS}")
    expected = json.loads(VECTORS.read_text())
    for section in expected:
        assert actual[section] == expected[section], section
    assert actual.keys() == expected.keys()


@pytest.mark.parametrize(
    "vectors", [VECTORS, V2_VECTORS, OWN_EPHEMERALS_VECTORS], ids=lambda p: p.stem
)
def test_the_checked_in_vector_opens(vectors: Path) -> None:
    alice, bob = identities()
    sealed = json.loads(vectors.read_text())["sealed"]
    for me in (alice, bob):
        out = io.BytesIO()
        open_sealed(
            io.BytesIO(bytes.fromhex(sealed["ciphertext"])),
            out,
            me=me,
            sender=alice.public_bundle(),
            header=sealed["header"],
        )
        assert out.getvalue() == BODY


def test_a_headers_wraps_share_one_ephemeral_key_now_and_had_one_each_before() -> None:
    def ephemerals(vectors: Path) -> list[str]:
        enc = json.loads(vectors.read_text())["sealed"]["header"]["enc"]
        return [wrap["ephemeral"] for wrap in enc["wraps"]]

    assert len(set(ephemerals(VECTORS))) == 1 and len(ephemerals(VECTORS)) == 2
    assert len(set(ephemerals(V2_VECTORS))) == 1
    assert len(set(ephemerals(OWN_EPHEMERALS_VECTORS))) == 2


def test_the_stream_vector_is_aes_256_gcm_with_the_documented_nonces() -> None:
    """Recompute the stream ciphertext with the raw AEAD: prefix || u32 index || last flag."""
    stream = json.loads(VECTORS.read_text())["stream"]
    aead = AESGCM(bytes.fromhex(stream["content_key"]))
    prefix = bytes.fromhex(stream["nonce_prefix"])
    chunks = [BODY[i : i + SEGMENT] for i in range(0, len(BODY) + 1, SEGMENT)]
    expected = b"".join(
        aead.encrypt(prefix + i.to_bytes(4, "big") + bytes([i == len(chunks) - 1]), chunk, None)
        for i, chunk in enumerate(chunks)
    )
    assert bytes.fromhex(stream["ciphertext"]) == expected


def test_a_v1_message_is_refused_with_a_clear_error() -> None:
    alice, bob = identities()
    sealed = json.loads(V1_VECTORS.read_text())["sealed"]
    assert sealed["header"]["enc"]["alg"] == "chacha20-poly1305"
    for me in (alice, bob):
        with pytest.raises(DecryptError, match=r"unsupported encryption 'chacha20-poly1305' v1"):
            open_sealed(
                io.BytesIO(bytes.fromhex(sealed["ciphertext"])),
                io.BytesIO(),
                me=me,
                sender=alice.public_bundle(),
                header=sealed["header"],
            )
