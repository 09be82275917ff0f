"""Permission files in a folder on this machine: the walk that finds them.

Evaluating rules is ``fedbox.datasite``'s (pure: it takes the files' paths and texts);
finding them is the job of whatever keeps them: this folder walk for a store on a local
disk, a database for the hub.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from fedbox.datasite.permissions import (
    DATASITES,
    MAX_PERMISSION_FILE_BYTES,
    PermissionSet,
    is_permission_file,
    permissions_from_files,
)
from fedbox.errors import InvalidPermissionFile

__all__ = ["find_permission_files", "load_permissions"]


def load_permissions(root: str | os.PathLike[str], *, strict: bool = False) -> PermissionSet:
    """Every ``datasites/**/syft.pub.yaml`` under the store root ``root``, as a
    PermissionSet (see ``fedbox.datasite.permissions_from_files`` for ``strict`` and how
    a broken file fails closed)."""
    return permissions_from_files(find_permission_files(root), strict=strict)


def find_permission_files(
    root: str | os.PathLike[str],
) -> Iterator[tuple[str, bytes | Exception]]:
    """(store-relative path, content or the error met reading it) of every permission
    file under ``root/datasites/``, in a stable order.

    Nothing that is a link is followed (it could point outside the store): a linked
    folder is not entered, a linked file is reported as an error. At most
    ``MAX_PERMISSION_FILE_BYTES + 1`` bytes are read from a file, enough to refuse it.
    """
    root = Path(root)
    base = root / DATASITES
    if not base.is_dir():
        return
    for site in sorted(base.iterdir()):
        if site.is_symlink() or not site.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(site):
            dirnames.sort()
            here = Path(dirpath)
            for name in sorted(filenames):
                if is_permission_file(name):
                    folder = here.relative_to(root).as_posix()
                    yield f"{folder}/{name}", _read(here / name, folder)


def _read(path: Path, folder: str) -> bytes | Exception:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if path.is_symlink():
            return InvalidPermissionFile(folder, "is a symlink, which is not followed")
        return exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return InvalidPermissionFile(folder, "is not a regular file")
        try:
            return f.read(MAX_PERMISSION_FILE_BYTES + 1)
        except OSError as exc:
            return exc
