"""Identity keys, signed prekeys, and the public bundle peers encrypt to.

The key set follows Signal's X3DH (https://signal.org/docs/specifications/x3dh/): an
Ed25519 identity key that signs, an X25519 identity key for Diffie-Hellman, and X25519
signed prekeys that rotate. X3DH converts one Ed25519 key to X25519 (XEdDSA); the
``cryptography`` library cannot, so the DH identity key is a second, static key whose
binding to the signing key is an Ed25519 signature. No one-time prekeys: nobody is online
to hand them out, which is the cost of carrying messages as files.

Contracts:

- ``Identity`` holds the private side of one email. ``load_or_create`` keeps it in
  ``state_dir/keys/identity.json`` (dir 0700, file 0600, written to a temp file, fsync'd,
  then linked or renamed into place, so a reader never sees half a key and two processes
  creating at once end up with the same identity).
- ``rotate_prekey`` makes a new current prekey and keeps up to ``retain`` older ones, so
  messages wrapped to the old prekey while it was still published still open.
- ``PublicBundle`` is what peers learn: it is checked for shape on construction and for
  signatures by ``verify()``. ``did_document``/``bundle_from_did`` carry it as a W3C DID
  document (https://www.w3.org/TR/did-core/) at ``datasites/{email}/public/did.json``.
- Every signature covers a domain label and the email, so a key signed for one purpose or
  one person cannot be replayed as another.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedbox.crypto._primitives import (
    Rng,
    b64decode,
    b64encode,
    length_prefixed,
    multibase_decode,
    multibase_encode,
    random_bytes,
)
from fedbox.datasite.identity import validate_email
from fedbox.errors import CryptoError, InvalidIdentity

__all__ = [
    "DEFAULT_RETAINED_PREKEYS",
    "Identity",
    "PublicBundle",
    "Rng",
    "bundle_from_did",
    "did_document",
    "did_for",
    "fingerprint",
]

logger = logging.getLogger(__name__)

DEFAULT_RETAINED_PREKEYS = 4
"""Older prekeys kept after a rotation, so messages already in flight still open."""

KEY_SIZE = 32
SIGNATURE_SIZE = 64

_IDENTITY_FILE_VERSION = 1
_DH_IDENTITY_LABEL = b"fedbox/dh-identity/v1"
_PREKEY_LABEL = b"fedbox/prekey/v1"
_PREKEY_ID_LABEL = b"fedbox/prekey-id/v1"
_PREKEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_ED25519_CODEC = b"\xed\x01"  # multicodec ed25519-pub, varint-encoded
_X25519_CODEC = b"\xec\x01"  # multicodec x25519-pub
_DID_CONTEXT = [
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/suites/ed25519-2020/v1",
    "https://w3id.org/security/suites/x25519-2020/v1",
]
_DID_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_")


def fingerprint(signing_key: bytes) -> str:
    """SHA-256 of an Ed25519 public key as 16 colon-separated groups of 4 hex digits.

    Colons, not spaces, so it can be pasted into ``fedbox keys trust`` without quoting.
    """
    digest = hashlib.sha256(signing_key).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _dh_identity_message(email: str, dh_identity_key: bytes) -> bytes:
    return length_prefixed(_DH_IDENTITY_LABEL, email.encode(), dh_identity_key)


def _prekey_message(email: str, prekey_id: str, prekey: bytes) -> bytes:
    return length_prefixed(_PREKEY_LABEL, email.encode(), prekey_id.encode(), prekey)


def _prekey_id(prekey: bytes) -> str:
    return hashlib.sha256(_PREKEY_ID_LABEL + prekey).hexdigest()[:16]


def _public(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@dataclass(frozen=True, slots=True)
class PublicBundle:
    """Public keys of one email, as published; shape checked here, signatures by ``verify``."""

    email: str
    signing_key: bytes
    dh_identity_key: bytes
    dh_identity_sig: bytes
    prekey_id: str
    prekey: bytes
    prekey_sig: bytes

    def __post_init__(self) -> None:
        try:
            validate_email(self.email)
        except InvalidIdentity as exc:
            raise CryptoError(f"public keys name an invalid email: {exc}") from exc
        sizes = {
            "signing_key": KEY_SIZE,
            "dh_identity_key": KEY_SIZE,
            "dh_identity_sig": SIGNATURE_SIZE,
            "prekey": KEY_SIZE,
            "prekey_sig": SIGNATURE_SIZE,
        }
        for name, size in sizes.items():
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise CryptoError(f"{self.email}: {name} must be {size} bytes")
        if not isinstance(self.prekey_id, str) or not _PREKEY_ID.match(self.prekey_id):
            raise CryptoError(f"{self.email}: prekey id {self.prekey_id!r} is malformed")

    @property
    def fingerprint(self) -> str:
        """What humans compare out of band, and what the trust store pins."""
        return fingerprint(self.signing_key)

    def verify(self) -> None:
        """Raise CryptoError unless the signing key signed both X25519 keys for this email.

        Called before every wrap and unwrap, so it is memoized: the result is a pure
        function of the bundle's fields, and the cache is keyed by all of them (as exact
        ``bytes``/``str``), so only a bundle whose every byte verified before skips the
        Ed25519 checks. Failures are never cached.
        """
        _verify_signatures(
            str(self.email),
            bytes(self.signing_key),
            bytes(self.dh_identity_key),
            bytes(self.dh_identity_sig),
            str(self.prekey_id),
            bytes(self.prekey),
            bytes(self.prekey_sig),
        )


VERIFIED_BUNDLES = 16384
"""Bundles whose signatures are remembered as good: an aggregator of a few thousand
virtual clients checks each client's bundle at every wrap and unwrap, and a smaller
cache than its peers re-verified two Ed25519 signatures per message."""


@functools.lru_cache(maxsize=VERIFIED_BUNDLES)
def _verify_signatures(
    email: str,
    signing_key: bytes,
    dh_identity_key: bytes,
    dh_identity_sig: bytes,
    prekey_id: str,
    prekey: bytes,
    prekey_sig: bytes,
) -> None:
    """``PublicBundle.verify`` proper; raises CryptoError, so only successes are cached."""
    try:
        signer = Ed25519PublicKey.from_public_bytes(signing_key)
        signer.verify(dh_identity_sig, _dh_identity_message(email, dh_identity_key))
    except (InvalidSignature, ValueError) as exc:
        raise CryptoError(f"{email}: bad signature on the DH identity key") from exc
    try:
        signer.verify(prekey_sig, _prekey_message(email, prekey_id, prekey))
    except InvalidSignature as exc:
        raise CryptoError(f"{email}: bad signature on prekey {prekey_id}") from exc


class Identity:
    """The private keys of one email: signing key, DH identity key, signed prekeys.

    Not a frozen value only because ``rotate_prekey`` changes the current prekey; the
    identity keys never change. ``repr`` shows no secrets.
    """

    __slots__ = ("_dh_identity_key", "_path", "_prekeys", "_signing_key", "email")

    def __init__(
        self,
        email: str,
        signing_key: Ed25519PrivateKey,
        dh_identity_key: X25519PrivateKey,
        prekeys: list[X25519PrivateKey],
        *,
        path: Path | None = None,
    ) -> None:
        """Prefer ``generate`` or ``load_or_create``; ``prekeys`` run oldest to current."""
        if not prekeys:
            raise ValueError("an identity needs at least one prekey")
        self.email = validate_email(email)
        self._signing_key = signing_key
        self._dh_identity_key = dh_identity_key
        self._prekeys = {_prekey_id(_public(key)): key for key in prekeys}
        self._path = path

    def __repr__(self) -> str:
        fp = fingerprint(_public(self._signing_key))
        return f"Identity({self.email!r}, fingerprint={fp!r}, prekey_id={self.prekey_id!r})"

    @classmethod
    def generate(cls, email: str, *, rng: Rng | None = None) -> Identity:
        """Fresh keys held in memory only; ``rng`` makes them reproducible for tests."""
        return cls(
            email,
            Ed25519PrivateKey.from_private_bytes(random_bytes(rng, KEY_SIZE)),
            X25519PrivateKey.from_private_bytes(random_bytes(rng, KEY_SIZE)),
            [X25519PrivateKey.from_private_bytes(random_bytes(rng, KEY_SIZE))],
        )

    @classmethod
    def load_or_create(cls, state_dir: Path, email: str, *, rng: Rng | None = None) -> Identity:
        """The identity kept under ``state_dir/keys/``, created there on first use.

        Raises CryptoError if the file is unreadable or belongs to another email.
        """
        email = validate_email(email)
        keys_dir = Path(state_dir) / "keys"
        path = keys_dir / "identity.json"
        if not path.exists():
            created = cls.generate(email, rng=rng)
            created._path = path
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(keys_dir, 0o700)
            if _write_private(path, created._to_json(), replace=False):
                logger.info("created identity for %s in %s", email, path)
                return created
            # Another process created it first: use theirs, so both agree.
        return cls._load(path, email)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self._signing_key

    @property
    def dh_identity_key(self) -> X25519PrivateKey:
        return self._dh_identity_key

    @property
    def prekey_id(self) -> str:
        """Id of the current prekey: the one published, and the one new wraps use."""
        return next(reversed(self._prekeys))

    @property
    def prekey_ids(self) -> tuple[str, ...]:
        """Every prekey still held, oldest first, current last."""
        return tuple(self._prekeys)

    def prekey(self, prekey_id: str) -> X25519PrivateKey | None:
        """The private prekey with this id, or None if unknown or rotated out."""
        return self._prekeys.get(prekey_id)

    def rotate_prekey(
        self, *, rng: Rng | None = None, retain: int = DEFAULT_RETAINED_PREKEYS
    ) -> None:
        """Make a new current prekey, keep ``retain`` older ones, persist if loaded from disk.

        The file is replaced atomically before memory changes, so a failed write leaves
        both as they were. Republish ``public_bundle()`` afterwards.
        """
        if retain < 0:
            raise ValueError("retain must be >= 0")
        new = X25519PrivateKey.from_private_bytes(random_bytes(rng, KEY_SIZE))
        old = list(self._prekeys.values())
        prekeys = [*old[max(0, len(old) - retain) :], new]
        rotated = Identity(self.email, self._signing_key, self._dh_identity_key, prekeys)
        if self._path is not None:
            _write_private(self._path, rotated._to_json(), replace=True)
        self._prekeys = rotated._prekeys
        logger.info("rotated prekey of %s to %s", self.email, self.prekey_id)

    def public_bundle(self) -> PublicBundle:
        """The signed public keys peers need to encrypt to this identity."""
        dh_identity_key = _public(self._dh_identity_key)
        prekey = _public(self._prekeys[self.prekey_id])
        return PublicBundle(
            email=self.email,
            signing_key=_public(self._signing_key),
            dh_identity_key=dh_identity_key,
            dh_identity_sig=self._signing_key.sign(
                _dh_identity_message(self.email, dh_identity_key)
            ),
            prekey_id=self.prekey_id,
            prekey=prekey,
            prekey_sig=self._signing_key.sign(_prekey_message(self.email, self.prekey_id, prekey)),
        )

    def _to_json(self) -> bytes:
        doc = {
            "version": _IDENTITY_FILE_VERSION,
            "email": self.email,
            "signing_key": b64encode(self._signing_key.private_bytes_raw()),
            "dh_identity_key": b64encode(self._dh_identity_key.private_bytes_raw()),
            "prekeys": [b64encode(key.private_bytes_raw()) for key in self._prekeys.values()],
        }
        return json.dumps(doc, indent=2).encode()

    @classmethod
    def _load(cls, path: Path, email: str) -> Identity:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning("private keys %s had mode %o; setting 0600", path, mode)
            os.chmod(path, 0o600)
        try:
            doc = json.loads(path.read_bytes())
            if not isinstance(doc, dict) or doc.get("version") != _IDENTITY_FILE_VERSION:
                raise ValueError(f"not a version {_IDENTITY_FILE_VERSION} identity file")
            prekeys = doc["prekeys"]
            if not isinstance(prekeys, list) or not prekeys:
                raise ValueError("no prekeys")
            identity = cls(
                doc["email"],
                Ed25519PrivateKey.from_private_bytes(
                    b64decode(doc["signing_key"], "signing_key", KEY_SIZE)
                ),
                X25519PrivateKey.from_private_bytes(
                    b64decode(doc["dh_identity_key"], "dh_identity_key", KEY_SIZE)
                ),
                [
                    X25519PrivateKey.from_private_bytes(b64decode(key, "prekey", KEY_SIZE))
                    for key in prekeys
                ],
                path=path,
            )
        except (ValueError, KeyError) as exc:  # JSONDecodeError and InvalidIdentity too
            raise CryptoError(f"cannot read private keys {path}: {exc}", path=str(path)) from exc
        if identity.email != email:
            raise CryptoError(
                f"private keys {path} belong to {identity.email}, not {email}", path=str(path)
            )
        return identity


def _write_private(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write a 0600 file atomically; False if ``replace`` is off and ``path`` exists.

    Not ``fedbox.store``'s atomic writer: that one creates the temp file with the umask's
    mode, and private keys must never exist readable by others, not even for a moment.
    """
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def did_for(email: str) -> str:
    """``did:fedbox:{email}`` with every character outside the DID id alphabet %-encoded."""
    email = validate_email(email)
    return "did:fedbox:" + "".join(c if c in _DID_ID_SAFE else f"%{ord(c):02X}" for c in email)


