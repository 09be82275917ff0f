"""RemoteStore beyond the conformance suite: URL selection, registry, atomic commits,
polling cost and cadence, outages and refused credentials (real servers on 127.0.0.1)."""

from __future__ import annotations

import errno
import logging
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_servers import SERVERS, Target, free_port
from waiting import wait_until

from fedbox.errors import StoreError
from fedbox.store import LocalStore, RemoteStore, open_store
from fedbox.store._retry import Failure, Outage, classify, retrying
from fedbox.store.polling import AdaptivePollWatcher, FolderScan, LeafScan, grid_after
from fedbox.store.registry import (
    ENV_STORAGE_OPTIONS,
    BackendSpec,
    MissingBackend,
    get_backend,
    register_backend,
    storage_options_from_env,
)

# -- choosing a store -------------------------------------------------------------------


def test_paths_and_file_urls_open_local_stores(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "a"), LocalStore)
    assert isinstance(open_store(str(tmp_path / "b")), LocalStore)
    local = open_store((tmp_path / "c").as_uri(), watch_mode="poll", poll_interval=0.1)
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "c").resolve()
    with pytest.raises(TypeError, match="remote stores"):
        open_store(tmp_path / "d", key="k")


def test_urls_open_remote_stores_with_tuning() -> None:
    store = open_store("memory://x", poll_interval=0.01, max_poll_interval=0.5, retry_timeout=3)
    assert isinstance(store, RemoteStore)
    assert (store.min_poll_interval, store.max_poll_interval, store.retry_timeout) == (0.01, 0.5, 3)
    with pytest.raises(ValueError, match="no change events"):
        open_store("memory://x", watch_mode="events")
    with pytest.raises(ValueError, match="no store backend for ftpx://"):
        open_store("ftpx://host/path")
    with pytest.raises(ValueError, match="needs a bucket"):
        open_store("s3://")


def test_stores_connect_lazily() -> None:
    """Building a store never touches the network: errors surface on first use, classified."""
    gcs = open_store("gs://bucket/some/prefix", token="anon")
    assert isinstance(gcs, RemoteStore) and gcs.root == "bucket/some/prefix"
    sftp = RemoteStore("sftp://me@127.0.0.1:1/srv/fedbox", retry_timeout=0)
    assert sftp.root == "/srv/fedbox"
    with pytest.raises(StoreError, match="unreachable"):
        sftp.list()


def test_storage_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        ENV_STORAGE_OPTIONS,
        '{"timeout": 5, "s3": {"endpoint_url": "http://x", "timeout": 9}, "sftp": {"port": 1}}',
    )
    assert storage_options_from_env("s3") == {"endpoint_url": "http://x", "timeout": 9}
    assert storage_options_from_env("webdav") == {"timeout": 5}
    monkeypatch.setenv(ENV_STORAGE_OPTIONS, "{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        storage_options_from_env("s3")


def test_environment_options_reach_the_backend(
    monkeypatch: pytest.MonkeyPatch, make_target: Callable[[str], Target]
) -> None:
    target = make_target("webdav")
    monkeypatch.setenv(ENV_STORAGE_OPTIONS, '{"webdav": {"auth": ["alice", "s3cret"]}}')
    store = open_store(target.url)
    store.put("a/f.request", b"env")
    assert store.read("a/f.request") == b"env"
    store.close()


def test_a_missing_backend_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "fedbox.store.registry._registry", {"zz": BackendSpec("x:y", ("no_such_module_zz",))}
    )
    with pytest.raises(MissingBackend, match=r"pip install 'fedbox\[remote\]'") as info:
        get_backend("zz")
    assert isinstance(info.value, ImportError) and isinstance(info.value, StoreError)


def test_gdrive_is_import_guarded() -> None:
    try:
        import pydrive2  # noqa: F401
    except ImportError:
        with pytest.raises(MissingBackend, match=r"fedbox\[gdrive\]"):
            RemoteStore("gdrive://root/fedbox")
    else:
        assert get_backend("gdrive").atomic_put


