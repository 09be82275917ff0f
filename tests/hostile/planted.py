"""Files a hostile participant plants in the shared folder, for the tests beside it."""

from __future__ import annotations

import uuid
from pathlib import Path

from fedbox.datasite.paths import request_path
from fedbox.testing import envelope_bytes, message_header

ALICE, BOB, CAROL = "alice@a.org", "bob@b.org", "carol@c.org"


def envelope(sender: str, recipient: str, msg_id: str, body: bytes = b"planted") -> bytes:
    """A valid plaintext request envelope for app ``t``, endpoint ``echo``."""
    header = message_header(sender, recipient, "t", "echo", msg_id=msg_id, expires_in=600)
    return envelope_bytes(header, body)


def request_at(root: Path, sender: str = ALICE, recipient: str = BOB) -> tuple[str, Path]:
    """A fresh request id and where its file goes (the folder made)."""
    msg_id = str(uuid.uuid4())
    path = root / request_path(sender, recipient, "t", "echo", msg_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return msg_id, path


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if not p.is_dir())