def did_document(bundle: PublicBundle) -> dict[str, Any]:
    """A W3C DID document carrying ``bundle``; ``bundle_from_did`` is its inverse.

    Verification methods ``#signing`` (Ed25519VerificationKey2020), ``#dh-identity`` and
    ``#prekey-{prekey_id}`` (X25519KeyAgreementKey2020); the two X25519 methods carry the
    Ed25519 signature binding them in ``fedboxSignature`` (base64).
    """
    did = did_for(bundle.email)
    prekey_ref = f"{did}#prekey-{bundle.prekey_id}"
    return {
        "@context": list(_DID_CONTEXT),
        "id": did,
        "alsoKnownAs": [f"mailto:{bundle.email}"],
        "verificationMethod": [
            {
                "id": f"{did}#signing",
                "type": "Ed25519VerificationKey2020",
                "controller": did,
                "publicKeyMultibase": multibase_encode(_ED25519_CODEC, bundle.signing_key),
            },
            {
                "id": f"{did}#dh-identity",
                "type": "X25519KeyAgreementKey2020",
                "controller": did,
                "publicKeyMultibase": multibase_encode(_X25519_CODEC, bundle.dh_identity_key),
                "fedboxSignature": b64encode(bundle.dh_identity_sig),
            },
            {
                "id": prekey_ref,
                "type": "X25519KeyAgreementKey2020",
                "controller": did,
                "publicKeyMultibase": multibase_encode(_X25519_CODEC, bundle.prekey),
                "fedboxSignature": b64encode(bundle.prekey_sig),
            },
        ],
        "authentication": [f"{did}#signing"],
        "assertionMethod": [f"{did}#signing"],
        "keyAgreement": [f"{did}#dh-identity", prekey_ref],
    }


