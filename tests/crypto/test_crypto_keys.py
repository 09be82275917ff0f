"""Identities on disk, prekey rotation, public bundles and their DID documents."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from crypto_rng import counter_rng

from fedbox.crypto import (
    Identity,
    PublicBundle,
    bundle_from_did,
    did_document,
    did_for,
    fingerprint,
)
from fedbox.crypto import keys as keys_module
from fedbox.errors import CryptoError, InvalidIdentity

ALICE = "alice@example.org"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_is_reproducible_with_an_injected_rng() -> None:
    one = Identity.generate(ALICE, rng=counter_rng(b"a")).public_bundle()
    two = Identity.generate(ALICE, rng=counter_rng(b"a")).public_bundle()
    other = Identity.generate(ALICE, rng=counter_rng(b"b")).public_bundle()
    assert one == two != other


def test_rng_returning_the_wrong_size_is_a_bug() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.generate(ALICE, rng=lambda n: b"short")


def test_repr_shows_no_secrets() -> None:
    identity = Identity.generate(ALICE)
    text = repr(identity)
    assert identity.public_bundle().fingerprint in text
    assert identity.signing_key.private_bytes_raw().hex() not in text


def test_bundle_verifies_and_fingerprint_is_grouped_sha256() -> None:
    bundle = Identity.generate(ALICE).public_bundle()
    bundle.verify()
    assert bundle.fingerprint.replace(":", "") == hashlib.sha256(bundle.signing_key).hexdigest()
    assert len(bundle.fingerprint.split(":")) == 16
    assert fingerprint(bundle.signing_key) == bundle.fingerprint


def test_bundle_with_foreign_parts_fails_verification() -> None:
    alice = Identity.generate(ALICE).public_bundle()
    mallory = Identity.generate("mallory@example.org").public_bundle()
    forged = [
        dataclasses.replace(alice, prekey=mallory.prekey),
        dataclasses.replace(alice, prekey_id="0" * 16),
        dataclasses.replace(alice, dh_identity_key=mallory.dh_identity_key),
        dataclasses.replace(alice, signing_key=mallory.signing_key),
        dataclasses.replace(alice, prekey_sig=alice.dh_identity_sig),
        dataclasses.replace(alice, dh_identity_sig=alice.prekey_sig),
        # Mallory's genuine keys presented under Alice's email.
        dataclasses.replace(mallory, email=ALICE),
    ]
    for bundle in forged:
        with pytest.raises(CryptoError, match="bad signature"):
            bundle.verify()


def test_verification_is_memoized_only_for_the_exact_bytes_that_verified() -> None:
    alice = Identity.generate(ALICE).public_bundle()
    mallory = Identity.generate("mallory@example.org").public_bundle()
    alice.verify()
    mallory.verify()  # both now cached as good
    forged = dataclasses.replace(alice, prekey=mallory.prekey, prekey_sig=mallory.prekey_sig)
    for _ in range(2):  # a failure is never cached as a success
        with pytest.raises(CryptoError, match="bad signature"):
            forged.verify()

    class Liar(bytes):
        """Claims to equal anything and hashes like the genuine signature."""

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash(alice.prekey_sig)

    lying = dataclasses.replace(alice, prekey_sig=Liar(alice.dh_identity_sig))
    with pytest.raises(CryptoError, match="bad signature on prekey"):
        lying.verify()
    alice.verify()


def test_the_bundles_of_a_few_thousand_peers_are_each_verified_once() -> None:
    """Issue 20: an aggregator of 2,000 virtual clients checks each client's bundle at
    every wrap and unwrap; a cache smaller than its peers verified two Ed25519
    signatures per message, round after round."""
    bundles = [Identity.generate(f"c{i}@example.org").public_bundle() for i in range(2000)]
    for bundle in bundles:
        bundle.verify()
    before = keys_module._verify_signatures.cache_info()
    for bundle in bundles:
        bundle.verify()
    after = keys_module._verify_signatures.cache_info()
    assert after.misses == before.misses
    assert after.hits - before.hits == len(bundles)


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not an email"},
        {"signing_key": b"\x00" * 31},
        {"prekey_sig": "not bytes"},
        {"prekey_id": "has/slash"},
        {"prekey_id": ""},
    ],
)
def test_bundle_shape_is_checked_on_construction(change: dict[str, Any]) -> None:
    bundle = Identity.generate(ALICE).public_bundle()
    with pytest.raises(CryptoError):
        dataclasses.replace(bundle, **change)


def test_load_or_create_stores_private_keys_0600_in_a_0700_dir(tmp_path: Path) -> None:
    created = Identity.load_or_create(tmp_path, ALICE)
    keys = tmp_path / "keys"
    assert mode(keys) == 0o700
    assert [p.name for p in keys.iterdir()] == ["identity.json"]
    assert mode(keys / "identity.json") == 0o600
    loaded = Identity.load_or_create(tmp_path, ALICE)
    assert loaded.public_bundle() == created.public_bundle()


def test_concurrent_first_use_agrees_on_one_identity(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: Identity.load_or_create(tmp_path, ALICE), range(16)))
    assert len({identity.public_bundle() for identity in made}) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["identity.json"]


def test_a_loosened_key_file_is_tightened_on_load(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path, ALICE)
    path = tmp_path / "keys" / "identity.json"
    path.chmod(0o644)
    Identity.load_or_create(tmp_path, ALICE)
    assert mode(path) == 0o600


def test_keys_of_another_email_are_refused(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path, ALICE)
    with pytest.raises(CryptoError, match=re.escape("belong to alice@example.org")):
        Identity.load_or_create(tmp_path, "bob@example.org")


def test_an_invalid_email_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentity):
        Identity.load_or_create(tmp_path, "../etc")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1, "email": "alice@example.org"}',
        b'{"version": 1, "email": "alice@example.org", "signing_key": "AA==",'
        b' "dh_identity_key": "AA==", "prekeys": ["AA=="]}',
        b'{"version": 1, "email": "alice@example.org", "signing_key": "AA==",'
        b' "dh_identity_key": "AA==", "prekeys": []}',
    ],
)
def test_a_corrupt_key_file_is_a_crypto_error_naming_it(tmp_path: Path, content: bytes) -> None:
    Identity.load_or_create(tmp_path, ALICE)
    path = tmp_path / "keys" / "identity.json"
    path.write_bytes(content)
    with pytest.raises(CryptoError, match="cannot read private keys") as info:
        Identity.load_or_create(tmp_path, ALICE)
    assert info.value.path == str(path)


def test_rotation_keeps_old_prekeys_and_persists(tmp_path: Path) -> None:
    identity = Identity.load_or_create(tmp_path, ALICE)
    first = identity.prekey_id
    identity.rotate_prekey()
    assert identity.prekey_id != first
    assert identity.prekey_ids == (first, identity.prekey_id)
    assert identity.prekey(first) is not None
    assert identity.public_bundle().prekey_id == identity.prekey_id
    reloaded = Identity.load_or_create(tmp_path, ALICE)
    assert reloaded.prekey_ids == identity.prekey_ids
    assert mode(tmp_path / "keys" / "identity.json") == 0o600
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["identity.json"]


def test_rotation_retains_a_bounded_number_of_old_prekeys() -> None:
    identity = Identity.generate(ALICE)
    for _ in range(6):
        identity.rotate_prekey(retain=2)
    assert len(identity.prekey_ids) == 3
    identity.rotate_prekey(retain=0)
    assert identity.prekey_ids == (identity.prekey_id,)
    assert identity.prekey("unknown") is None
    with pytest.raises(ValueError):
        identity.rotate_prekey(retain=-1)


def test_did_document_round_trips() -> None:
    bundle = Identity.generate(ALICE).public_bundle()
    doc = json.loads(json.dumps(did_document(bundle)))
    assert doc["id"] == "did:fedbox:alice%40example.org"
    types = [m["type"] for m in doc["verificationMethod"]]
    assert types == [
        "Ed25519VerificationKey2020",
        "X25519KeyAgreementKey2020",
        "X25519KeyAgreementKey2020",
    ]
    assert doc["verificationMethod"][0]["publicKeyMultibase"].startswith("z6Mk")
    assert doc["verificationMethod"][1]["publicKeyMultibase"].startswith("z6LS")
    assert bundle_from_did(doc, ALICE) == bundle


def test_did_ids_escape_characters_outside_the_did_alphabet() -> None:
    assert did_for("o'neil+x@a-b.org") == "did:fedbox:o%27neil%2Bx%40a-b.org"


def _doc() -> dict[str, Any]:
    return did_document(Identity.generate(ALICE).public_bundle())


def _method(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return doc["verificationMethod"][index]


def _bad_docs() -> list[tuple[str, Any]]:
    other = did_document(Identity.generate(ALICE).public_bundle())
    cases: list[tuple[str, Any]] = [("not a JSON object", [1, 2])]

    def case(reason: str, edit) -> None:
        doc = _doc()
        edit(doc)
        cases.append((reason, doc))

    case("expected 'did:fedbox:alice", lambda d: d.update(id="did:fedbox:bob%40example.org"))
    case("verificationMethod must be", lambda d: d.pop("verificationMethod"))
    case("keyAgreement must be a list", lambda d: d.pop("keyAgreement"))
    case("exactly one #prekey", lambda d: d["keyAgreement"].append(d["keyAgreement"][1] + "0"))
    case("exactly one #prekey", lambda d: d["keyAgreement"].pop())
    case("not unique", lambda d: d["verificationMethod"].append(_method(d, 0)))
    case("#signing is missing", lambda d: d["verificationMethod"].pop(0))
    case("must be a Ed25519", lambda d: _method(d, 0).update(type="JsonWebKey2020"))
    case("controlled by", lambda d: _method(d, 1).update(controller="did:web:evil.example"))
    case("base58btc", lambda d: _method(d, 0).update(publicKeyMultibase="z0OIl"))
    case("starting with 'z'", lambda d: _method(d, 0).update(publicKeyMultibase="u" + "A" * 40))
    # An X25519 key where the Ed25519 one belongs: wrong multicodec prefix.
    case(
        "multicodec prefix ed01",
        lambda d: _method(d, 0).update(publicKeyMultibase=_method(d, 1)["publicKeyMultibase"]),
    )
    case("not valid base64", lambda d: _method(d, 1).update(fedboxSignature="!!!"))
    case("must be 64 bytes", lambda d: _method(d, 2).update(fedboxSignature="AAAA"))
    case("fedboxSignature must be a base64", lambda d: _method(d, 2).pop("fedboxSignature"))
    case(
        "bad signature on prekey",
        lambda d: _method(d, 2).update(fedboxSignature=_method(other, 2)["fedboxSignature"]),
    )
    case(
        "bad signature on the DH identity",
        lambda d: _method(d, 1).update(publicKeyMultibase=_method(other, 1)["publicKeyMultibase"]),
    )
    return cases


@pytest.mark.parametrize(("reason", "doc"), _bad_docs())
def test_bad_did_documents_are_refused(reason: str, doc: Any) -> None:
    with pytest.raises(CryptoError, match=reason):
        bundle_from_did(copy.deepcopy(doc), ALICE)


def test_a_did_document_for_someone_else_is_refused() -> None:
    with pytest.raises(CryptoError, match=re.escape("expected 'did:fedbox:bob%40example.org'")):
        bundle_from_did(_doc(), "bob@example.org")


def test_public_bundle_is_frozen() -> None:
    bundle: PublicBundle = Identity.generate(ALICE).public_bundle()
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.email = "x@y.org"  # type: ignore[misc]
