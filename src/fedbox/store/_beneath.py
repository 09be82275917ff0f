"""Reaching paths under a folder without following links (issue 11.4).

Anyone who can write a shared folder can plant a symbolic link (to ``/etc/passwd``, to
another participant's files, or in place of a folder), a FIFO, or a hard link to a file
outside it. Every path is therefore walked one segment at a time from the root, each
folder opened relative to the last with ``O_NOFOLLOW | O_DIRECTORY``: a link anywhere
on the way fails the walk instead of leading out, and the final operation (open, stat,
rename, unlink, create) acts on the entry itself, never on what it points to.

On Linux 5.6 and later one ``openat2`` call with ``RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH``
does the same walk in the kernel (issue 20: a message's files took a dozen folder opens
and closes each); anything it refuses is walked again segment by segment, which makes
missing folders and says precisely what is wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fedbox.errors import NotFound, StoreError, UnsafeFile

__all__ = ["LINK_ERRNOS", "folder", "open_folder", "open_regular", "refusal"]

_O_PATH = getattr(os, "O_PATH", 0)
_BASE = os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_PASS_THROUGH = _BASE | (_O_PATH or os.O_RDONLY)
"""Folders only walked through: ``O_PATH`` needs no read permission and does less."""
_READABLE = _BASE | os.O_RDONLY
"""The last folder when it is listed or fsync'd, which ``O_PATH`` cannot be."""
_READ_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
"""``O_NONBLOCK``: opening a FIFO must not wait for a writer (it is refused after fstat)."""
LINK_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})
"""What ``O_NOFOLLOW`` (and ``O_DIRECTORY`` on a link) report (EMLINK on some BSDs)."""


_SYS_OPENAT2 = 437
"""The same number on every Linux architecture (the generic syscall table)."""
_RESOLVE = 0x02 | 0x04 | 0x08
"""``RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH``."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_syscall() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    syscall = getattr(libc, "syscall", None)
    if syscall is not None:
        syscall.restype = ctypes.c_long
    return syscall


_syscall = _load_syscall()


def _openat2(dir_fd: int, path: str, flags: int) -> int | None:
    """``path`` under ``dir_fd`` opened without following any link, in one call; None
    if the kernel refuses it for any reason (the walk then decides) or has no openat2
    (ENOSYS, or EPERM from a sandbox that filters it: then never asked again)."""
    global _syscall
    if _syscall is None:
        return None
    how = _OpenHow(flags, 0, _RESOLVE)
    fd = _syscall(  # syscall(2) is variadic: every argument at its C width
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd >= 0:
        return int(fd)
    if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
        _syscall = None
    return None


def refusal(store_path: str, parts: Sequence[str], dir_fd: int, name: str) -> StoreError:
    """The error for an entry the walk could not pass: UnsafeFile if it is a link or
    other non-folder where a folder should be, NotFound if it vanished meanwhile."""
    where = "/".join((*parts, name))
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return NotFound(f"no such file in store: {store_path}", store_path)
    except OSError as exc:
        return StoreError(f"cannot reach {store_path}: {exc}", store_path)
    if stat.S_ISLNK(st.st_mode):
        return UnsafeFile(f"{where} is a symbolic link; links are never followed", store_path)
    return UnsafeFile(f"{where} is not a folder, so {store_path} cannot be in it", store_path)


def open_folder(
    root: Path,
    parts: Sequence[str],
    store_path: str,
    *,
    create: bool = False,
    readable: bool = False,
) -> int:
    """A descriptor of ``root/parts...`` (the caller closes it), reached without
    following any link.

    ``create`` makes missing folders (as ``mkdir -p`` would, but never through a link);
    ``readable`` opens the last one for listing and fsync. NotFound if a folder is
    missing (and not created), UnsafeFile if one is a link or not a folder.
    """
    try:
        fd = os.open(root, _READABLE if readable or not parts else _PASS_THROUGH)
    except FileNotFoundError as exc:
        raise NotFound(f"the store root {root} is gone", store_path) from exc
    except OSError as exc:
        raise StoreError(f"cannot open the store root {root}: {exc}", store_path) from exc
    if parts:
        last = _openat2(fd, "/".join(parts), _READABLE if readable else _PASS_THROUGH)
        if last is not None:
            os.close(fd)
            return last
    for i, name in enumerate(parts):
        flags = _READABLE if readable and i == len(parts) - 1 else _PASS_THROUGH
        fd = _step(fd, name, flags, create, store_path, parts[:i])
    return fd


@contextmanager
def folder(
    root: Path,
    parts: Sequence[str],
    store_path: str,
    *,
    create: bool = False,
    readable: bool = False,
) -> Iterator[int]:
    """:func:`open_folder`, closed when the block exits."""
    fd = open_folder(root, parts, store_path, create=create, readable=readable)
    try:
        yield fd
    finally:
        os.close(fd)


def _step(
    parent: int, name: str, flags: int, create: bool, store_path: str, above: Sequence[str]
) -> int:
    """Open folder ``name`` in ``parent`` (closing ``parent``), creating it if asked."""
    try:
        for _ in range(3):
            try:
                return os.open(name, flags, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise NotFound(f"no such file in store: {store_path}", store_path) from None
                try:
                    os.mkdir(name, 0o777, dir_fd=parent)
                except FileExistsError:
                    pass  # made meanwhile by another writer, or a link: the open decides
                except FileNotFoundError:
                    # ``parent`` was removed (emptied by a cleanup) after we opened it.
                    raise NotFound(f"{store_path}: a folder vanished", store_path) from None
            except OSError as exc:
                if exc.errno in LINK_ERRNOS:
                    raise refusal(store_path, above, parent, name) from exc
                raise StoreError(f"cannot reach {store_path}: {exc}", store_path) from exc
        raise StoreError(f"cannot create the folders of {store_path}", store_path)
    finally:
        os.close(parent)


def open_regular(dir_fd: int, name: str, store_path: str) -> int:
    """A read-only descriptor of the regular file ``name``, refusing anything else.

    A FIFO, socket, device, folder or link is refused without reading (UnsafeFile), and
    so is a file with more than one hard link: fedbox never makes hard links, so a second
    name means someone linked in a file they may not be able to read themselves.
    """
    try:
        fd = os.open(name, _READ_FILE, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise NotFound(f"no such file in store: {store_path}", store_path) from exc
    except OSError as exc:
        if exc.errno in LINK_ERRNOS or exc.errno == errno.ENXIO:
            raise UnsafeFile(
                f"{store_path} is a symbolic link or a socket; never followed", store_path
            ) from exc
        raise StoreError(f"cannot open {store_path}: {exc}", store_path) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{store_path} is not a regular file; never read", store_path)
        if st.st_nlink > 1:
            raise UnsafeFile(
                f"{store_path} has {st.st_nlink} hard links; fedbox never makes any, "
                "so it is not read",
                store_path,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd
