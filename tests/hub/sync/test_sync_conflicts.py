"""Edits that race: one version wins on the hub, the other stays as a conflict copy; a
write the rules forbid is set aside as a rejected copy. Nothing is lost."""

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


def test_edits_made_apart_keep_both_versions(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    alice.put(f"/api/v1/files/{SHARED}/plan.txt", content=b"v1")
    log_in(hub.url, A), log_in(hub.url, B)
    a = start_sync(hub.url, A, tmp_path / "a")
    b = start_sync(hub.url, B, tmp_path / "b")
    for d in (a, b):
        wait_until(_has(d.folder / SHARED / "plan.txt", b"v1"), "the first version")
        wait_until(d.idle, "the daemon to settle")
    a.stop(), b.stop()
    (a.folder / SHARED / "plan.txt").write_bytes(b"alice's edit")
    (b.folder / SHARED / "plan.txt").write_bytes(b"bob's edit")
    a.start()
    wait_until(lambda: alice.get(f"/api/v1/files/{SHARED}/plan.txt").content == b"alice's edit",
               "alice's edit on the hub")  # fmt: skip
    b.start()
    conflict = b.folder / SHARED / "plan.conflict.txt"
    wait_until(_has(conflict, b"bob's edit"), "bob's edit kept as a conflict copy")
    wait_until(_has(b.folder / SHARED / "plan.txt", b"alice's edit"), "the hub's version")
    wait_until(b.idle, "bob's daemon to settle")
    assert alice.get(f"/api/v1/files/{SHARED}/plan.txt").content == b"alice's edit"
    assert not (a.folder / SHARED / "plan.conflict.txt").exists()  # conflict copies stay home
    assert [c["copy"] for c in b.status()["conflicts"]] == [f"{SHARED}/plan.conflict.txt"]


def test_a_forbidden_write_becomes_a_rejected_copy(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    alice = client_for(hub.url, A)
    alice.put(f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES)
    alice.put(f"/api/v1/files/datasites/{A}/public/data.csv", content=b"a,b\n1,2\n")
    log_in(hub.url, B)
    b = start_sync(hub.url, B, tmp_path / "b")
    public = b.folder / f"datasites/{A}/public"
    wait_until(_has(public / "data.csv", b"a,b\n1,2\n"), "alice's public file")
    (public / "data.csv").write_bytes(b"bob was here\n")  # bob may read it, not write it
    (public / "mine.txt").write_bytes(b"new")  # nor create files there
    wait_until(_has(public / "data.rejected.csv", b"bob was here\n"), "the rejected copy")
    wait_until(_has(public / "data.csv", b"a,b\n1,2\n"), "the hub's version back")
    wait_until(_has(public / "mine.rejected.txt", b"new"), "the new file set aside")
    assert not (public / "mine.txt").exists()
    assert alice.get(f"/api/v1/files/datasites/{A}/public/data.csv").content == b"a,b\n1,2\n"
    assert alice.get(f"/api/v1/files/datasites/{A}/public/mine.txt").status_code == 404
    wait_until(lambda: len(b.status()["rejected"]) == 2, "both rejections in the status")
    assert all("bob@y.org" in r["reason"] or "not found" in r["reason"]
               for r in b.status()["rejected"])  # fmt: skip


def test_files_a_new_rule_lets_others_read_reach_them(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    log_in(hub.url, A), log_in(hub.url, B)
    a = start_sync(hub.url, A, tmp_path / "a")
    b = start_sync(hub.url, B, tmp_path / "b")
    private = a.folder / SHARED / "report.txt"
    private.parent.mkdir(parents=True)
    private.write_text("private until shared")
    wait_until(lambda: a.status()["uploaded"] == 1 and a.idle(), "alice's upload")
    wait_until(b.idle, "bob to settle")
    assert not (b.folder / SHARED / "report.txt").exists()
    (a.folder / f"datasites/{A}/syft.pub.yaml").write_text(SHARED_RULES)
    wait_until(_has(b.folder / SHARED / "report.txt", b"private until shared"), "the file")
    wait_until(a.idle, "alice to settle")
    assert a.status()["downloaded"] == 0  # her own re-announced file did not come back
