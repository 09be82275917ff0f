"""Atomic file creation: temp file beside the target, fsync, rename."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "TEMP_MARK",
    "atomic_file",
    "atomic_link",
    "atomic_write",
    "is_temp_name",
    "temp_name",
    "temp_path_for",
]

_COPY_CHUNK = 1 << 20
TEMP_MARK = ".tmp-"


def temp_path_for(target: Path) -> Path:
    """A dot-file in the target's folder, so the rename never crosses filesystems."""
    return target.with_name(temp_name(target.name))


def temp_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}{TEMP_MARK}{secrets.token_hex(6)}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


@contextmanager
def atomic_file(target: Path, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """A seekable file that appears at ``target`` whole when the block exits cleanly.

    On an exception the temp file is removed and ``target`` is untouched. The folder is
    fsync'd after the rename too, so a crash cannot lose a file a peer was told about.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        with open(tmp, "xb+") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _rename_into_place(tmp, target, fsync=fsync)


def atomic_write(target: Path, data: bytes | BinaryIO, *, fsync: bool = True) -> None:
    """Write bytes or a whole stream to ``target`` atomically."""
    with atomic_file(target, fsync=fsync) as f:
        if isinstance(data, bytes | bytearray | memoryview):
            f.write(data)
        else:
            shutil.copyfileobj(data, f, _COPY_CHUNK)


def _rename_into_place(tmp: Path, target: Path, *, fsync: bool) -> None:
    """Make the finished ``tmp`` appear as ``target`` (removing it if that fails), and
    with ``fsync`` make the rename itself durable."""
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_link(src: Path, target: Path, *, fsync: bool = True) -> bool:
    """Hard-link ``src`` at ``target`` (replacing it); True if linked, False if copied.

    The link is made under a temp name and renamed, so ``target`` never shows half a
    file. Where the filesystem has no hard links (some FUSE, SMB and FAT mounts, or too
    many links) the bytes are copied instead; FileNotFoundError if ``src`` is absent.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        os.link(src, tmp)
    except FileNotFoundError:
        raise
    except OSError:
        with open(src, "rb") as source, atomic_file(target, fsync=fsync) as f:
            shutil.copyfileobj(source, f, _COPY_CHUNK)
        return False
    _rename_into_place(tmp, target, fsync=fsync)
    return True
