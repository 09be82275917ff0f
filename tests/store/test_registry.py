"""Stores are pluggable (issue 21.2): schemes name Store factories, stores declare their
capabilities and every watcher takes the calls RPC makes; one rule for paths and one
redaction of passwords in URLs (issue 21.4)."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

import fedbox.store
from fedbox.datasite.paths import split_store_path
from fedbox.datasite.permission_files import split_path
from fedbox.errors import InvalidIdentity
from fedbox.fl.simulate import display_root
from fedbox.store import LocalStore, RemoteStore, StoreCapabilities, Watcher, open_store
from fedbox.store.registry import (
    StoreSpec,
    redact_url,
    register_store,
    resolve_storage_options,
    stores,
)
from fedbox.testing import wait_reported


class _TaggedStore(LocalStore):
    """A store of another kind, as a hub:// store would be: a factory and capabilities."""

    def __init__(self, root: Path, options: dict[str, Any]) -> None:
        super().__init__(root, watch_mode="poll")
        self.options = options

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(events=False, cheap_exists=False)


def _open_tagged(root: str, *, fsync: bool, watch_mode: str, **kw: Any) -> _TaggedStore:
    folder = Path(os.environ["TAGGED_FOLDER"]) / root.partition("://")[2]
    options = {k: v for k, v in kw.items() if not k.endswith(("interval", "timeout"))}
    return _TaggedStore(folder, options)


def test_a_new_scheme_is_one_registry_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("fedbox.store.registry._stores", dict(stores))
    monkeypatch.setenv("TAGGED_FOLDER", str(tmp_path))
    monkeypatch.setenv("FEDBOX_STORAGE_OPTIONS", '{"tag": {"token": "t0"}, "shared": 1}')
    register_store("tag", StoreSpec(f"{__name__}:_open_tagged"))
    with pytest.raises(ValueError, match="already has a store"):
        register_store("tag", StoreSpec(_open_tagged))
    store = open_store("tag://here", token="t1")
    assert isinstance(store, _TaggedStore) and store.root == (tmp_path / "here").resolve()
    assert store.options == {"token": "t1", "shared": 1}, "options merged over the environment"
    assert resolve_storage_options("tag://x", None, {"a": 1}) == {
        "token": "t0",
        "shared": 1,
        "a": 1,
    }
    with pytest.raises(ValueError, match="no change events"):
        open_store("tag://here", watch_mode="events")


def test_folders_and_file_urls_are_entries_too() -> None:
    assert stores[""] == stores["file"] and stores[""].options is False
    assert stores["s3"].factory == stores["memory"].factory == "fedbox.store.remote:open_remote"


def test_capabilities_say_what_rpc_may_rely_on(tmp_path: Path) -> None:
    assert LocalStore(tmp_path).capabilities == StoreCapabilities(events=True, cheap_exists=True)
    polled = LocalStore(tmp_path, watch_mode="poll")
    assert polled.capabilities == StoreCapabilities(events=False, cheap_exists=True)
    remote = RemoteStore("memory://caps")
    assert remote.capabilities == StoreCapabilities(events=False, cheap_exists=False)


@pytest.mark.parametrize("make", ["events", "poll", "remote"])
def test_every_watcher_takes_expect_forget_and_list_when(tmp_path: Path, make: str) -> None:
    store = RemoteStore("memory://w") if make == "remote" else LocalStore(tmp_path, watch_mode=make)
    with store.watch("", (".response",)) as watcher:
        assert isinstance(watcher, Watcher)
        watcher.list_when(lambda: True)
        watcher.expect(["a/b.response"])
        store.put("a/b.response", b"x")
        wait_reported(watcher, "a/b.response")
        watcher.forget(["a/b.response"])


def test_registry_and_stores_do_not_import_each_other() -> None:
    source = Path(fedbox.store.__file__).parent / "registry.py"
    imported = {
        node.module
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"fedbox.store.local", "fedbox.store.remote"}


@pytest.mark.parametrize("path", ["../x", "/abs", "a/../b", "a//b", "a/./b", "nul\x00", "b\\s"])
def test_one_path_rule_for_stores_and_permissions(tmp_path: Path, path: str) -> None:
    for check in (
        lambda: split_store_path(path),
        lambda: split_path(path),
        lambda: LocalStore(tmp_path).put(path, b"x"),
        lambda: RemoteStore("memory://p").put(path, b"x"),
    ):
        with pytest.raises(InvalidIdentity):
            check()
    assert split_store_path("", root_ok=True) == ()


def test_one_redaction_of_passwords() -> None:
    url = "webdav://bob:hunter2@127.0.0.1:9/x"
    assert redact_url(url) == display_root(url) == RemoteStore(url).url
    assert "hunter2" not in redact_url(url) and "bob:***@" in redact_url(url)
    assert redact_url("/plain/folder") == "/plain/folder"
