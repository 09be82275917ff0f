"""A co-recipient cannot change what another recipient of a broadcast reads (issue 11.11).

Threat model: a participant who can write the folders it reads from (its own inbox, on
a shared disk) can damage the blobs there. It can spoil its own copy of a broadcast's
body; it cannot spoil another recipient's: each recipient's blob is a file of its own,
never a hard link to one inode.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from planted import ALICE, BOB, CAROL

import fedbox
from fedbox.datasite.paths import blob_path

BODY = os.urandom(1 << 20)


def test_a_co_recipient_flipping_its_copy_leaves_the_others_intact(root: Path, start_peer) -> None:
    with fedbox.connect(root, ALICE, encrypt=False) as alice:
        to_bob, _to_carol = alice.app("t").broadcast([BOB, CAROL], "echo", BODY)
        name = hashlib.sha256(BODY).hexdigest()
        carols = root / blob_path(ALICE, CAROL, "t", name)
        with open(carols, "r+b") as f:  # carol damages her own copy, in place
            f.seek(len(BODY) // 2)
            f.write(b"\x00" if BODY[len(BODY) // 2] else b"\x01")
        bob = start_peer(BOB)
        answer = to_bob.wait(60)
    assert bob.stop() == {"handled": 1}
    assert answer.status == 200 and answer.body == BODY
    assert (root / blob_path(ALICE, BOB, "t", name)).read_bytes() == BODY