def bundle_from_did(doc: object, email: str) -> PublicBundle:
    """The verified bundle in a DID document published for ``email``.

    Raises CryptoError naming the first problem: not for this email, a method missing or
    of the wrong type, undecodable keys or signatures, or a signature that does not verify.
    """
    did = did_for(email)
    try:
        bundle = _parse_did(doc, did, email)
    except ValueError as exc:
        raise CryptoError(f"DID document for {email} refused: {exc}") from exc
    bundle.verify()
    return bundle


def _parse_did(doc: object, did: str, email: str) -> PublicBundle:
    if not isinstance(doc, Mapping):
        raise ValueError("not a JSON object")
    if doc.get("id") != did:
        raise ValueError(f"its id is {doc.get('id')!r}, expected {did!r}")
    methods = doc.get("verificationMethod")
    if not isinstance(methods, list) or not all(isinstance(m, Mapping) for m in methods):
        raise ValueError("verificationMethod must be a list of objects")
    by_id = {m.get("id"): m for m in methods}
    if len(by_id) != len(methods):
        raise ValueError("verificationMethod ids are not unique")
    agreement = doc.get("keyAgreement")
    if not isinstance(agreement, list):
        raise ValueError("keyAgreement must be a list")
    prekey_refs = [r for r in agreement if isinstance(r, str) and r.startswith(f"{did}#prekey-")]
    if len(prekey_refs) != 1 or f"{did}#dh-identity" not in agreement:
        raise ValueError("keyAgreement must list #dh-identity and exactly one #prekey-{id}")

    def method(ref: str, kind: str) -> Mapping[str, Any]:
        found = by_id.get(ref)
        if found is None:
            raise ValueError(f"verification method {ref} is missing")
        if found.get("type") != kind or found.get("controller") != did:
            raise ValueError(f"{ref} must be a {kind} controlled by {did}")
        return found

    signing = method(f"{did}#signing", "Ed25519VerificationKey2020")
    dh = method(f"{did}#dh-identity", "X25519KeyAgreementKey2020")
    prekey = method(prekey_refs[0], "X25519KeyAgreementKey2020")
    try:
        return PublicBundle(
            email=email,
            signing_key=multibase_decode(
                signing.get("publicKeyMultibase"), _ED25519_CODEC, KEY_SIZE, "#signing key"
            ),
            dh_identity_key=multibase_decode(
                dh.get("publicKeyMultibase"), _X25519_CODEC, KEY_SIZE, "#dh-identity key"
            ),
            dh_identity_sig=b64decode(
                dh.get("fedboxSignature"), "#dh-identity fedboxSignature", SIGNATURE_SIZE
            ),
            prekey_id=prekey_refs[0].removeprefix(f"{did}#prekey-"),
            prekey=multibase_decode(
                prekey.get("publicKeyMultibase"), _X25519_CODEC, KEY_SIZE, "#prekey key"
            ),
            prekey_sig=b64decode(
                prekey.get("fedboxSignature"), "#prekey fedboxSignature", SIGNATURE_SIZE
            ),
        )
    except CryptoError as exc:
        raise ValueError(str(exc)) from exc
