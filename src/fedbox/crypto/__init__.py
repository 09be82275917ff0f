"""End-to-end encryption of envelope bodies, failing closed (layer 3).

``keys``: identities, signed prekeys, public bundles and their DID documents.
``trust``: trust on first use of each peer's signing key.
``stream``: segmented authenticated encryption of bodies (STREAM).
``seal``: per-reader key wrapping (X3DH-style) and the ``enc`` header.
"""

from fedbox.crypto.keys import (
    DEFAULT_RETAINED_PREKEYS,
    Identity,
    PublicBundle,
    Rng,
    bundle_from_did,
    did_document,
    did_for,
    fingerprint,
)
from fedbox.crypto.seal import (
    AAD_FIELDS,
    ALG,
    ENC_VERSION,
    describe_enc,
    enc_header,
    find_wrap,
    header_aad,
    new_body_keys,
    open_sealed,
    open_sealed_reader,
    seal,
    unwrap_key,
    wrap_key,
    wrap_keys,
)
from fedbox.crypto.stream import (
    CONTENT_KEY_SIZE,
    MAX_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    DecryptingReader,
    Readable,
    Sink,
    ciphertext_size,
    decrypt_body,
    encrypt_body,
    read_into,
)
from fedbox.crypto.trust import TrustStore, UntrustedKey, normalize_fingerprint

__all__ = [
    "AAD_FIELDS",
    "ALG",
    "CONTENT_KEY_SIZE",
    "DEFAULT_RETAINED_PREKEYS",
    "ENC_VERSION",
    "MAX_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "DecryptingReader",
    "Identity",
    "PublicBundle",
    "Readable",
    "Rng",
    "Sink",
    "TrustStore",
    "UntrustedKey",
    "bundle_from_did",
    "ciphertext_size",
    "decrypt_body",
    "describe_enc",
    "did_document",
    "did_for",
    "enc_header",
    "encrypt_body",
    "find_wrap",
    "fingerprint",
    "header_aad",
    "new_body_keys",
    "normalize_fingerprint",
    "open_sealed",
    "open_sealed_reader",
    "read_into",
    "seal",
    "unwrap_key",
    "wrap_key",
    "wrap_keys",
]
