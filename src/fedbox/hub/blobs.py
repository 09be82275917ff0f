"""Where file contents live: one blob per file version (and per part of an unfinished
resumable upload), named by a random key.

The hub needs little from a blob store, so a local folder implements it here and
:class:`FsspecBlobs` does for an fsspec URL (``s3://...``). A blob is written under a
temporary name, and made final before its metadata row (``files``, ``upload_parts``) is
committed; one that never got a row is an orphan to delete, never a visible half-file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

__all__ = ["BlobWriter", "Blobs", "FsspecBlobs", "LocalBlobs", "open_blobs"]


class BlobWriter(Protocol):
    """A blob being written; ``finish`` makes it final under ``key``, ``discard`` drops it."""

    key: str

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def discard(self) -> None: ...


class Blobs(Protocol):
    def create(self) -> BlobWriter: ...

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        """FileNotFoundError if the blob is gone (its version was replaced meanwhile),
        raised by the open or, when ``size`` (the blob's, as recorded) is given, perhaps
        only by the first read: an object store then skips looking the object up."""
        ...

    def copy(self, key: str) -> str:
        """A new blob with the same bytes; its key."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob; no error if it is already gone."""
        ...

    def part(self, upload: str, start: int) -> BlobWriter:
        """A writer of resumable upload ``upload``'s bytes from offset ``start``, kept under
        its ``key`` once finished: a blob of its own, or (a local folder) that range of one
        file per upload, which the commit then only renames."""
        ...

    def join(self, parts: list[str], size: int, check: Callable[[str], None]) -> tuple[str, str]:
        """A new blob holding the first ``size`` bytes of the parts, in order; its key and
        SHA-256. ``check(sha256)`` runs before the blob is made: if it raises, nothing is
        made and the parts stay as they were."""
        ...

    def signed_url(self, key: str, expires: int) -> str | None:
        """A URL that lets its holder GET the blob for ``expires`` seconds without the
        hub, or None where the store has no such thing (a local folder)."""
        ...


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class _LocalWriter:
    """Plain system calls on a file descriptor, no buffered file object: a burst of small
    blobs paid for the buffer's set-up calls (tty check, seeks, stat) on every one."""

    def __init__(self, root: str, key: str) -> None:
        self.key = key
        self._final = os.path.join(root, key[:2], key)
        self._temp = os.path.join(root, "tmp", key)
        self._fd = os.open(self._temp, _CREATE, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def finish(self) -> None:
        os.fsync(self._fd)
        self._close()
        try:
            os.replace(self._temp, self._final)
        except FileNotFoundError:  # the first blob under its prefix: make the folder
            os.makedirs(os.path.dirname(self._final), exist_ok=True)
            os.replace(self._temp, self._final)

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)

    def _close(self) -> None:
        """Once only: a closed descriptor's number may already be another file's."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _join_by_copy(blobs: Blobs, parts: list[str], check: Callable[[str], None]) -> tuple[str, str]:
    """``join`` for blob stores that cannot rename parts into one: stream them into a new
    blob, hashing on the way."""
    digest = hashlib.sha256()
    writer = blobs.create()
    try:
        for key in parts:
            with blobs.open(key) as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    writer.write(chunk)
        check(digest.hexdigest())
        writer.finish()
    except BaseException:
        writer.discard()
        raise
    return writer.key, digest.hexdigest()


class _LocalPartWriter:
    """Bytes of an upload written in place, at their offset in the upload's one file."""

    def __init__(self, path: Path, start: int) -> None:
        self.key = path.name
        path.parent.mkdir(exist_ok=True)
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644), "wb")
        self._file.seek(start)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def finish(self) -> None:
        self._file.close()

    def discard(self) -> None:
        # What was written past the upload's recorded end is overwritten by the next part
        # and cut off by the commit.
        self._file.close()


class LocalBlobs:
    """Blobs as files under a folder: ``{key[:2]}/{key}``, temporaries in ``tmp/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        # Temporaries left by a killed hub never got a metadata row: nothing refers to them.
        for orphan in (self.root / "tmp").iterdir():
            orphan.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def create(self) -> _LocalWriter:
        return _LocalWriter(str(self.root), secrets.token_hex(16))

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        return open(self._path(key), "rb")

    def copy(self, key: str) -> str:
        new = secrets.token_hex(16)
        target = self._path(new)
        target.parent.mkdir(exist_ok=True)
        os.link(self._path(key), target)
        return new

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def part(self, upload: str, start: int) -> _LocalPartWriter:
        return _LocalPartWriter(self._path(f"upload-{upload}"), start)

    def join(self, parts: list[str], size: int, check: Callable[[str], None]) -> tuple[str, str]:
        if not parts:
            return _join_by_copy(self, parts, check)
        (staged,) = set(parts)  # every part of an upload is a range of its one file
        path = self._path(staged)
        digest = hashlib.sha256()
        with open(path, "rb+") as f:
            left = size
            while left and (chunk := f.read(min(1 << 20, left))):
                digest.update(chunk)
                left -= len(chunk)
            check(digest.hexdigest())
            f.truncate(size)
            os.fsync(f.fileno())
        key = secrets.token_hex(16)
        target = self._path(key)
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
        return key, digest.hexdigest()

    def signed_url(self, key: str, expires: int) -> str | None:
        return None


class _FsspecWriter:
    def __init__(self, fs: Any, path: str, key: str) -> None:
        self.key = key
        self._fs = fs
        self._path = path
        self._file = fs.open(path, "wb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def finish(self) -> None:
        # Object stores publish an object only when its upload completes.
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self._fs.rm_file(self._path)


class FsspecBlobs:
    """Blobs as objects under an fsspec URL (``s3://bucket/prefix``)."""

    def __init__(self, url: str, **options: Any) -> None:
        import fsspec  # the `remote` extra

        self._fs, self._root = fsspec.core.url_to_fs(url, **options)

    def _path(self, key: str) -> str:
        return f"{self._root}/{key[:2]}/{key}"

    def create(self) -> _FsspecWriter:
        key = secrets.token_hex(16)
        return _FsspecWriter(self._fs, self._path(key), key)

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        known = {} if size is None else {"size": size}  # no HEAD request before the GET
        return cast(BinaryIO, self._fs.open(self._path(key), "rb", **known))

    def copy(self, key: str) -> str:
        new = secrets.token_hex(16)
        self._fs.copy(self._path(key), self._path(new))
        return new

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(key))

    def part(self, upload: str, start: int) -> _FsspecWriter:
        return self.create()

    def join(self, parts: list[str], size: int, check: Callable[[str], None]) -> tuple[str, str]:
        return _join_by_copy(self, parts, check)

    def signed_url(self, key: str, expires: int) -> str | None:
        try:
            return str(self._fs.sign(self._path(key), expiration=expires))
        except NotImplementedError:  # a backend without presigned URLs
            return None


def open_blobs(location: str, options: dict[str, Any] | None = None) -> Blobs:
    """The blob store a ``--blobs`` value names: a folder, or an fsspec URL (``options``
    are its storage options)."""
    if "://" in location and not location.startswith("file://"):
        return FsspecBlobs(location, **(options or {}))
    return LocalBlobs(Path(location.removeprefix("file://")))