def test_register_backend_refuses_silent_replacement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fedbox.store.registry._registry", {})
    spec = BackendSpec("fedbox.store.backends:MemoryBackend")
    register_backend("mem2", spec)
    with pytest.raises(ValueError, match="already"):
        register_backend("mem2", spec)
    assert get_backend("mem2").flat


def test_memory_stores_are_private_unless_they_share_fs() -> None:
    a, b = RemoteStore("memory://same"), RemoteStore("memory://same")
    a.put("f.request", b"x")
    assert not b.exists("f.request")
    shared = RemoteStore("memory://same", fs=a.fs)
    assert shared.read("f.request") == b"x"


def test_passwords_stay_out_of_logs_and_errors() -> None:
    store = RemoteStore("webdav://bob:hunter2@127.0.0.1:9/x")
    assert "hunter2" not in repr(store) and "***" in store.url


# -- atomic commits ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_uploads_land_beside_under_a_dot_name_then_move(
    name: str, make_target: Callable[[str], Target]
) -> None:
    """While the bytes travel, the final name does not exist (S3: one PUT to it)."""
    store = make_target(name).make()
    original = store.backend.upload
    uploads: list[str] = []

    def spy(fs, path: str, data: bytes) -> None:
        original(fs, path, data)
        uploads.append(path.rpartition("/")[2])
        if not store.backend.atomic_put:  # uploaded, not yet renamed: still invisible
            assert not store.exists("a/b/f.request")
            assert store.list("a") == []

    store.backend.upload = spy  # type: ignore[method-assign]
    store.put("a/b/f.request", b"x" * 1000)
    assert store.read("a/b/f.request") == b"x" * 1000
    if store.backend.atomic_put:
        assert uploads == ["f.request"]
    else:
        assert len(uploads) == 1 and uploads[0].startswith(".f.request.tmp-")
    hidden = [e for e in store.list("a") if "/." in e.path]
    assert hidden == []


# -- polling ----------------------------------------------------------------------------


def count_listings(fs) -> list[str]:
    """Record every ``ls``/``find`` the filesystem serves, as ``"ls PATH"``."""
    calls: list[str] = []
    for name in ("ls", "find"):
        original = getattr(fs, name)

        def counted(path, *args, _original=original, _name=name, **kwargs):
            calls.append(f"{_name} {path}")
            return _original(path, *args, **kwargs)

        setattr(fs, name, counted)
    return calls


def test_poll_cost_grows_with_my_folders_not_with_the_store() -> None:
    writer = RemoteStore("memory://")
    for i in range(40):
        writer.put(f"syft_outbox_inbox_p{i}@x.org_to_other@x.org/app/rpc/e/{i}.request", b"x")
    for i in range(2):
        writer.put(f"syft_outbox_inbox_p{i}@x.org_to_me@x.org/app/rpc/e/{i}.request", b"x")
    calls = count_listings(writer.fs)
    reader = RemoteStore("memory://", fs=writer.fs, min_poll_interval=0.01, max_poll_interval=0.01)
    mine = lambda name: name.endswith("_to_me@x.org")  # noqa: E731
    with reader.watch("", (".request",), folders=mine):
        calls.clear()
        time.sleep(0.2)
    polls = [c for c in calls if c.startswith("ls")]
    assert polls, "the watcher did not poll"
    finds = Counter(c for c in calls if c.startswith("find"))
    mine_listed = {f"find syft_outbox_inbox_p{i}@x.org_to_me@x.org" for i in range(2)}
    assert set(finds) == mine_listed, "only my folders are listed, each as one subtree"
    # Each poll lists each of my folders once (the count may start or stop mid-poll).
    assert max(finds.values()) - min(finds.values()) <= 1


