"""Code packages: a tar of the code folder plus ``manifest.json`` (every path and sha256,
the entry command, the dataset, the kind).

Unpacking trusts nothing in the tar: every member is checked (a regular file or folder,
a relative path without ``..``, content matching the manifest, every manifest file
present, the size under the cap) before the first byte is written.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path, PurePosixPath
from typing import Literal

from fedbox.errors import FedboxError
from fedbox.rds.files import describe_folder, validate_name
from fedbox.rds.models import Manifest

__all__ = [
    "DEFAULT_MAX_PACKAGE",
    "PackageError",
    "extract_checked",
    "pack",
    "pack_folders",
    "read_package",
    "unpack",
]

DEFAULT_MAX_PACKAGE = 100 * 1024 * 1024
"""Bytes a package (and its unpacked code) may have unless configured otherwise."""

MANIFEST = "manifest.json"
CODE = "code"


class PackageError(FedboxError, ValueError):
    """A package that is refused: malformed, unsafe, not matching its manifest, or too big."""


def pack(
    code_dir: Path,
    *,
    entry: str,
    dataset: str,
    name: str | None = None,
    kind: Literal["code", "fl"] = "code",
    max_size: int = DEFAULT_MAX_PACKAGE,
) -> tuple[bytes, Manifest]:
    """The package of ``code_dir`` (links and special files refused) and its manifest."""
    try:
        files = describe_folder(code_dir)
        manifest = Manifest(
            name=validate_name("job", name or code_dir.resolve().name),
            entry=entry,
            dataset=validate_name("dataset", dataset),
            kind=kind,
            files=files,
        )
    except ValueError as exc:
        raise PackageError(str(exc)) from exc
    total = sum(f.size for f in files)
    if total > max_size:
        raise PackageError(f"{code_dir} holds {total:,} bytes, over the {max_size:,} byte cap")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, manifest.model_dump_json(indent=2).encode())
        for f in files:
            info = tarfile.TarInfo(f"{CODE}/{f.path}")
            info.size = f.size
            info.mode = 0o644
            with (code_dir / f.path).open("rb") as src:
                tar.addfile(info, src)
    return buf.getvalue(), manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _member_path(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if member.name.startswith("/") or path.is_absolute() or "\\" in member.name:
        raise PackageError(f"member {member.name!r} has an absolute path")
    if any(part in ("..", ".", "") for part in member.name.rstrip("/").split("/")):
        raise PackageError(f"member {member.name!r} has a '..', '.' or empty path part")
    if not (member.isfile() or member.isdir()):
        raise PackageError(f"member {member.name!r} is a link or special file")
    return path


def read_package(data: bytes, *, max_size: int = DEFAULT_MAX_PACKAGE) -> Manifest:
    """Check the whole package and return its manifest; PackageError says what is wrong.
    Nothing is written."""
    if len(data) > max_size:
        raise PackageError(f"package of {len(data):,} bytes is over the {max_size:,} byte cap")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115
        members = tar.getmembers()
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"not a readable tar: {exc}") from exc
    with tar:
        by_name: dict[str, tarfile.TarInfo] = {}
        for member in members:
            path = _member_path(member)
            key = str(path)
            if member.isfile() and key in by_name:
                raise PackageError(f"member {member.name!r} appears twice")
            if member.isfile():
                by_name[key] = member
        if MANIFEST not in by_name:
            raise PackageError(f"no {MANIFEST} in the package")
        try:
            manifest = Manifest.model_validate_json(_read(tar, by_name.pop(MANIFEST)))
        except ValueError as exc:
            raise PackageError(f"{MANIFEST} is not valid: {exc}") from exc
        listed = {f"{CODE}/{f.path}": f for f in manifest.files}
        extra = sorted(set(by_name) - set(listed))
        missing = sorted(set(listed) - set(by_name))
        if extra or missing:
            raise PackageError(
                f"files do not match the manifest: not listed {extra[:5]}, absent {missing[:5]}"
            )
        for key, f in listed.items():
            member = by_name[key]
            digest = hashlib.sha256(_read(tar, member)).hexdigest()
            if member.size != f.size or digest != f.sha256:
                raise PackageError(f"{f.path} does not match its manifest entry")
    return manifest


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise PackageError(f"member {member.name!r} has no content")
    return f.read()


def unpack(data: bytes, dest: Path, *, max_size: int = DEFAULT_MAX_PACKAGE) -> Manifest:
    """Check the package (:func:`read_package`), then write its code under ``dest``."""
    manifest = read_package(data, max_size=max_size)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for f in manifest.files:
            target = dest / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_read(tar, tar.getmember(f"{CODE}/{f.path}")))
    return manifest


def pack_folders(folders: dict[str, Path]) -> bytes:
    """A tar of several folders, each under its own top-level name (results: ``output/``
    and ``logs/``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, folder in folders.items():
            if not folder.is_dir():
                continue
            for f in describe_folder(folder):
                info = tarfile.TarInfo(f"{top}/{f.path}")
                info.size = f.size
                info.mode = 0o644
                with (folder / f.path).open("rb") as src:
                    tar.addfile(info, src)
    return buf.getvalue()


def extract_checked(data: bytes, dest: Path) -> list[str]:
    """Write a tar's regular files under ``dest`` after checking every member (see
    :func:`read_package`); return their paths."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            for member in members:
                _member_path(member)
            written = []
            for member in members:
                if member.isfile():
                    target = dest / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(_read(tar, member))
                    written.append(member.name)
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"not a readable tar: {exc}") from exc
    return written
