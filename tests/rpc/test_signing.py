"""Signed refusals: valid only for the exact header and body their signer signed."""

from __future__ import annotations

from pathlib import Path

from fedbox.crypto import Identity
from fedbox.datasite.paths import Kind
from fedbox.rpc.envelope import Header
from fedbox.rpc.signing import SIGNATURE_HEADER, sign_refusal, signed_by
from fedbox.testing import message_header


def _header() -> Header:
    return message_header(
        "b@x.org",
        "a@x.org",
        "t",
        "echo",
        msg_id="0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60",
        kind=Kind.RESPONSE,
        status=403,
        expires_in=60,
    )


def test_a_signature_holds_only_for_what_was_signed(tmp_path: Path) -> None:
    bob = Identity.load_or_create(tmp_path / "b", "b@x.org")
    carol = Identity.load_or_create(tmp_path / "c", "c@x.org")
    signed = sign_refusal(bob, _header(), b"refused: reason")
    assert signed_by(bob.public_bundle(), signed, b"refused: reason")
    assert not signed_by(carol.public_bundle(), signed, b"refused: reason")
    assert not signed_by(bob.public_bundle(), signed, b"refused: other reason")
    changed = signed.model_copy(update={"status": 500})
    assert not signed_by(bob.public_bundle(), changed, b"refused: reason")
    extra = signed.model_copy(update={"headers": {**signed.headers, "k": "v"}})
    assert not signed_by(bob.public_bundle(), extra, b"refused: reason")
    assert not signed_by(bob.public_bundle(), _header(), b"refused: reason")  # unsigned
    garbled = signed.model_copy(update={"headers": {SIGNATURE_HEADER: "not base64!"}})
    assert not signed_by(bob.public_bundle(), garbled, b"refused: reason")
