"""``fedbox cleanup`` through a planted link (issue 11.4).

Threat model: a participant who can write the shared folder can replace someone's
outbox, or a folder in it, by a link to a folder outside the root. It can make that
participant's cleanup skip the outbox; it cannot make it delete anything outside the
root.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cli_process import fedbox_cli
from planted import ALICE, BOB, files_under

from fedbox.datasite.paths import outbox_dir


def _old_files(folder: Path) -> list[Path]:
    """Files cleanup would remove if it reached them: a request, a blob, a temp file."""
    made = [
        folder / "t" / "rpc" / "echo" / "0b1c6f9e-8d3a-4d62-9f0e-3f1a2b4c5d6e.request",
        folder / "t" / "blobs" / ("ab" * 32),
        folder / "t" / "rpc" / "echo" / ".x.request.tmp-0123456789ab",
    ]
    past = time.time() - 30 * 86400
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not yours to delete")
        os.utime(path, (past, past))
    return made


def test_cleanup_through_a_symlinked_outbox_deletes_nothing_outside(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    kept = _old_files(outside)
    (root / outbox_dir(ALICE, BOB)).symlink_to(outside, target_is_directory=True)
    done = fedbox_cli("cleanup", "--root", str(root), "--email", ALICE, "--older-than", "1s")
    assert done.returncode == 0, done.stderr
    assert files_under(outside) == sorted(kept)
