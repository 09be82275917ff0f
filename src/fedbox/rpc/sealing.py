"""End-to-end encryption on the RPC path: whose keys, sealing envelopes, opening them.

A box connected with ``encrypt=True`` has a :class:`Sealer`. It publishes the box's public
keys at ``datasites/{email}/public/did.json`` and reads peers' keys from the same place,
pinning each peer's identity key on first use (``TrustStore``) with a warning that names
the fingerprint and how to verify it, or, with ``require_pinned``, refusing peers nobody
pinned. Nothing falls back to plaintext: a peer without keys, an untrusted key or a body
that does not open is an error.

Writing is one pass. A body whose size is known (in memory, or pieces) has its
ciphertext size known too, so its final header, wraps included, is written first and the
body encrypted after it. A stream is written like a streamed plaintext envelope
(``envelope.write_streamed``): the header goes first with room reserved for
``body_len``, ``body_sha256`` and ``enc`` (whose JSON size is known in advance: every
wrap has fixed-size fields), the body is encrypted straight into the message's temp file
segment by segment, and the header is rewritten in place once the body length and the
wraps bound to it exist. So a body is never held twice in memory nor staged in a second
file, and never hashed: in envelope v2 the authenticated cipher alone vouches for a
sealed body (``fedbox.rpc.envelope``).

A broadcast encrypts the body once (:meth:`Sealer.encrypt_into` into a blob that every
recipient's message refers to, ``body_ref``); each message has its own header with wraps
of the same content key (:meth:`Sealer.wrap_for`). Blobs inside a parts body (shared
models, chunks: ``fedbox.rpc.parts``) are encrypted under keys of their own, derived from
their plaintext digest and this box's blob secret (:meth:`Sealer.blob_key`), so resending
the same data produces the same ciphertext and an interrupted transfer can resume.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from fedbox.crypto import (
    SEGMENT_SIZE,
    TAG_SIZE,
    DecryptingReader,
    Identity,
    PublicBundle,
    Readable,
    TrustStore,
    bundle_from_did,
    ciphertext_size,
    did_document,
    enc_header,
    encrypt_body,
    header_aad,
    new_body_keys,
    open_sealed,
    open_sealed_reader,
    wrap_keys,
)
from fedbox.datasite.paths import datasite_dir
from fedbox.datasite.permission_files import PUBLIC_READ
from fedbox.datasite.workspace import create_private_dir
from fedbox.errors import PERMISSION_FILE, CryptoError, DecryptError, NotFound
from fedbox.rpc._buffers import BufferWriter
from fedbox.rpc.body import PiecesReader
from fedbox.rpc.envelope import Header, write_head, write_streamed
from fedbox.store import Store

__all__ = ["DID_FILE", "BodyKey", "Sealer", "did_path", "publish_keys", "read_published"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_BLOB_SECRET = "blob-secret"
_BLOB_KEY_LABEL = b"fedbox/blob-key/v1"
# Placeholder wrap values of the real values' JSON size (base64 of 32 and 48 bytes).
_EPHEMERAL_PLACEHOLDER = "A" * 44
_WRAPPED_PLACEHOLDER = "A" * 64
_NONCE_PREFIX_PLACEHOLDER = bytes(7)


DID_FILE = "did.json"
"""The name of the file that holds an identity's public keys (see :func:`did_path`)."""


@functools.lru_cache(maxsize=65536)
def did_path(email: str) -> str:
    """``datasites/{email}/public/did.json``: where an identity's public keys are published.
    Remembered: asked for every message sent or opened."""
    return str(datasite_dir(email) / "public" / DID_FILE)


def publish_keys(store: Store, identity: Identity) -> str:
    """Write ``identity``'s DID document to the store unless it is already there; its path.

    Peers must be able to read it, and a store that enforces permission files (a hub)
    hides an owner's files unless one grants read: so the ``public/`` folder gets a
    ``syft.pub.yaml`` letting everyone read it, unless the owner already wrote one.
    """
    path = did_path(identity.email)
    grant = str(datasite_dir(identity.email) / "public" / PERMISSION_FILE)
    if not store.exists(grant):
        store.put(grant, PUBLIC_READ.encode())
    data = (json.dumps(did_document(identity.public_bundle()), indent=2) + "\n").encode()
    try:
        if store.read(path) == data:
            return path
    except NotFound:
        pass
    store.put(path, data)
    logger.info("published public keys of %s at %s", identity.email, path)
    return path


