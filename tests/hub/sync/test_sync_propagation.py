"""Three daemons on three folders: creates, edits, deletes, renames and empty files travel
every way through the hub."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from conftest import A, B, C
from hub_process import HubProcess, client_for
from sync_process import SHARED_RULES, SyncProcess, log_in
from waiting import wait_until

SHARED = f"datasites/{A}/shared"


def _everywhere(folders: list[Path], rel: str, data: bytes | None) -> Callable[[], bool]:
    def check() -> bool:
        for folder in folders:
            path = folder / rel
            if data is None:
                if path.exists():
                    return False
            elif not path.is_file() or path.read_bytes() != data:
                return False
        return True

    return check


def test_three_daemons_mirror_every_kind_of_change_both_ways(
    hub: HubProcess, tmp_path: Path, start_sync: Callable[..., SyncProcess]
) -> None:
    rules = client_for(hub.url, A).put(
        f"/api/v1/files/datasites/{A}/syft.pub.yaml", content=SHARED_RULES
    )
    assert rules.status_code == 200, rules.text
    folders = {who: tmp_path / who.split("@")[0] for who in (A, B, C)}
    for who, folder in folders.items():
        log_in(hub.url, who)
        start_sync(hub.url, who, folder)
    everyone = list(folders.values())
    # Only the owner may read a rule file: it reaches Alice's folder alone.
    rules_file = f"datasites/{A}/syft.pub.yaml"
    wait_until(_everywhere([folders[A]], rules_file, SHARED_RULES.encode()), "alice's rules")
    assert not (folders[B] / rules_file).exists()

    # Bob creates, Carol edits, Alice renames, Bob deletes; and an empty file.
    (folders[B] / SHARED).mkdir(parents=True, exist_ok=True)
    (folders[B] / SHARED / "notes.txt").write_bytes(b"from bob")
    wait_until(_everywhere(everyone, f"{SHARED}/notes.txt", b"from bob"), "bob's file")
    (folders[C] / SHARED / "notes.txt").write_bytes(b"carol edited")
    wait_until(_everywhere(everyone, f"{SHARED}/notes.txt", b"carol edited"), "carol's edit")
    os.rename(folders[A] / SHARED / "notes.txt", folders[A] / SHARED / "renamed.txt")
    wait_until(_everywhere(everyone, f"{SHARED}/renamed.txt", b"carol edited"), "the rename")
    wait_until(_everywhere(everyone, f"{SHARED}/notes.txt", None), "the old name to go")
    (folders[C] / SHARED / "empty.dat").write_bytes(b"")
    wait_until(_everywhere(everyone, f"{SHARED}/empty.dat", b""), "the empty file")
    (folders[B] / SHARED / "renamed.txt").unlink()
    wait_until(_everywhere(everyone, f"{SHARED}/renamed.txt", None), "the delete")
    # A folder renamed in from outside the tree, and one renamed out of it.
    outside = tmp_path / "outside"
    (outside / "batch").mkdir(parents=True)
    for i in range(3):
        (outside / "batch" / f"{i}.txt").write_text(str(i))
    os.rename(outside / "batch", folders[C] / SHARED / "batch")
    for i in range(3):
        wait_until(_everywhere(everyone, f"{SHARED}/batch/{i}.txt", str(i).encode()), "batch")
    os.rename(folders[A] / SHARED / "batch", outside / "gone")
    for i in range(3):
        wait_until(_everywhere(everyone, f"{SHARED}/batch/{i}.txt", None), "the folder to go")
    assert (outside / "gone" / "0.txt").read_text() == "0"
