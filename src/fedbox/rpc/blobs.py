"""Storing the blobs of outgoing messages: each once per store, linked where shared.

A batch of messages (a broadcast, or one message) gets one :class:`BlobStorer`. For each
blob it computes the name once (the SHA-256 of a plain blob's bytes; for a sealed blob a
digest of its key, :func:`sealed_blob_name`, so its ciphertext is never hashed: the
key is derived from the plaintext, so the name still stands for those exact bytes), then
for each recipient folder:

- a blob already there, of the right size and written less than ``reuse_for`` seconds
  ago, is left alone: this is what makes an interrupted chunked transfer resumable
  (issue 6), and what keeps the same model from being written twice;
- a blob already written for another recipient in this batch is copied without passing
  through Python again (``Store.link``: a reflink or in-kernel copy on a folder, a
  server-side copy on a remote store), never hard-linked, so no recipient can change
  another's copy (issue 11.11);
- otherwise its bytes are written, straight from the caller's buffers (encrypted on the
  way, segment by segment, when sealed).

Older blobs are rewritten rather than reused, so the cleanup job can judge a blob by its
age (``fedbox.rpc.cleanup``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from fedbox.crypto import SEGMENT_SIZE, ciphertext_size, encrypt_body
from fedbox.datasite.paths import blob_dir, blob_path
from fedbox.rpc.body import PiecesReader
from fedbox.rpc.parts import BlobSource, PartKind, PartRef
from fedbox.store import Store

if TYPE_CHECKING:
    from fedbox.rpc.sealing import Sealer

__all__ = [
    "BLOB_NONCE_PREFIX",
    "DEFAULT_BLOB_REUSE",
    "BlobStats",
    "BlobStorer",
    "sealed_blob_name",
]

logger = logging.getLogger(__name__)

DEFAULT_BLOB_REUSE = 3600.0
"""Seconds during which a blob found at the recipient is reused rather than rewritten."""
BLOB_NONCE_PREFIX = bytes(7)
"""Sealed blobs use a key of their own (derived from their plaintext), so a fixed prefix."""
_SEALED_NAME_LABEL = b"fedbox/sealed-blob-name/v1"


def sealed_blob_name(key: bytes) -> str:
    """The name of the sealed blob encrypted under ``key`` (envelope v2): a SHA-256 of the
    key, so it names one ciphertext (one key encrypts one plaintext, deterministically)
    and reveals nothing of the key. Readers check it against the key in the table; the
    cipher's tags vouch for the bytes."""
    return hashlib.sha256(_SEALED_NAME_LABEL + key).hexdigest()


class BlobStats:
    """What a batch did with its blobs: for logs, benchmarks and tests."""

    __slots__ = ("linked", "reused", "written", "written_bytes")

    def __init__(self) -> None:
        self.written = self.linked = self.reused = self.written_bytes = 0

    def __repr__(self) -> str:
        return (
            f"<BlobStats written={self.written} ({self.written_bytes} B) "
            f"linked={self.linked} reused={self.reused}>"
        )


class BlobStorer:
    """The blobs of one batch of messages from ``sender`` in ``app``."""

    def __init__(
        self,
        store: Store,
        sender: str,
        app: str,
        *,
        sealer: Sealer | None,
        clock: Callable[[], float],
        reuse_for: float = DEFAULT_BLOB_REUSE,
    ) -> None:
        self.store = store
        self.sender = sender
        self.app = app
        self.sealer = sealer
        self.clock = clock
        self.reuse_for = reuse_for
        self.stats = BlobStats()
        self._present: dict[str, dict[str, tuple[float, int]]] = {}

    def put(self, recipient: str, blob: BlobSource, *, sealed: bool) -> PartRef:
        """Make ``blob`` present in the folder read by ``recipient``, encrypted or not
        (``sealed`` needs a sealer); its table entry."""
        ref = blob.stored.get(sealed) or self._describe(blob, sealed)
        path = str(blob_path(self.sender, recipient, self.app, ref.digest))
        mtime, size = self._present_in(recipient).get(ref.digest, (None, None))
        first = blob.written_at.get(sealed)
        if mtime is not None and mtime > self.clock() - self.reuse_for and size == ref.stored_len:
            self.stats.reused += 1
            logger.debug("blob %s already at %s", ref.digest[:12], recipient)
        elif first is not None and first != path:
            self.store.link(first, path)
            self.stats.linked += 1
        else:
            self._write(path, blob, sealed)
        blob.written_at.setdefault(sealed, path)
        blob.cipher = None  # further copies link to a file: hold one chunk at a time
        self._present_in(recipient)[ref.digest] = (self.clock(), ref.stored_len)
        return ref

    def _present_in(self, recipient: str) -> dict[str, tuple[float, int]]:
        """Blob name -> (mtime, size) in ``recipient``'s folder, listed once per batch.

        The size is checked before a blob is reused: a store that let a short file
        appear under the final name (or someone who truncated it) gets it rewritten."""
        found = self._present.get(recipient)
        if found is None:
            folder = str(blob_dir(self.sender, recipient, self.app))
            found = {PurePosixPath(e.path).name: (e.mtime, e.size) for e in self.store.list(folder)}
            self._present[recipient] = found
        return found

    def _describe(self, blob: BlobSource, sealed: bool) -> PartRef:
        """Digests (and, sealed, the ciphertext) of ``blob``: computed once per batch."""
        if blob.plain_sha256 is None:
            digest = hashlib.sha256()
            for view in blob.buffers:
                digest.update(view)
            blob.plain_sha256 = digest.digest()
        if not sealed:
            ref = PartRef(PartKind.BLOB, blob.size, blob.size, blob.plain_sha256.hex())
        else:
            if self.sealer is None:
                raise RuntimeError("sealed blobs need a box connected with encrypt=True")
            key = self.sealer.blob_key(blob.plain_sha256)
            stored_len = ciphertext_size(blob.size, SEGMENT_SIZE)
            name = sealed_blob_name(key)
            ref = PartRef(PartKind.SEALED_BLOB, blob.size, stored_len, name, key, SEGMENT_SIZE)
        blob.stored[sealed] = ref
        return ref

    def _write(self, path: str, blob: BlobSource, sealed: bool) -> None:
        ref = blob.stored[sealed]
        with self.store.writer(path) as f:
            if blob.cipher is not None:  # a broadcast body, encrypted by its sender
                f.write(blob.cipher)
            elif sealed:
                written = encrypt_body(
                    PiecesReader(blob.buffers),
                    f,
                    ref.key,
                    nonce_prefix=BLOB_NONCE_PREFIX,
                    segment_size=ref.segment_size,
                )
                assert written == ref.stored_len
            else:
                for view in blob.buffers:
                    f.write(view)
        self.stats.written += 1
        self.stats.written_bytes += blob.stored[sealed].stored_len
        logger.debug("wrote blob %s (%d bytes)", path, blob.stored[sealed].stored_len)