def read_published(store: Store, email: str) -> PublicBundle:
    """The verified bundle published for ``email``; CryptoError naming the file if unusable."""
    path = did_path(email)
    try:
        raw = store.read(path)
    except NotFound as exc:
        raise CryptoError(
            f"{email} has no published keys: {path} is not in the store. They must connect "
            f"with encryption on (or run `fedbox keys init --root ROOT --email {email}`) "
            "before anyone can encrypt to them",
            path=path,
        ) from exc
    try:
        return bundle_from_did(json.loads(raw), email)
    except ValueError as exc:  # JSONDecodeError
        raise CryptoError(f"public keys of {email} in {path} are not JSON: {exc}", path) from exc
    except CryptoError as exc:
        if exc.path is None:
            exc.path = path
        raise


@dataclass(frozen=True, slots=True)
class BodyKey:
    """The content key of one encrypted body, kept only while a broadcast is written."""

    content_key: bytes
    nonce_prefix: bytes
    segment_size: int = SEGMENT_SIZE

    @classmethod
    def new(cls) -> BodyKey:
        content_key, nonce_prefix = new_body_keys()
        return cls(content_key, nonce_prefix)

    def __repr__(self) -> str:
        return "BodyKey(<secret>)"


class Sealer:
    """The encryption side of one box: its identity, its pins, the peers' bundles.

    Bundles are cached per sealer (so per box, never per module) together with the size
    and mtime of the ``did.json`` they came from; a changed file (a rotated prekey, reset
    keys) is re-read and checked against the pin again. Thread-safe.
    """

    def __init__(
        self, store: Store, state_dir: Path, email: str, *, require_pinned: bool = False
    ) -> None:
        self.store = store
        self.email = email
        self.require_pinned = require_pinned
        """Refuse peers without a pin (UntrustedKey) instead of pinning them on first use."""
        self._state_dir = Path(state_dir)
        self.identity = Identity.load_or_create(self._state_dir, email)
        self._own: tuple[Identity, tuple[str, ...], PublicBundle] | None = None
        self.trust = TrustStore(self._state_dir)
        self._bundles: dict[str, tuple[tuple[int, float], PublicBundle]] = {}
        self._local_paths: dict[str, Path | None] = {}  # of bundles, on a local store
        self._lock = threading.Lock()
        self._blob_secret: bytes | None = None
        publish_keys(store, self.identity)

    def __repr__(self) -> str:
        return f"<Sealer {self.email} {self.identity.public_bundle().fingerprint}>"

    # -- keys ------------------------------------------------------------------------

    def bundle(self, email: str, *, refresh: bool = False) -> PublicBundle:
        """``email``'s published bundle, verified and checked against the pin.

        CryptoError if they published none (the message names the missing file) or it is
        malformed; UntrustedKey if their identity key differs from the pinned one, or if
        they have no pin and :attr:`require_pinned` is set.
        """
        if email == self.email:
            return self._own_bundle(self.identity)
        path = did_path(email)
        stamp = self._stamp(path)
        with self._lock:
            cached = self._bundles.get(email)
        if cached is not None and not refresh and stamp is not None and cached[0] == stamp:
            return cached[1]
        with self._lock:
            self._bundles.pop(email, None)
        bundle = read_published(self.store, email)
        if self.trust.check(bundle, require_pinned=self.require_pinned):
            _warn_first_contact(self.email, bundle)
        if stamp is not None:
            with self._lock:
                self._bundles[email] = (stamp, bundle)
        return bundle

    def _own_bundle(self, me: Identity) -> PublicBundle:
        """``me.public_bundle()``, re-signed only when the identity or its prekeys change."""
        own = self._own
        if own is None or own[0] is not me or own[1] != me.prekey_ids:
            own = self._own = (me, me.prekey_ids, me.public_bundle())
        return own[2]

    def _stamp(self, path: str) -> tuple[int, float] | None:
        """Size and mtime of the file at ``path``, or None. Asked for every message: on a
        local folder it is one ``lstat`` (a listing took a dozen calls; a twentieth of
        a message's cost at a thousand clients, issue 20). It only says whether to read
        the file again, which :func:`read_published` then does through the store."""
        try:
            local = self._local_paths[path]
        except KeyError:  # a remote store's None is remembered too
            local = self._local_paths[path] = self.store.local_path(path)
        if local is not None:
            try:
                st = os.lstat(local)
            except OSError:
                return None
            return (st.st_size, st.st_mtime) if stat.S_ISREG(st.st_mode) else None
        folder, name = path.rsplit("/", 1)
        for entry in self.store.list(folder, name):
            if entry.path == path:
                return entry.size, entry.mtime
        return None

    def _reload_identity(self) -> Identity:
        """Our keys as on disk now: ``fedbox keys rotate`` may have run in another process."""
        if (self._state_dir / "keys" / "identity.json").exists():
            reloaded = Identity.load_or_create(self._state_dir, self.email)
            if reloaded.prekey_ids != self.identity.prekey_ids:
                logger.info("reloaded keys of %s: prekeys %s", self.email, reloaded.prekey_ids)
                self.identity = reloaded
        return self.identity

    def rotate(self) -> str:
        """Rotate the prekey (old ones are kept for messages in flight), republish; new id."""
        self.identity.rotate_prekey()
        publish_keys(self.store, self.identity)
        return self.identity.prekey_id

    def blob_key(self, plain_sha256: bytes) -> bytes:
        """The content key of a blob whose plaintext has this SHA-256: HMAC-SHA256 under a
        secret that never leaves this state dir. One key encrypts one plaintext only (a
        fixed nonce prefix is then safe), and the same plaintext always gets the same
        ciphertext, so blobs already delivered are recognised by name (issue 6). Readers
        learn the key from the parts table, inside the encrypted body.
        """
        secret = self._blob_secret
        if secret is None:
            secret = self._blob_secret = _load_or_create_secret(
                self._state_dir / "keys" / _BLOB_SECRET
            )
        return hmac.new(secret, _BLOB_KEY_LABEL + plain_sha256, hashlib.sha256).digest()

    # -- writing ---------------------------------------------------------------------

    def _readers(self, me: Identity, recipient: PublicBundle) -> list[PublicBundle]:
        readers = {recipient.email: recipient}
        readers.setdefault(me.email, self._own_bundle(me))
        return list(readers.values())

    def _enc(
        self, me: Identity, key: BodyKey, header: Header, readers: list[PublicBundle]
    ) -> dict[str, Any]:
        aad = header_aad(header.model_dump())
        wraps = wrap_keys(
            key.content_key,
            sender=me,
            recipients=readers,
            aad=aad,
            nonce_prefix=key.nonce_prefix,
        )
        return enc_header(key.nonce_prefix, key.segment_size, wraps)

    def _sealed(
        self, me: Identity, key: BodyKey, header: Header, readers: list[PublicBundle], size: int
    ) -> dict[str, Any]:
        """The header fields of a body sealed under ``key`` into ``size`` bytes."""
        fields = {"body_len": size, "body_sha256": ""}
        return {**fields, "enc": self._enc(me, key, header.model_copy(update=fields), readers)}

    def encrypt_into(
        self, f: BinaryIO, header: Header, body: bytes | Readable, recipient: PublicBundle
    ) -> tuple[Header, BodyKey]:
        """Write ``header`` and ``body`` encrypted for ``recipient`` and us; one pass.

        Returns the final header and the content key (drop it afterwards). ``f`` must be
        seekable and positioned where the envelope starts.
        """
        me = self.identity
        readers = self._readers(me, recipient)
        key = BodyKey.new()
        # A body in memory is encrypted in place (no copy). No digest of the ciphertext:
        # in envelope v2 the AEAD alone vouches for it (see fedbox.rpc.envelope).
        size = _plain_size(body)
        if size is not None:  # the header is final before the body: written once
            sealed = self._sealed(me, key, header, readers, ciphertext_size(size, key.segment_size))
            final = header.model_copy(update=sealed)
            write_head(f, final)
            written = encrypt_body(
                body, f, key.content_key, nonce_prefix=key.nonce_prefix, size=size
            )
            if written != final.body_len:
                raise RuntimeError(f"the body was {size} bytes, then {written} when encrypted")
            return final, key

        def write_body(out: BinaryIO) -> dict[str, Any]:
            size = encrypt_body(body, out, key.content_key, nonce_prefix=key.nonce_prefix)
            return self._sealed(me, key, header, readers, size)

        final = write_streamed(f, header, write_body, reserve={"enc": _placeholder_enc(readers)})
        return final, key

    def encrypt_shared(self, body: bytes | bytearray | memoryview) -> tuple[bytearray, BodyKey]:
        """``body`` encrypted once, in memory, under a fresh content key: the blob of a
        broadcast. Each recipient's header then gets wraps of that key (:meth:`wrap_for`).
        """
        key = BodyKey.new()
        out = bytearray(ciphertext_size(len(body), key.segment_size))
        written = encrypt_body(
            io.BytesIO(body),
            BufferWriter(out),
            key.content_key,
            nonce_prefix=key.nonce_prefix,
            segment_size=key.segment_size,
        )
        assert written == len(out)
        return out, key

    def wrap_for(self, header: Header, key: BodyKey, recipient: PublicBundle) -> dict[str, Any]:
        """The ``enc`` of ``header`` (its ``body_*`` fields final): ``key`` wrapped for
        ``recipient`` and us, bound to the header."""
        me = self.identity
        return self._enc(me, key, header, self._readers(me, recipient))

    # -- reading ---------------------------------------------------------------------

    def open_body(self, f: io.BufferedIOBase, header: Header, *, path: str | None = None) -> bytes:
        """The plaintext of an encrypted message; ``f`` is positioned after the header.

        Raises DecryptError if it does not open (tampered header, wrap, segment or tag, a
        digest mismatch, not encrypted for us, trailing bytes), UntrustedKey if the sender's
        identity key differs from the pinned one, CryptoError if the sender has no usable
        published keys. Plaintext is returned only once the whole body authenticated.

        On a first DecryptError our keys and the sender's are re-read once, and the body
        opened again only if either changed: ``fedbox keys rotate`` may have given us a
        prekey in another process since we loaded ours, or the sender republished.
        """
        hdr = header.model_dump()
        try:
            return self._with_fresh_keys(
                f, header.sender, lambda me, sender: self._open(f, hdr, me, sender)
            )
        except CryptoError as exc:
            exc.path = exc.path or path
            exc.message_id = exc.message_id or header.id
            raise

    def open_body_stream(
        self, f: io.BufferedIOBase, header: Header, *, path: str | None = None
    ) -> DecryptingReader | None:
        """:meth:`open_body` as a stream: a reader that decrypts the body segment by
        segment into the caller's buffers, so the plaintext is never held whole here.
        Its first segment is authenticated now (with the same retry as ``open_body``);
        the rest, the length and ``body_sha256`` as it is read, the last read raising
        DecryptError if anything is wrong. None if ``f`` cannot seek (use ``open_body``).
        """
        available = _remaining(f)
        if available is None:
            return None
        hdr = header.model_dump()
        try:
            reader = self._with_fresh_keys(
                f,
                header.sender,
                lambda me, sender: open_sealed_reader(f, me=me, sender=sender, header=hdr),
            )
            # The reader's length comes from the (authenticated) header: refuse now a
            # file that cannot hold it, before anyone allocates that much for the body.
            if reader.ciphertext_len != available:
                reader.close()
                if reader.ciphertext_len > available:
                    raise DecryptError(
                        f"body is truncated: the file holds {available} of its "
                        f"{reader.ciphertext_len} bytes"
                    )
                raise DecryptError("file has bytes after the body")
            return reader
        except CryptoError as exc:
            exc.path = exc.path or path
            exc.message_id = exc.message_id or header.id
            raise

    def _with_fresh_keys(
        self,
        f: io.BufferedIOBase,
        sender_email: str,
        open_with: Callable[[Identity, PublicBundle], T],
    ) -> T:
        """``open_with(our identity, the sender's bundle)``; on a DecryptError, once more
        from the same place in ``f`` with both keys re-read, if either changed."""
        start = f.tell()
        me, sender = self.identity, self.bundle(sender_email)
        try:
            return open_with(me, sender)
        except DecryptError:
            fresh_me = self._reload_identity()
            fresh_sender = self.bundle(sender_email, refresh=True)
            if fresh_me is me and fresh_sender == sender:
                raise
            f.seek(start)
            return open_with(fresh_me, fresh_sender)

    def _open(
        self, f: io.BufferedIOBase, hdr: dict[str, Any], me: Identity, sender: PublicBundle
    ) -> bytes:
        size = _plaintext_size(hdr["body_len"], hdr["enc"], _remaining(f))
        out = io.BytesIO()
        if size is None:  # not seekable: grow as the segments come
            written = open_sealed(f, out, me=me, sender=sender, header=hdr)
        else:
            # Sized up front and decrypted straight into the BytesIO's own buffer, with no
            # copy per segment; getvalue() then hands over that buffer itself, so the
            # plaintext exists once. (Growing a BytesIO segment by segment would copy it
            # again and again: 16 MiB in 22 ms instead of 2.)
            if size:
                out.seek(size - 1)
                out.write(b"\0")
            with out.getbuffer() as view:
                written = open_sealed(f, view, me=me, sender=sender, header=hdr)
        if f.read(1):
            raise DecryptError("file has bytes after the body")
        if size is not None and written != size:
            raise DecryptError(f"body decrypted to {written} bytes, expected {size}")
        return out.getvalue()


