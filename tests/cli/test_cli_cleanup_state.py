"""`fedbox cleanup --state-dir` (issue 12, point 12): it takes the state dir the other
commands take, and refuses to act for an email whose keys are not in it."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from cli_process import fedbox_cli

from fedbox.crypto import Identity


def old_request(root: Path, sender: str) -> Path:
    folder = root / f"syft_outbox_inbox_{sender}_to_b@x.org" / "app" / "rpc" / "ep"
    folder.mkdir(parents=True)
    path = folder / f"{uuid.uuid4()}.request"
    path.write_bytes(b"FBX1")
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))
    return path


def cleanup(root: Path, state: Path) -> tuple[int, str]:
    result = fedbox_cli(
        "cleanup", "--root", str(root), "--email", "a@x.org", "--state-dir", str(state)
    )
    return result.returncode, result.stdout + result.stderr


def test_cleanup_with_the_identity_s_own_state_dir(root: Path, tmp_path: Path) -> None:
    request = old_request(root, "a@x.org")
    Identity.load_or_create(tmp_path / "a-state", "a@x.org")
    code, out = cleanup(root, tmp_path / "a-state")
    assert code == 0 and "removed 1 files" in out, out
    assert not request.exists()


def test_cleanup_refuses_a_state_dir_holding_another_identity(root: Path, tmp_path: Path) -> None:
    request = old_request(root, "a@x.org")
    Identity.load_or_create(tmp_path / "b-state", "b@x.org")
    code, out = cleanup(root, tmp_path / "b-state")
    assert code == 2 and "belong to b@x.org, not a@x.org" in out, out
    assert request.exists()


def test_cleanup_refuses_a_missing_state_dir(root: Path, tmp_path: Path) -> None:
    request = old_request(root, "a@x.org")
    code, out = cleanup(root, tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in out, out
    assert request.exists()
