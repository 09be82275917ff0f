"""Trust on first use: pin, refuse a changed key, accept it on request."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedbox.crypto import Identity, TrustStore, UntrustedKey, normalize_fingerprint
from fedbox.errors import CryptoError

BOB = "bob@example.org"


def test_first_use_pins_and_the_same_key_passes(tmp_path: Path) -> None:
    bundle = Identity.generate(BOB).public_bundle()
    store = TrustStore(tmp_path)
    assert store.pinned(BOB) is None
    store.check(bundle)
    assert store.pinned(BOB) == bundle.fingerprint
    store.check(bundle)
    TrustStore(tmp_path).check(bundle)  # persisted, not held in memory


def test_a_rotated_prekey_is_not_a_changed_identity(tmp_path: Path) -> None:
    bob = Identity.generate(BOB)
    store = TrustStore(tmp_path)
    before = bob.public_bundle()
    store.check(before)
    bob.rotate_prekey()
    after = bob.public_bundle()
    assert after.prekey != before.prekey
    store.check(after)  # raises UntrustedKey if a rotation counted as a new identity
    assert store.pinned(BOB) == before.fingerprint


def test_a_changed_key_is_refused_until_trusted(tmp_path: Path) -> None:
    old = Identity.generate(BOB).public_bundle()
    new = Identity.generate(BOB).public_bundle()
    store = TrustStore(tmp_path)
    store.check(old)
    with pytest.raises(UntrustedKey) as info:
        store.check(new)
    assert f"fedbox keys trust {BOB} {new.fingerprint}" in str(info.value)
    assert (info.value.pinned, info.value.presented) == (old.fingerprint, new.fingerprint)
    assert isinstance(info.value, CryptoError)
    assert store.pinned(BOB) == old.fingerprint

    store.trust(BOB, new.fingerprint.replace(":", "").upper())
    assert store.pinned(BOB) == new.fingerprint
    store.check(new)
    with pytest.raises(UntrustedKey):
        store.check(old)


def test_a_badly_signed_bundle_is_refused_and_not_pinned(tmp_path: Path) -> None:
    bundle = Identity.generate(BOB).public_bundle()
    forged = dataclasses.replace(bundle, prekey=Identity.generate(BOB).public_bundle().prekey)
    store = TrustStore(tmp_path)
    with pytest.raises(CryptoError, match="bad signature"):
        store.check(forged)
    assert store.pinned(BOB) is None


def test_fingerprints_are_normalised_and_checked() -> None:
    fp = Identity.generate(BOB).public_bundle().fingerprint
    assert normalize_fingerprint(fp.replace(":", " ").upper()) == fp
    assert normalize_fingerprint(fp.replace(":", "-")) == fp
    for bad in ["", "abcd", fp + "00", fp.replace(fp[0], "g")]:
        with pytest.raises(CryptoError, match="not a fingerprint"):
            normalize_fingerprint(bad)


def test_pins_lists_every_pinned_identity(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    assert store.pins() == {}
    carol = Identity.generate("carol@example.org").public_bundle()
    bob = Identity.generate(BOB).public_bundle()
    store.check(carol)
    store.check(bob)
    assert store.pins() == {BOB: bob.fingerprint, "carol@example.org": carol.fingerprint}