def _warn_first_contact(me: str, peer: PublicBundle) -> None:
    """Trust on first use pins whoever wrote the peer's ``did.json`` first, which may be
    anyone who can write the store: say so where an operator will see it (issue 11)."""
    logger.warning(
        "first contact with %s: pinned their identity key %s as found in the store, not "
        "verified. Check it with them (they see theirs with "
        "`fedbox keys show --root ROOT --email %s`); "
        "if it differs, pin the right one with `fedbox keys trust %s FINGERPRINT --email %s`. "
        "require_pinned=True (`fedbox run --require-pinned`) refuses peers nobody pinned.",
        peer.email,
        peer.fingerprint,
        peer.email,
        peer.email,
        me,
    )


def _load_or_create_secret(path: Path) -> bytes:
    """32 random bytes kept at ``path`` (0600), created atomically on first use."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        create_private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces a secret another process created first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        data = path.read_bytes()
    if len(data) != 32:
        raise CryptoError(f"blob secret {path} is damaged ({len(data)} bytes, expected 32)")
    return data


def _remaining(f: io.BufferedIOBase) -> int | None:
    """Bytes from the current position to the end of ``f``; None if it cannot seek."""
    try:
        here = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(here)
    except (OSError, ValueError):
        return None
    return end - here


def _plaintext_size(body_len: int, enc: Any, available: int | None) -> int | None:
    """The plaintext size a ciphertext of ``body_len`` bytes decrypts to, never more than
    ``available`` bytes could (a hostile ``body_len`` must not make us allocate); None if
    unknown."""
    segment = enc.get("segment_size") if isinstance(enc, dict) else None
    if available is None or isinstance(segment, bool) or not isinstance(segment, int):
        return None
    if segment < 1:
        return None
    length = max(0, min(body_len, available))
    chunk = segment + TAG_SIZE
    return max(0, length - -(-length // chunk) * TAG_SIZE)


def _plain_size(body: bytes | Readable) -> int | None:
    """The size of a body whose size is known before it is read (in memory, or pieces)."""
    if isinstance(body, bytes | bytearray | memoryview):
        return memoryview(body).nbytes
    if isinstance(body, PiecesReader):
        return body.size
    return None


def _placeholder_enc(readers: list[PublicBundle]) -> dict[str, Any]:
    """An ``enc`` whose JSON has the size of the real one, to reserve header space."""
    wraps = [
        {
            "to": r.email,
            "prekey_id": r.prekey_id,
            "ephemeral": _EPHEMERAL_PLACEHOLDER,
            "wrapped": _WRAPPED_PLACEHOLDER,
        }
        for r in readers
    ]
    return enc_header(_NONCE_PREFIX_PLACEHOLDER, SEGMENT_SIZE, wraps)
