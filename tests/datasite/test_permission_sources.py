"""Rules from wherever they are kept: ``permissions_from_files`` takes (path, content)
pairs (a hub's database), ``fedbox.store.local_permissions`` finds them in a folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from fedbox.datasite import permissions_from_files
from fedbox.datasite.permissions import MAX_PERMISSION_FILE_BYTES, PERMISSION_FILE
from fedbox.errors import InvalidIdentity, InvalidPermissionFile
from fedbox.store.local_permissions import find_permission_files, load_permissions

A = "datasites/alice@x.org"
OPEN = "rules:\n  - pattern: '**'\n    access: {read: ['*']}\n"
CLOSED = "rules:\n  - pattern: '**'\n    access: {read: []}\n"


def test_rules_from_paths_and_texts_without_a_disk() -> None:
    pset = permissions_from_files(
        [(f"{A}/{PERMISSION_FILE}", CLOSED), (f"{A}/public/{PERMISSION_FILE}", OPEN.encode())]
    )
    assert set(pset.files) == {A, f"{A}/public"}
    assert pset.allowed("eve@x.org", f"{A}/public/a.csv", "read")
    assert not pset.allowed("eve@x.org", f"{A}/private/a.csv", "read")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"x" * (MAX_PERMISSION_FILE_BYTES + 1), "more than the"),
        (b"rules: []\n# \xff\xfe secret", "not UTF-8"),
        (OSError(5, "Input/output error"), "cannot be read"),
        ("rules: [", "not valid YAML"),
    ],
    ids=["too large", "not utf-8", "unreadable", "bad yaml"],
)
def test_a_bad_file_fails_closed_or_raises_when_strict(
    content: bytes | str | Exception, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    files = [(f"{A}/{PERMISSION_FILE}", OPEN), (f"{A}/public/{PERMISSION_FILE}", content)]
    with caplog.at_level(logging.WARNING, logger="fedbox.datasite.permissions"):
        pset = permissions_from_files(files)
    assert problem in caplog.text
    decision = pset.explain("eve@x.org", f"{A}/public/a.csv", "read")
    assert not decision.allowed  # the parent's open rule does not take over
    assert "unreadable" in decision.reason
    with pytest.raises(InvalidPermissionFile, match=problem):
        permissions_from_files(files, strict=True)


def test_a_problem_never_quotes_the_content() -> None:
    with pytest.raises(InvalidPermissionFile) as info:
        permissions_from_files([(f"{A}/{PERMISSION_FILE}", b"\xffSECRET-TOKEN")], strict=True)
    assert "SECRET" not in str(info.value)
    assert "\\xff" not in str(info.value)


def test_two_files_differing_in_case_fail_closed() -> None:
    files = [(f"{A}/{PERMISSION_FILE}", OPEN), (f"{A}/SYFT.PUB.YAML", OPEN)]
    pset = permissions_from_files(files)
    assert not pset.allowed("eve@x.org", f"{A}/a.csv", "read")
    with pytest.raises(InvalidPermissionFile, match="more than one"):
        permissions_from_files(files, strict=True)


@pytest.mark.parametrize(
    "path", [f"{PERMISSION_FILE}", f"other/{PERMISSION_FILE}", f"datasites/bob/{PERMISSION_FILE}"]
)
def test_a_file_outside_a_datasite_is_skipped_or_refused_when_strict(path: str) -> None:
    assert len(permissions_from_files([(path, OPEN)])) == 0
    with pytest.raises(InvalidIdentity):
        permissions_from_files([(path, OPEN)], strict=True)


def test_a_path_that_is_no_permission_file_is_misuse() -> None:
    with pytest.raises(ValueError, match="not a permission file"):
        permissions_from_files([(f"{A}/notes.yaml", OPEN)])


def test_the_folder_walk_finds_every_spelling_in_order(tmp_path: Path) -> None:
    for folder, name in [(A, PERMISSION_FILE), (f"{A}/b", "Syft.Pub.Yaml"), (f"{A}/a", "x")]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_text(OPEN)
    found = list(find_permission_files(tmp_path))
    assert found == [
        (f"{A}/{PERMISSION_FILE}", OPEN.encode()),
        (f"{A}/b/Syft.Pub.Yaml", OPEN.encode()),
    ]


def test_a_fifo_named_like_a_rule_file_does_not_block_loading(tmp_path: Path) -> None:
    (tmp_path / A).mkdir(parents=True)
    (tmp_path / A / PERMISSION_FILE).write_text(OPEN)
    (tmp_path / A / "pipe").mkdir()
    os.mkfifo(tmp_path / A / "pipe" / PERMISSION_FILE)
    pset = load_permissions(tmp_path)
    assert pset.files[f"{A}/pipe"].problem == "is not a regular file"
    assert not pset.allowed("eve@x.org", f"{A}/pipe/a.csv", "read")
    assert pset.allowed("eve@x.org", f"{A}/a.csv", "read")
