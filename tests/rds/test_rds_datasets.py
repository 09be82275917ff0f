"""Datasets: the mock published readable by everyone, the private path only in the state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedbox.datasite.permission_files import Level, parse_permission_file
from fedbox.datasite.workspace import Workspace
from fedbox.rds import DatasetError
from fedbox.rds.datasets import (
    create_dataset,
    delete_dataset,
    get_dataset,
    list_datasets,
    private_path,
)
from fedbox.store import open_store

OWNER = "owner@x.org"
SECRET = "private-row-7f3a"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    private, mock = tmp_path / "private", tmp_path / "mock"
    (private / "sub").mkdir(parents=True)
    (private / "sub" / "data.csv").write_text(f"a,b\n{SECRET},1\n")
    (mock / "sub").mkdir(parents=True)
    (mock / "sub" / "data.csv").write_text("a,b\nfake,0\n")
    return private, mock


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_create_publishes_mock_readme_metadata_and_public_read_rule(
    root: Path, folders: tuple[Path, Path], fedbox_home: Path
) -> None:
    private, mock = folders
    ws = Workspace.for_email(OWNER).ensure()
    with open_store(root) as store:
        info = create_dataset(store, ws, "cells", private=private, mock=mock, description="# Cells")
        assert list_datasets(store) == [info]
        assert get_dataset(store, OWNER, "cells") == info
    folder = root / "datasites" / OWNER / "public" / "datasets" / "cells"
    assert (folder / "mock" / "sub" / "data.csv").read_text() == "a,b\nfake,0\n"
    assert (folder / "README.md").read_text() == "# Cells"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["name"] == "cells" and meta["owner"] == OWNER
    assert meta["files"][0]["path"] == "sub/data.csv" and meta["files"][0]["size"] == 11
    rules = parse_permission_file(
        (folder / "syft.pub.yaml").read_text(), f"datasites/{OWNER}/public/datasets/cells"
    )
    assert rules.rules[0].access.grants("anyone@y.org", Level.READ)
    assert SECRET.encode() not in _all_bytes(root)
    assert str(private).encode() not in _all_bytes(root)
    assert private_path(ws, "cells") == private.resolve()


def test_delete_unpublishes_and_forgets_the_private_path(
    root: Path, folders: tuple[Path, Path]
) -> None:
    private, mock = folders
    ws = Workspace.for_email(OWNER).ensure()
    with open_store(root) as store:
        create_dataset(store, ws, "cells", private=private, mock=mock)
        delete_dataset(store, ws, "cells")
        assert list_datasets(store, OWNER) == []
        with pytest.raises(DatasetError):
            private_path(ws, "cells")
        with pytest.raises(DatasetError, match="no dataset"):
            delete_dataset(store, ws, "cells")
    assert not (root / "datasites" / OWNER / "public" / "datasets" / "cells").exists()
    assert (private / "sub" / "data.csv").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("bad-name", "dataset name"),
        ("no-private", "is not a folder"),
        ("mock-link", "is a link"),
        ("mock-is-private", "must not overlap"),
        ("mock-holds-private", "must not overlap"),
        ("private-in-store", "inside the store"),
        ("twice", "exists"),
    ],
)
def test_bad_create_is_refused_and_writes_nothing(
    root: Path, folders: tuple[Path, Path], tmp_path: Path, change: str, message: str
) -> None:
    private, mock = folders
    name = "cells"
    ws = Workspace.for_email(OWNER).ensure()
    with open_store(root) as store:
        if change == "bad-name":
            name = "../up"
        elif change == "no-private":
            private = tmp_path / "absent"
        elif change == "mock-link":
            (mock / "link.csv").symlink_to(private / "sub" / "data.csv")
        elif change == "mock-is-private":
            mock = private
        elif change == "mock-holds-private":
            mock = private.parent
        elif change == "private-in-store":
            private = root / "datasites" / OWNER / "private"
            private.mkdir(parents=True)
        elif change == "twice":
            create_dataset(store, ws, name, private=private, mock=mock)
        before = sorted(p.relative_to(root) for p in root.rglob("*"))
        with pytest.raises(DatasetError, match=message):
            create_dataset(store, ws, name, private=private, mock=mock)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_broken_dataset_json_hides_only_itself(root: Path, folders: tuple[Path, Path]) -> None:
    private, mock = folders
    ws = Workspace.for_email(OWNER).ensure()
    with open_store(root) as store:
        create_dataset(store, ws, "good", private=private, mock=mock)
        store.put(f"datasites/{OWNER}/public/datasets/bad/dataset.json", b"{not json")
        assert [d.name for d in list_datasets(store, OWNER)] == ["good"]
        with pytest.raises(DatasetError, match="not a valid dataset description"):
            get_dataset(store, OWNER, "bad")
