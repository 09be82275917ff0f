"""Resumable uploads: bytes staged on the hub's disk across requests, committed whole.

Semantics after tus (``HEAD`` for the offset, ``PATCH`` to append at it): a client that
dies half-way asks again for the same (path, size) and gets the same upload back with the
bytes already there, so it sends only the rest. Nothing is visible at ``path`` until the
commit, which checks the size (and digest, if given) and goes through the same
conditional, quota-checked write as a plain PUT.

An upload that received no bytes for ``expiry`` seconds is abandoned: its row and staged
bytes are removed the next time anyone starts an upload (and when the hub starts), so a
client that never came back does not hold the hub's disk forever.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, select

from fedbox.errors import FedboxError, NotFound
from fedbox.hub.index import Condition, FileIndex, FileRow
from fedbox.hub.schema import WRITE, uploads

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


class Uploads:
    def __init__(
        self,
        engine: Engine,
        index: FileIndex,
        staging: Path,
        expiry: float = DEFAULT_UPLOAD_EXPIRY,
    ) -> None:
        self._engine = engine
        self._index = index
        self._staging = staging
        self._expiry = expiry
        staging.mkdir(parents=True, exist_ok=True)
        self.expire()

    def expire(self) -> int:
        """Remove the uploads idle for longer than the expiry (no bytes arrived since: the
        staged file's modification time); how many."""
        cutoff = time.time() - self._expiry
        with self._engine.connect() as conn:
            rows = conn.execute(select(uploads.c.id, uploads.c.created)).all()
        stale = [row.id for row in rows if self._last_activity(row.id, row.created) < cutoff]
        if not stale:
            return 0
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            conn.execute(delete(uploads).where(uploads.c.id.in_(stale)))
        for upload_id in stale:
            self._file(upload_id).unlink(missing_ok=True)
        logger.info("removed %d upload(s) idle for over %.0f s", len(stale), self._expiry)
        return len(stale)

    def _last_activity(self, upload_id: str, created: float) -> float:
        """When bytes last arrived (the staged file is created with the upload)."""
        try:
            return self._file(upload_id).stat().st_mtime
        except FileNotFoundError:
            return created

    def _file(self, upload_id: str) -> Path:
        return self._staging / upload_id

    def _upload(self, row: Row[Any]) -> Upload:
        staged = self._file(row.id)
        offset = staged.stat().st_size if staged.exists() else 0
        return Upload(row.id, row.path, row.writer, row.size, offset)

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
                return self._upload(row)
            upload_id = secrets.token_hex(16)
            conn.execute(
                insert(uploads).values(
                    id=upload_id, path=path, writer=writer, size=size, created=time.time()
                )
            )
        self._file(upload_id).touch()
        return Upload(upload_id, path, writer, size, 0)

    def get(self, upload_id: str, writer: str) -> Upload:
        """The upload, if it is this writer's (anyone else's answers as missing)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(uploads).where(uploads.c.id == upload_id, uploads.c.writer == writer)
            ).first()
        if row is None:
            raise NotFound("not found", upload_id)
        return self._upload(row)

    def staged(self, upload: Upload) -> Path:
        return self._file(upload.id)

    def commit(self, upload: Upload, condition: Condition, sha256: str | None) -> FileRow:
        staged = self._file(upload.id)
        if upload.offset != upload.size:
            raise UploadMismatch(f"the upload has {upload.offset} of {upload.size} bytes")
        digest = hashlib.sha256()
        with open(staged, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        actual = digest.hexdigest()
        if sha256 is not None and sha256.lower() != actual:
            raise UploadMismatch(f"the upload's SHA-256 is {actual}, not {sha256}")
        key = self._index.blobs.adopt(staged)
        try:
            row = self._index.put(upload.path, upload.writer, key, upload.size, actual, condition)
        except BaseException:
            self._index.blobs.delete(key)
            self.forget(upload)
            raise
        self.forget(upload)
        return row

    def forget(self, upload: Upload) -> None:
        with self._engine.connect() as conn, conn.execution_options(**WRITE).begin():
            conn.execute(delete(uploads).where(uploads.c.id == upload.id))
        self._file(upload.id).unlink(missing_ok=True)
