"""Atomic file creation in a folder held open: temp file beside the target, fsync, rename.

Everything here works relative to a folder descriptor (see :mod:`fedbox.store._beneath`),
so no name is ever resolved through a link someone planted meanwhile.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

__all__ = [
    "TEMP_MARK",
    "atomic_file",
    "copy_contents",
    "create_temp",
    "is_temp_name",
    "temp_name",
    "write_all",
]

COPY_CHUNK = 1 << 20
TEMP_MARK = ".tmp-"
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FICLONE = 0x40049409
"""Linux ``ioctl`` making one file share another's blocks, copy-on-write (btrfs, XFS, …)."""
_NO_CLONE = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
)


def temp_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}{TEMP_MARK}{secrets.token_hex(6)}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


def create_temp(dir_fd: int, name: str) -> tuple[int, str]:
    """A new, empty temp file for ``name`` in the folder ``dir_fd``: (descriptor, name).

    FileNotFoundError if the folder was removed after it was opened (a cleanup that
    emptied it): the caller opens the folder again.
    """
    tmp = temp_name(name)
    return os.open(tmp, _CREATE, 0o666, dir_fd=dir_fd), tmp


@contextmanager
def atomic_file(
    dir_fd: int, fd: int, tmp: str, name: str, *, fsync: bool = True
) -> Iterator[BinaryIO]:
    """The temp file ``fd`` (from :func:`create_temp`) as a seekable file that appears
    as ``name`` whole when the block exits cleanly.

    On an exception the temp file is removed and ``name`` is untouched. With ``fsync``
    (``dir_fd`` then open for reading) the folder is fsync'd after the rename too, so a
    crash cannot lose a file a peer was told about.
    """
    try:
        with os.fdopen(fd, "wb+") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if fsync:
        os.fsync(dir_fd)


def write_all(f: BinaryIO, data: bytes | BinaryIO) -> None:
    """Bytes, or a whole stream, into ``f``."""
    if isinstance(data, bytes | bytearray | memoryview):
        f.write(data)
    else:
        shutil.copyfileobj(data, f, COPY_CHUNK)


def copy_contents(src: int, dst: int) -> bool:
    """Give the empty file ``dst`` the bytes of ``src`` without passing them through
    Python: a reflink where the filesystem shares blocks (True), else an in-kernel copy
    (``copy_file_range``), else a plain read and write (False).

    Either way ``dst`` is a file of its own: writing one never changes the other.
    """
    try:
        fcntl.ioctl(dst, _FICLONE, src)
    except OSError as exc:
        if exc.errno not in _NO_CLONE:
            raise
    else:
        return True
    os.lseek(src, 0, os.SEEK_SET)
    if hasattr(os, "copy_file_range"):
        try:
            while os.copy_file_range(src, dst, 1 << 30):
                pass
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
            os.lseek(src, 0, os.SEEK_SET)
            os.ftruncate(dst, 0)
            os.lseek(dst, 0, os.SEEK_SET)
        else:
            return False
    while chunk := os.read(src, COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
    return False
