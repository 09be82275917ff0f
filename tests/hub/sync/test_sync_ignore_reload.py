"""``.fedboxignore`` edited while the daemon runs: newly ignored paths stop syncing (the
copies stay), newly included ones are reconciled on both sides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import A, B
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, SyncProcess, log_in
from waiting import wait_until

SHARED = f"datasites/{A}/shared"


def _has(path: Path, data: bytes) -> Callable[[], bool]:
    return lambda: path.is_file() and path.read_bytes() == data


def _edit_ignores(daemon: SyncProcess, text: str | None) -> None:
    """Write (None: delete) the daemon's ignore file, and wait until it applied it."""
    before = daemon.status()["ignores_read"]
    if text is None:
        (daemon.folder / ".fedboxignore").unlink()
    else:
        (daemon.folder / ".fedboxignore").write_text(text)
    wait_until(lambda: daemon.status()["ignores_read"] > before, "the ignore file applied")


def _on_hub(hub: HubProcess, rel: str) -> bytes | None:
    answer = client_for(hub.url, A).get(f"/api/v1/files/{SHARED}/{rel}")
    return answer.content if answer.status_code == 200 else None


def test_an_edited_ignore_file_applies_at_once(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    client_for(hub.url, A).put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    log_in(hub.url, A), log_in(hub.url, B)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".fedboxignore").write_text("*.log\n")
    a = start_sync(hub.url, A, tmp_path / "a")
    b = start_sync(hub.url, B, tmp_path / "b")
    mine, theirs = a.folder / SHARED, b.folder / SHARED
    mine.mkdir(parents=True)
    (mine / "run.log").write_bytes(b"log v1")
    (mine / "x.txt").write_bytes(b"synced")
    wait_until(_has(theirs / "x.txt", b"synced"), "the synced file")
    wait_until(a.idle, "alice to settle")
    assert _on_hub(hub, "run.log") is None

    _edit_ignores(a, "# nothing ignored now\n")  # included again: uploaded
    wait_until(_has(theirs / "run.log", b"log v1"), "the un-ignored file at bob's")

    _edit_ignores(b, "*.log\n")  # ignored at bob's: his copy stays
    (theirs / "own.log").write_bytes(b"bob's own log")
    (mine / "run.log").write_bytes(b"log v2")
    wait_until(lambda: _on_hub(hub, "run.log") == b"log v2", "alice's edit on the hub")
    (mine / "x2.txt").write_bytes(b"after the edit")
    wait_until(_has(theirs / "x2.txt", b"after the edit"), "a later file at bob's")
    wait_until(b.idle, "bob to settle")
    assert (theirs / "run.log").read_bytes() == b"log v1"
    assert _on_hub(hub, "own.log") is None

    _edit_ignores(b, None)  # included again: both sides reconciled
    wait_until(_has(theirs / "run.log", b"log v2"), "the newer version at bob's")
    wait_until(lambda: _on_hub(hub, "own.log") == b"bob's own log", "bob's log uploaded")
    wait_until(_has(mine / "own.log", b"bob's own log"), "bob's log at alice's")
