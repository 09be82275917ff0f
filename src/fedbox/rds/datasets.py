"""Datasets: the mock and its description published in the store, the private data's
path kept in the owner's state dir only, with the dataset's auto-approvers (emails whose
code jobs on it the daemon approves, never runs: see ``fedbox.rds.rules``). They stay
private too: who the owner trusts is the owner's business, and publishing it would tell
an impostor whose name to take.

Published under ``datasites/{owner}/public/datasets/{name}/``: the mock files under
``mock/``, ``README.md``, ``dataset.json`` (written last: a dataset is listed once it is
there) and a ``syft.pub.yaml`` that lets everyone read the folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from fedbox.datasite.identity import validate_email
from fedbox.datasite.paths import datasite_dir
from fedbox.datasite.permission_files import PUBLIC_READ
from fedbox.datasite.workspace import Workspace, create_private
from fedbox.errors import PERMISSION_FILE, FedboxError, NotFound
from fedbox.rds.files import describe_folder, validate_name
from fedbox.rds.models import DatasetInfo
from fedbox.store import Store

__all__ = [
    "DatasetError",
    "auto_approvers",
    "create_dataset",
    "dataset_dir",
    "delete_dataset",
    "get_dataset",
    "list_datasets",
    "private_path",
]

METADATA = "dataset.json"


class DatasetError(FedboxError, ValueError):
    """A dataset that cannot be created, found or used as asked (the message says why)."""


def dataset_dir(owner: str, name: str) -> PurePosixPath:
    return (
        datasite_dir(validate_email(owner)) / "public" / "datasets" / validate_name("dataset", name)
    )


def _registry(workspace: Workspace) -> Path:
    return workspace.state_dir / "rds" / "datasets.json"


def _read_registry(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """``{name: {"private": path, "auto_approve": [email, ...]}}``; an entry written
    before datasets had auto-approvers is just the path."""
    path = _registry(workspace)
    raw = json.loads(path.read_text()) if path.exists() else {}
    return {
        name: {"private": entry, "auto_approve": []} if isinstance(entry, str) else entry
        for name, entry in raw.items()
    }


def _write_registry(workspace: Workspace, registry: dict[str, dict[str, Any]]) -> None:
    path = create_private(_registry(workspace))
    tmp = create_private(path.with_name(f".{path.name}.tmp"))
    tmp.write_text(json.dumps(registry, indent=2, sort_keys=True))
    tmp.replace(path)


def private_path(workspace: Workspace, name: str) -> Path:
    """Where the owner keeps dataset ``name``'s private data (DatasetError if not theirs)."""
    registry = _read_registry(workspace)
    if name not in registry:
        raise DatasetError(f"{workspace.email} has no dataset {name!r}")
    return Path(registry[name]["private"])


def auto_approvers(workspace: Workspace, name: str) -> list[str]:
    """The emails whose code jobs on our dataset ``name`` the daemon approves (none for
    a dataset we do not have)."""
    return list(_read_registry(workspace).get(name, {}).get("auto_approve", []))


def create_dataset(
    store: Store,
    workspace: Workspace,
    name: str,
    *,
    private: Path,
    mock: Path,
    description: str = "",
    auto_approve: Iterable[str] = (),
    clock: float | None = None,
) -> DatasetInfo:
    """Publish the mock and describe it; record where the private data is and who is
    auto-approved. Every check happens before anything is written."""
    try:
        validate_name("dataset", name)
        approvers = sorted({validate_email(e) for e in auto_approve})
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    private = private.resolve()
    if not private.is_dir():
        raise DatasetError(f"--private {private} is not a folder")
    try:
        files = describe_folder(mock)
    except ValueError as exc:
        raise DatasetError(f"--mock: {exc}") from exc
    real_mock = mock.resolve()
    if real_mock == private or private in real_mock.parents or real_mock in private.parents:
        raise DatasetError("the mock and the private folder must not overlap")
    store_root = store.local_path("")
    if store_root is not None:
        store_root = store_root.resolve()
        if private == store_root or store_root in private.parents:
            raise DatasetError(f"--private {private} is inside the store, where others read")
    folder = dataset_dir(workspace.email, name)
    if name in _read_registry(workspace) or store.exists(str(folder / METADATA)):
        raise DatasetError(f"dataset {name!r} exists; delete it first to replace it")
    info = DatasetInfo(
        name=name,
        owner=workspace.email,
        description=description,
        files=files,
        created=time.time() if clock is None else clock,
    )
    store.put(str(folder / PERMISSION_FILE), PUBLIC_READ.encode())
    for f in files:
        with (mock / f.path).open("rb") as src:
            store.put(str(folder / "mock" / f.path), src)
    store.put(str(folder / "README.md"), (description or f"# {name}\n").encode())
    registry = _read_registry(workspace)
    registry[name] = {"private": str(private), "auto_approve": approvers}
    _write_registry(workspace, registry)
    store.put(str(folder / METADATA), info.model_dump_json(indent=2).encode())
    return info


def get_dataset(store: Store, owner: str, name: str) -> DatasetInfo:
    path = dataset_dir(owner, name) / METADATA
    try:
        raw = store.read(str(path))
    except NotFound as exc:
        raise DatasetError(f"{owner} has published no dataset {name!r}") from exc
    try:
        return DatasetInfo.model_validate_json(raw)
    except ValueError as exc:
        raise DatasetError(f"{path} is not a valid dataset description: {exc}") from exc


def list_datasets(store: Store, owner: str | None = None) -> list[DatasetInfo]:
    """Published datasets of ``owner`` (everyone's when None), by owner then name. An
    unreadable ``dataset.json`` is skipped: one bad folder must not hide the others."""
    owners = [validate_email(owner)] if owner else sorted(store.list_dirs("datasites"))
    found = []
    for who in owners:
        try:
            validate_email(who)
        except ValueError:
            continue
        base = datasite_dir(who) / "public" / "datasets"
        for name in sorted(store.list_dirs(str(base))):
            try:
                found.append(get_dataset(store, who, name))
            except (DatasetError, ValueError):
                continue
    return found


def delete_dataset(store: Store, workspace: Workspace, name: str) -> None:
    """Unpublish one of our datasets and forget its private path (the data stays)."""
    registry = _read_registry(workspace)
    folder = dataset_dir(workspace.email, name)
    if name not in registry and not store.exists(str(folder / METADATA)):
        raise DatasetError(f"{workspace.email} has no dataset {name!r}")
    if store.exists(str(folder / METADATA)):
        store.delete(str(folder / METADATA))
    for entry in store.list(str(folder)):
        store.delete(entry.path)
    for sub in reversed(_folders(store, folder)):
        store.remove_folder(sub)
    store.remove_folder(str(folder))
    registry.pop(name, None)
    _write_registry(workspace, registry)


def _folders(store: Store, folder: PurePosixPath) -> list[str]:
    """Every folder under ``folder``, parents before their children."""
    out = []
    for sub in store.list_dirs(str(folder)):
        out.append(str(folder / sub))
        out.extend(_folders(store, folder / sub))
    return out