def test_polling_backs_off_when_idle_and_speeds_up_on_traffic() -> None:
    store = RemoteStore("memory://", min_poll_interval=0.01, max_poll_interval=0.16)
    with store.watch() as watcher:
        wait_until(lambda: watcher.interval >= 0.16, "a back-off to the ceiling", timeout=5)
        other = RemoteStore("memory://", fs=store.fs)
        other.put("f.request", b"x")  # not poked: found by a slow poll, then fast again
        assert watcher.next_batch(timeout=5) == {"f.request"}
        assert watcher.interval <= 0.02
        while watcher.interval < 0.16:
            time.sleep(0.02)
        store.put("g.request", b"x")  # our own write: a reply is due, poll fast now
        assert watcher.interval == 0.01
        assert watcher.next_batch(timeout=5) == {"g.request"}


def test_poller_survives_a_failing_lister_and_reports_everything_after() -> None:
    state = {"fail": True}

    def lister() -> set[str]:
        if state["fail"]:
            raise StoreError("down")
        return {"a", "b"}

    with AdaptivePollWatcher(lister, min_interval=0.01, max_interval=0.04) as watcher:
        assert watcher.next_batch(timeout=0.2) == set()
        assert watcher.interval == 0.04
        state["fail"] = False
        assert watcher.next_batch(timeout=2) == {"a", "b"}


# -- failures ---------------------------------------------------------------------------


def _named(name: str, **attrs: object) -> Exception:
    exc = type(name, (Exception,), {})()
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Failure.TRANSIENT),
        (TimeoutError(), Failure.TRANSIENT),
        (OSError(errno.EHOSTUNREACH, "no route"), Failure.TRANSIENT),
        (_named("EndpointConnectionError"), Failure.TRANSIENT),
        (_named("SFTPNoConnection"), Failure.TRANSIENT),
        (_named("HTTPError", status_code=503), Failure.TRANSIENT),
        (_named("HTTPError", status_code=401), Failure.CREDENTIALS),
        (
            _named("ClientError", response={"Error": {"Code": "SignatureDoesNotMatch"}}),
            Failure.CREDENTIALS,
        ),
        (_named("ClientError", response={"Error": {"Code": "SlowDown"}}), Failure.TRANSIENT),
        (PermissionError("Permission denied for user u"), Failure.CREDENTIALS),
        (_named("HostKeyNotVerifiable"), Failure.CREDENTIALS),
        (FileNotFoundError(), Failure.NOT_FOUND),
        (ValueError("odd"), Failure.FATAL),
    ],
)
def test_errors_are_classified(exc: Exception, kind: Failure) -> None:
    assert classify(exc) is kind


def test_the_cause_decides_when_the_wrapper_is_generic() -> None:
    try:
        try:
            raise _named("ClientError", response={"ResponseMetadata": {"HTTPStatusCode": 500}})
        except Exception as inner:
            raise OSError(errno.EIO, "remote I/O error") from inner
    except OSError as outer:
        assert classify(outer) is Failure.TRANSIENT


@pytest.mark.parametrize("name", SERVERS)
def test_refused_credentials_fail_fast_and_clearly(
    name: str, make_target: Callable[[str], Target], caplog: pytest.LogCaptureFixture
) -> None:
    store = make_target(name).make_bad(retry_timeout=30)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, "fedbox.store.remote"):
        with pytest.raises(StoreError, match="refused access") as info:
            store.put("a/f.request", b"x")
        with pytest.raises(StoreError, match="refused access"):
            store.list("a")
    assert time.monotonic() - started < 10, "credentials errors must not be retried"
    assert "Check the credentials" in str(info.value)
    assert len([r for r in caplog.records if "refused our credentials" in r.message]) == 1


def test_an_unreachable_store_fails_after_the_retry_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    store = RemoteStore(f"webdav://127.0.0.1:{port}/x", auth=["a", "b"], retry_timeout=1.5)
    started = time.monotonic()
    with (
        caplog.at_level(logging.DEBUG, "fedbox.store.remote"),
        pytest.raises(StoreError, match="unreachable") as info,
    ):
        store.put("a/f.request", b"x")
    elapsed = time.monotonic() - started
    assert 1.3 < elapsed < 6
    assert classify(info.value.__cause__) is Failure.TRANSIENT
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one log line per outage, not per attempt"


