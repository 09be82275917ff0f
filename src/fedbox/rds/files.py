"""Describing a folder's files (path, size, sha256) and the name rules rds applies."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import BinaryIO

from fedbox.rds.models import FileInfo

__all__ = ["describe_folder", "sha256_file", "sha256_stream", "validate_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHUNK = 1 << 20


def validate_name(kind: str, value: str) -> str:
    """A dataset or job name becomes a path part: letters, digits, ``._-``, at most 64."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{kind} name {value!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def sha256_stream(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return sha256_stream(f)


def describe_folder(folder: Path) -> list[FileInfo]:
    """Every regular file under ``folder``, sorted by path. A link or a special file is
    refused (ValueError naming it): what a link points to is not what was reviewed."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in (*dirnames, *filenames):
            path = Path(dirpath, name)
            if path.is_symlink():
                raise ValueError(f"{path} is a link; copy the file it points to instead")
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not path.is_file():
                raise ValueError(f"{path} is not a regular file")
            files.append(
                FileInfo(
                    path=path.relative_to(folder).as_posix(),
                    size=path.stat().st_size,
                    sha256=sha256_file(path),
                )
            )
    return sorted(files, key=lambda f: f.path)
