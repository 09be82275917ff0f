"""A send that cannot write its request (issue 11.15) fails with StoreError naming the
request's path and leaves no pending future behind: a future exists only for a request
that is in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_disk import fill, small_tmpfs

import fedbox
from fedbox.errors import StoreError


def _pending_ids(box: fedbox.Box) -> set[str]:
    return {r.id for r in box.futures.pending()}


def _requests_on_disk(root: Path) -> set[str]:
    return {p.stem for p in root.rglob("*.request")}


def test_a_full_disk_raises_store_error_with_the_path_and_keeps_no_future(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        root = disk / "store"
        root.mkdir()
        with fedbox.connect(root, "a@x.org", encrypt=False) as a:
            app = a.app("t")
            filler = fill(disk)
            with pytest.raises(StoreError) as info:
                app.send("b@x.org", "echo", b"x" * 8192)
            assert info.value.path is not None
            assert info.value.path.startswith("syft_outbox_inbox_a@x.org_to_b@x.org/t/rpc/echo/")
            assert info.value.path in str(info.value)
            assert _pending_ids(a) == set() == _requests_on_disk(root)

            filler.unlink()  # space again: sending works and the future is kept
            fut = app.send("b@x.org", "echo", b"x" * 8192)
            assert _pending_ids(a) == {fut.id} == _requests_on_disk(root)


@pytest.mark.parametrize("how", ["send", "broadcast"])
def test_a_blocked_folder_raises_store_error_and_keeps_only_written_futures(
    root: Path, how: str
) -> None:
    blocked = root / "syft_outbox_inbox_a@x.org_to_b@x.org" / "t"
    blocked.parent.mkdir()
    blocked.write_bytes(b"a file where the app folder should be")
    with fedbox.connect(root, "a@x.org", encrypt=False) as a:
        app = a.app("t")
        with pytest.raises(StoreError) as info:
            if how == "send":
                app.send("b@x.org", "echo", b"hello")
            else:
                app.broadcast(["c@x.org", "b@x.org"], "echo", b"x" * (128 * 1024))
        assert info.value.path is not None and "a@x.org_to_b@x.org" in info.value.path
        expected = {"send": 0, "broadcast": 1}[how]  # c's request was written before b's
        assert _pending_ids(a) == _requests_on_disk(root)
        assert len(_pending_ids(a)) == expected


def test_a_future_that_cannot_be_recorded_takes_its_request_back(
    tmp_path: Path, root: Path
) -> None:
    """Passes on the old code too (it recorded first); guards the new order's rollback."""
    with (
        small_tmpfs(tmp_path / "disk") as disk,
        fedbox.connect(root, "a@x.org", state_dir=disk / "state", encrypt=False) as a,
    ):
        filler = fill(disk)
        with pytest.raises(Exception, match="full"):
            a.app("t").send("b@x.org", "echo", b"x")
        assert _requests_on_disk(root) == set()
        filler.unlink()
        fut = a.app("t").send("b@x.org", "echo", b"x")
        assert _pending_ids(a) == {fut.id} == _requests_on_disk(root)