def test_a_one_off_failure_is_retried_quietly(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _named("HTTPError", status_code=500)
        return "ok"

    with caplog.at_level(logging.DEBUG, "fedbox.store.remote"):
        assert retrying(flaky, budget=5, outage=Outage("s3://b")) == "ok"
    assert len(calls) == 2
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


@pytest.mark.parametrize("name", SERVERS)
def test_operations_wait_out_a_short_outage(
    name: str, make_target: Callable[[str], Target]
) -> None:
    target = make_target(name)
    store = target.make(retry_timeout=30)
    store.put("a/before.request", b"1")
    target.server.stop()
    restart = threading.Timer(1.0, target.server.start)
    restart.start()
    try:
        store.put("a/during.request", b"2")  # blocks, retrying, until the server is back
    finally:
        restart.join()
    assert sorted(e.path for e in store.list("a")) == ["a/before.request", "a/during.request"]


def test_a_waiting_caller_looks_replies_up_by_name_without_listing() -> None:
    store = RemoteStore("memory://", min_poll_interval=0.01, max_poll_interval=0.05)
    peer = RemoteStore("memory://", fs=store.fs)
    reply = "syft_outbox_inbox_b@x.org_to_a@x.org/app/rpc/e/1.response"
    with store.watch("", (".response",), folders=lambda n: n.endswith("_to_a@x.org")) as watcher:
        watcher.list_when(lambda: False)
        calls = count_listings(store.fs)
        watcher.expect([reply])
        time.sleep(0.05)
        peer.put(reply, b"answer")
        assert watcher.next_batch(timeout=5) == {reply}
        time.sleep(0.05)  # nothing due any more: the store is left alone
        assert calls == []
    assert store.read(reply) == b"answer"


def test_an_expected_file_is_reported_even_if_it_was_there_first() -> None:
    store = RemoteStore("memory://", min_poll_interval=0.01, max_poll_interval=0.05)
    store.put("f/old.response", b"x")
    with store.watch("", (".response",)) as watcher:  # baseline: old.response is not new
        assert watcher.next_batch(timeout=0.1) == set()
        watcher.expect(["f/old.response"])
        assert watcher.next_batch(timeout=5) == {"f/old.response"}


def test_a_new_folder_is_listed_in_the_poll_that_finds_its_name() -> None:
    """First contact (issue 20): a new sender's folder waits for no refresh."""
    folders = ["a"]
    listed: list[str] = []

    def names() -> list[str]:
        listed.append("names")
        return list(folders)

    def files(folder: str) -> list[str]:
        listed.append(folder)
        return [f"{folder}/x"]

    scan = FolderScan(names, files)
    assert scan() == {"a/x"}
    folders.append("b")
    assert scan() == {"a/x", "b/x"}
    assert listed[:2] == ["names", "a"], "no folder known: the names first"
    assert sorted(listed[2:4]) == ["a", "names"]
    assert listed[4:] == ["b"], "the new folder after the names, the known ones beside them"
    folders.remove("a")  # cleaned up
    assert scan() == {"a/x", "b/x"}, "listed beside the names, which no longer show it"
    assert scan() == {"b/x"}


def test_a_failed_names_listing_fails_the_poll() -> None:
    def names() -> list[str]:
        if calls:
            raise OSError("store down")
        calls.append(1)
        return ["a"]

    calls: list[int] = []
    scan = FolderScan(names, lambda folder: [f"{folder}/x"])
    assert scan() == {"a/x"}
    with pytest.raises(OSError, match="store down"):
        scan()


def test_a_leaf_scan_lists_only_the_folders_that_held_messages() -> None:
    tree = {"in/app/rpc/e": ["in/app/rpc/e/1.request"], "in/app/blobs": []}
    calls: list[str] = []

    def walk() -> list[str]:
        calls.append("walk")
        return [p for files in tree.values() for p in files]

    def files_in(folder: str) -> list[str]:
        calls.append(folder)
        return list(tree.get(folder, []))

    scan = LeafScan(walk, files_in, refresh=0.2)
    assert scan() == ["in/app/rpc/e/1.request"]
    tree["in/app/rpc/e"].append("in/app/rpc/e/2.request")
    tree["in/other/rpc/e"] = ["in/other/rpc/e/3.request"]  # a new app: waits for the walk
    assert scan() == ["in/app/rpc/e/1.request", "in/app/rpc/e/2.request"]
    assert calls == ["walk", "in/app/rpc/e"], "one listing per poll, not a walk"
    time.sleep(0.2)
    assert "in/other/rpc/e/3.request" in scan()
    tree["in/app/rpc/e"] = []  # cleaned up: the folder stays known, no walk per poll
    calls.clear()
    assert scan() == ["in/other/rpc/e/3.request"]
    assert calls == ["in/app/rpc/e", "in/other/rpc/e"]


def test_folder_names_are_listed_every_poll_while_there_are_none() -> None:
    folders: list[str] = []
    scan = FolderScan(lambda: list(folders), lambda folder: [f"{folder}/x"])
    assert scan() == set()
    folders.append("first")  # a participant's first message creates its folder
    assert scan() == {"first/x"}, "found at the next poll"
    folders.append("second")
    assert scan() == {"first/x", "second/x"}, "and so is every later sender's"


def test_polls_keep_to_their_grid() -> None:
    """Each poll starts at its own grid instant (a wall-clock multiple of the interval):
    neither a slow listing nor a late wake-up pushes the following ones back."""
    phases: list[float] = []

    def lister() -> set[str]:
        phases.append(time.time() % 0.02)
        time.sleep(0.004)  # a slow listing
        return set()

    with AdaptivePollWatcher(lister, min_interval=0.02, max_interval=0.02):
        time.sleep(0.5)
    polls = phases[1:]  # after the baseline listing made by the constructor
    assert len(polls) >= 20, "one poll per interval, none skipped"
    assert statistics.median(polls) < 0.003, "on the shared grid, lateness not added up"


def test_a_reply_that_takes_thousands_of_lookups_is_still_found() -> None:
    """A caller may wait minutes: misses keep the lookups on the grid, and the watcher
    survives them (the retry's doubling once overflowed a float after ~1000 misses)."""
    lookups: list[str] = []

    def prober(path: str) -> bool:
        lookups.append(path)
        return len(lookups) > 1200

    with AdaptivePollWatcher(set, min_interval=0.002, max_interval=0.002, prober=prober) as watcher:
        watcher.list_when(lambda: False)
        watcher.expect(["slow.response"])
        assert watcher.next_batch(timeout=30) == {"slow.response"}
    assert len(lookups) == 1201


def test_lookups_by_name_learn_the_peers_turnaround() -> None:
    """A peer that lists at each grid instant and replies 15 ms later: lookups move to
    about then, so a reply is found soon after it lands, not an interval later."""
    interval, turnaround = 0.05, 0.015
    lands: dict[str, float] = {}
    lookups: list[str] = []

    def prober(path: str) -> bool:
        lookups.append(path)
        return time.monotonic() >= lands[path]

    late: list[float] = []
    with AdaptivePollWatcher(
        set, min_interval=interval, max_interval=interval, prober=prober
    ) as watcher:
        watcher.list_when(lambda: False)
        for i in range(40):
            lands[f"r{i}"] = grid_after(time.monotonic(), interval) + turnaround
            watcher.expect([f"r{i}"])
            assert watcher.next_batch(timeout=2) == {f"r{i}"}
            late.append(time.monotonic() - lands[f"r{i}"])
            watcher.forget([f"r{i}"])
    assert turnaround - interval / 8 <= watcher.lead <= turnaround + interval / 4
    assert statistics.median(late[-20:]) < interval / 3, "found soon after landing"
    assert len(lookups) < 3 * 40, "a few lookups per reply, not a busy loop"
