"""Moving bytes between the folder and the hub safely.

Downloads land atomically (a hidden temporary in the same folder, fsync, hash check
against the hub's sha256, then rename), so no program ever reads half a file, and only
if the local file is still the one the decision was made on. A download that would
leave less than the free-space margin is refused for that file alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from fedbox.errors import FedboxError
from fedbox.hub.sync.echoes import OwnPlacements
from fedbox.hub.sync.emptied import in_folder_of
from fedbox.hub.sync.reconcile import LocalFile

__all__ = [
    "ChangedMeanwhile",
    "NoSpace",
    "local_file",
    "place",
    "remove",
    "staged",
]

_CHUNK = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class NoSpace(FedboxError):
    """A download would leave less free space than the configured margin."""


class ChangedMeanwhile(FedboxError):
    """The local file changed while its transfer ran; the path is reconsidered."""


def local_file(full: Path, known: tuple[int, int, str] | None = None) -> LocalFile | None:
    """The file's state, hashed only if its (size, mtime_ns) differ from ``known``'s."""
    try:
        st = os.stat(full, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):  # not a link (the stat did not follow it), no folder
        return None
    if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
        return LocalFile(known[2], st.st_size, st.st_mtime_ns)
    digest = hashlib.sha256()
    try:
        with open(full, "rb", buffering=0) as f:  # no buffer: whole chunks are read
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            st = os.fstat(f.fileno())
    except FileNotFoundError:  # gone between the stat and the open
        return None
    return LocalFile(digest.hexdigest(), st.st_size, st.st_mtime_ns)


def _same(full: Path, expected: LocalFile | None) -> bool:
    try:
        st = os.stat(full, follow_symlinks=False)
    except FileNotFoundError:
        return expected is None
    return expected is not None and (st.st_size, st.st_mtime_ns) == (
        expected.size,
        expected.mtime_ns,
    )


@contextlib.contextmanager
def staged(root: Path, rel: str, size: int, min_free: int) -> Iterator[tuple[Path, Path]]:
    """A hidden temporary beside ``rel`` to download into, made empty (and its folder
    with it): (temp, target). Removed unless :func:`place` moved it into place."""
    target = root / rel
    try:
        free = shutil.disk_usage(target.parent).free
    except FileNotFoundError:  # the folder is new (else no call to make it, in a burst)
        target.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target.parent).free
    if free - size < min_free:
        raise NoSpace(
            f"not downloading {rel} ({_mib(size)}): it would leave "
            f"{_mib(max(free - size, 0))} free, below the margin of {_mib(min_free)}"
        )
    temp = target.with_name(f".{target.name}.fedbox-sync-{secrets.token_hex(4)}")
    # Made now, so that its folder is not empty (never removed as emptied) meanwhile.
    in_folder_of(target, lambda: os.close(os.open(temp, _NEW_FILE, 0o666)))
    try:
        yield temp, target
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def place(
    temp: Path,
    target: Path,
    sha256: str,
    expected: LocalFile | None,
    placements: OwnPlacements | None = None,
) -> LocalFile:
    """fsync ``temp``, check its hash, and rename it over ``target`` if ``target`` is still
    ``expected`` (None: absent); the placed file's state. ``placements`` learns of the
    rename before it happens (the folder watcher's report of it is then known as ours)."""
    digest = hashlib.sha256()
    with open(temp, "rb+", buffering=0) as f:  # no buffer to set up: whole chunks are read
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        os.fsync(f.fileno())
        st = os.fstat(f.fileno())  # now: the file may be moved away right after the rename
    if digest.hexdigest() != sha256:
        raise FedboxError(
            f"{target.name}: the downloaded bytes hash to {digest.hexdigest()}, not {sha256}"
        )
    if not _same(target, expected):
        raise ChangedMeanwhile(f"{target} changed while it downloaded")
    if placements is not None:
        placements.placing(target, st)
    try:
        os.replace(temp, target)
    except BaseException:
        if placements is not None:
            placements.failed(target)
        raise
    with contextlib.suppress(FileNotFoundError):  # the folder itself was moved away
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return LocalFile(sha256, st.st_size, st.st_mtime_ns)


def remove(full: Path, expected: LocalFile) -> bool:
    """Delete the file if it is still ``expected``; False if it changed meanwhile."""
    if not _same(full, expected):
        return False
    with contextlib.suppress(FileNotFoundError):
        full.unlink()
    return True
