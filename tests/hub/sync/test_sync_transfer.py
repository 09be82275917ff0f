"""The folder side of transfers: a file is what one stat says it is, and the daemon's own
renames are told apart from the user's writes (only the report of the very file it placed
is dropped, once; anything else is synced)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fedbox.hub.sync.echoes import OwnPlacements
from fedbox.hub.sync.transfer import local_file, place


def _placed(root: Path, rel: str, data: bytes, placements: OwnPlacements) -> Path:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    temp.write_bytes(data)
    place(temp, target, hashlib.sha256(data).hexdigest(), None, placements)
    return target


def test_the_report_of_a_placed_file_is_an_echo_once(tmp_path: Path) -> None:
    placements = OwnPlacements(tmp_path)
    _placed(tmp_path, "d/a.txt", b"hub's bytes", placements)
    assert placements.is_echo("d/a.txt")
    assert not placements.is_echo("d/a.txt")  # a second report is the user's
    assert not placements.is_echo("d/never-placed.txt")


def test_a_file_changed_after_its_placement_is_no_echo(tmp_path: Path) -> None:
    placements = OwnPlacements(tmp_path)
    rewritten = _placed(tmp_path, "rewritten.txt", b"hub's bytes", placements)
    rewritten.write_bytes(b"the user's longer bytes")
    replaced = _placed(tmp_path, "replaced.txt", b"hub's bytes", placements)
    other = tmp_path / ".other"
    other.write_bytes(b"hub's bytes")
    os.utime(other, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns))
    os.replace(other, replaced)  # same size and mtime, another file
    gone = _placed(tmp_path, "gone.txt", b"hub's bytes", placements)
    gone.unlink()
    assert not placements.is_echo("rewritten.txt")
    assert not placements.is_echo("replaced.txt")
    assert not placements.is_echo("gone.txt")


def test_a_failed_rename_leaves_nothing_to_drop(tmp_path: Path) -> None:
    placements = OwnPlacements(tmp_path)
    temp = tmp_path / ".t.tmp"
    temp.write_bytes(b"x")
    target = tmp_path / "missing-folder" / "t.txt"  # the rename fails: no such folder
    with pytest.raises(FileNotFoundError):
        place(temp, target, hashlib.sha256(b"x").hexdigest(), None, placements)
    target.parent.mkdir()
    os.link(temp, target)  # the very inode, size and mtime the failed rename had
    assert not placements.is_echo("missing-folder/t.txt")


def test_local_file_sees_regular_files_only(tmp_path: Path) -> None:
    """One stat, not following links, tells a regular file from a link or a folder."""
    (tmp_path / "real.txt").write_bytes(b"real")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    (tmp_path / "folder").mkdir()
    found = local_file(tmp_path / "real.txt")
    assert found is not None and found.sha256 == hashlib.sha256(b"real").hexdigest()
    assert found.size == 4
    assert local_file(tmp_path / "link.txt") is None
    assert local_file(tmp_path / "folder") is None
    assert local_file(tmp_path / "missing.txt") is None
    assert local_file(tmp_path / "real.txt" / "below") is None
