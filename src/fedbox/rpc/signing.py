"""Signed refusals: how a box authenticates an answer it does not encrypt.

An encrypting box accepts only authenticated responses (issue 11.9): anyone who can
write the shared folder could otherwise plant a plaintext error for another's request.
Data responses are sealed; a refusal often cannot be (the sender's keys may be exactly
what is wrong), so the recipient signs it with its identity key instead, and the
sender checks the signature against the recipient's pinned key. The signature covers
the header fields that say what the answer is, the other headers and the body.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedbox.crypto import Identity, PublicBundle
from fedbox.rpc.envelope import Header

__all__ = ["SIGNATURE_HEADER", "sign_refusal", "signed_by"]

SIGNATURE_HEADER = "fedbox-signature"
_CONTEXT = b"fedbox/signed-response/v1\n"
_FIELDS = ("id", "kind", "sender", "recipient", "app", "endpoint", "created", "expires", "status")


def _signed_bytes(header: Header, body: bytes) -> bytes:
    fields = {name: getattr(header, name) for name in _FIELDS}
    fields["headers"] = {k: v for k, v in header.headers.items() if k != SIGNATURE_HEADER}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return _CONTEXT + canonical.encode() + b"\n" + body


def sign_refusal(identity: Identity, header: Header, body: bytes) -> Header:
    """``header`` with a signature of it and ``body`` by ``identity``, in its headers."""
    signature = identity.signing_key.sign(_signed_bytes(header, body))
    headers = {**header.headers, SIGNATURE_HEADER: base64.b64encode(signature).decode()}
    return header.model_copy(update={"headers": headers})


def signed_by(bundle: PublicBundle, header: Header, body: bytes) -> bool:
    """Whether ``header`` and ``body`` carry a valid signature by ``bundle``'s identity."""
    encoded = header.headers.get(SIGNATURE_HEADER)
    if encoded is None:
        return False
    try:
        signature = base64.b64decode(encoded, validate=True)
        key = Ed25519PublicKey.from_public_bytes(bundle.signing_key)
        key.verify(signature, _signed_bytes(header, body))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
