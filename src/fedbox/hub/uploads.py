"""Resumable uploads: the state in the database, the bytes in the blob store, committed whole.

Semantics after tus (``HEAD`` for the offset, ``PATCH`` to append at it): a client that
dies half-way asks again for the same (path, size) and gets the same upload back with the
bytes already there, so it sends only the rest. Nothing is visible at ``path`` until the
commit, which checks the size and the digest (if given) of the assembled file and goes
through the same conditional, quota-checked write as a plain PUT.

Every ``PATCH`` body becomes one part: a blob of its own (an object in the bucket when
blobs are on S3), recorded in ``upload_parts`` only if nobody appended at its offset
meanwhile. So no hub process holds anything of an upload: a client may resume on any of
them, and bytes received before a cut connection stay. The commit joins the parts, in
order, into the file's blob while hashing them (a local folder writes each part in place
in one file per upload, so joining is a rename), then removes them.

An upload that received no bytes for ``expiry`` seconds is abandoned: its rows and parts
are removed the next time any hub process starts an upload (and when one starts), so a
client that never came back does not hold the hub's storage forever.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update

from fedbox.errors import FedboxError, NotFound
from fedbox.hub.blobs import BlobWriter
from fedbox.hub.index import Condition, FileIndex, FileRow
from fedbox.hub.schema import WRITE, upload_parts, uploads

__all__ = ["DEFAULT_UPLOAD_EXPIRY", "Upload", "UploadMismatch", "Uploads"]

logger = logging.getLogger(__name__)

DEFAULT_UPLOAD_EXPIRY = 86400.0
"""Seconds an unfinished upload may go without receiving bytes before it is removed."""


class UploadMismatch(FedboxError):
    """An append at the wrong offset, past the declared size, or a commit of a short or
    wrongly hashed upload (409)."""


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    path: str
    writer: str
    size: int
    offset: int


def _parts_of(conn: Connection, upload_ids: Sequence[str]) -> list[str]:
    """Delete the part rows of ``upload_ids``; their blob keys, to remove once committed."""
    keys = list(
        conn.execute(
            select(upload_parts.c.blob).where(upload_parts.c.upload_id.in_(upload_ids))
        ).scalars()
    )
    conn.execute(delete(upload_parts).where(upload_parts.c.upload_id.in_(upload_ids)))
    return keys


class Uploads:
    def __init__(
        self, engine: Engine, index: FileIndex, expiry: float = DEFAULT_UPLOAD_EXPIRY
    ) -> None:
        self._engine = engine
        self._index = index
        self._blobs = index.blobs
        self._expiry = expiry

    def expire(self) -> int:
        """Remove the uploads idle for longer than the expiry, parts and all; how many.
        An append recording a part holds its upload's row, so it either lands first (and
        the upload is no longer idle) or finds the upload gone."""
        cutoff = time.time() - self._expiry
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            stale = list(
                conn.execute(
                    delete(uploads).where(uploads.c.touched < cutoff).returning(uploads.c.id)
                ).scalars()
            )
            keys = _parts_of(conn, stale) if stale else []
        for key in set(keys):
            self._blobs.delete(key)
        if stale:
            logger.info("removed %d upload(s) idle for over %.0f s", len(stale), self._expiry)
        return len(stale)

    def start(self, path: str, writer: str, size: int) -> Upload:
        """The writer's unfinished upload of ``size`` bytes to ``path``, or a new one
        (abandoned uploads are removed first)."""
        self.expire()
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            row = conn.execute(
                select(uploads).where(
                    uploads.c.writer == writer, uploads.c.path == path, uploads.c.size == size
                )
            ).first()
            if row is not None:
                return Upload(row.id, row.path, row.writer, row.size, row.received)
            upload_id = secrets.token_hex(16)
            now = time.time()
            conn.execute(
                insert(uploads).values(
                    id=upload_id, path=path, writer=writer, size=size, created=now,
                    received=0, touched=now,
                )
            )  # fmt: skip
        return Upload(upload_id, path, writer, size, 0)

    def get(self, upload_id: str, writer: str) -> Upload:
        """The upload, if it is this writer's (anyone else's answers as missing)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(uploads).where(uploads.c.id == upload_id, uploads.c.writer == writer)
            ).first()
        if row is None:
            raise NotFound("not found", upload_id)
        return Upload(row.id, row.path, row.writer, row.size, row.received)

    def new_part(self, upload: Upload, offset: int) -> BlobWriter:
        """A blob to receive the bytes appended at ``offset`` (409 unless that is where
        the upload ends now)."""
        if offset != upload.offset:
            raise UploadMismatch(f"Upload-Offset {offset} is not the hub's offset {upload.offset}")
        return self._blobs.part(upload.id, offset)

    def add_part(self, upload: Upload, offset: int, part: BlobWriter, length: int) -> int:
        """Make the ``length`` bytes written to ``part`` the upload's bytes from ``offset``;
        the upload's new offset. 409 if another append (on any hub process) got there
        first: the part is dropped and the client asks for the offset again."""
        if length == 0:
            part.discard()
            return offset
        part.finish()
        try:
            with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
                received = conn.execute(
                    select(uploads.c.received).where(uploads.c.id == upload.id).with_for_update()
                ).scalar()
                if received is None:
                    raise NotFound("not found", upload.id)
                if received != offset:
                    raise UploadMismatch(
                        f"another append reached offset {received} first; ask for the offset"
                    )
                conn.execute(
                    insert(upload_parts).values(
                        upload_id=upload.id, start=offset, size=length, blob=part.key
                    )
                )
                conn.execute(
                    update(uploads)
                    .where(uploads.c.id == upload.id)
                    .values(received=offset + length, touched=time.time())
                )
        except BaseException:
            if not self._holds_parts(part.key):  # a local folder keeps all parts in one file
                self._blobs.delete(part.key)
            raise
        return offset + length

    def _holds_parts(self, key: str) -> bool:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(upload_parts.c.blob).where(upload_parts.c.blob == key).limit(1)
            ).first()
        return found is not None

    def commit(self, upload: Upload, condition: Condition, sha256: str | None) -> FileRow:
        """Assemble the parts into the file's blob, checking size and digest, and write it
        at the upload's path. A wrong digest leaves the upload as it was; any other
        failure after the check ends it."""
        if upload.offset != upload.size:
            raise UploadMismatch(f"the upload has {upload.offset} of {upload.size} bytes")
        with self._engine.connect() as conn:
            parts = list(
                conn.execute(
                    select(upload_parts.c.blob)
                    .where(upload_parts.c.upload_id == upload.id)
                    .order_by(upload_parts.c.start)
                ).scalars()
            )

        def declared(actual: str) -> None:
            if sha256 is not None and sha256.lower() != actual:
                raise UploadMismatch(f"the upload's SHA-256 is {actual}, not {sha256}")

        blob, actual = self._blobs.join(parts, upload.size, declared)
        try:
            self.forget(upload)  # NotFound if a concurrent commit or the expiry took it
            return self._index.put(upload.path, upload.writer, blob, upload.size, actual, condition)
        except BaseException:
            self._blobs.delete(blob)
            raise

    def forget(self, upload: Upload) -> None:
        """End the upload and remove its parts (NotFound if it is gone already)."""
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            gone = conn.execute(delete(uploads).where(uploads.c.id == upload.id)).rowcount
            if not gone:
                raise NotFound("not found", upload.id)
            keys = _parts_of(conn, [upload.id])
        for key in set(keys):  # a local folder keeps an upload's parts in one file
            self._blobs.delete(key)
