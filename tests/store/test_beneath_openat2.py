"""The one-call walk (``openat2``) reaches exactly what the segment-by-segment walk
reaches, and refuses what it refuses: links anywhere, escapes, missing folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fedbox.errors import NotFound, UnsafeFile
from fedbox.store import _beneath
from fedbox.store._beneath import open_folder

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _beneath._syscall is None,
    reason="openat2 is Linux-only (5.6 and later)",
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("no")
    return tmp_path / "root"


def _same(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    finally:
        os.close(fd)


def test_one_call_reaches_a_plain_folder(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        reached = _beneath._openat2(fd, "a/b", _beneath._PASS_THROUGH)
    finally:
        os.close(fd)
    assert reached is not None and _same(reached, root / "a" / "b")


@pytest.mark.parametrize("path", ["link/b", "a/link", "../outside", "/etc", "a/../../outside"])
def test_one_call_refuses_links_and_escapes(root: Path, path: str) -> None:
    (root / "link").symlink_to(root / "a")
    (root / "a" / "link").symlink_to(root.parent / "outside")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _beneath._openat2(fd, path, _beneath._PASS_THROUGH) is None
    finally:
        os.close(fd)


def test_open_folder_still_names_what_is_wrong(root: Path) -> None:
    """Refused in one call, the walk runs again and says why, as before."""
    (root / "a" / "link").symlink_to(root.parent / "outside")
    with pytest.raises(UnsafeFile, match="a/link is a symbolic link"):
        open_folder(root, ["a", "link"], "a/link/secret")
    with pytest.raises(NotFound):
        open_folder(root, ["a", "missing"], "a/missing/x")
    fd = open_folder(root, ["a", "new", "deeper"], "a/new/deeper/x", create=True)
    assert _same(fd, root / "a" / "new" / "deeper")
    assert _same(open_folder(root, ["a", "b"], "a/b/x", readable=True), root / "a" / "b")
