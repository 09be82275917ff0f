"""An encrypted request file changed on disk, region by region: each is refused, never run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from waiting import wait_for

import fedbox
from fedbox.crypto import SEGMENT_SIZE, TAG_SIZE
from fedbox.datasite.identity import new_message_id
from fedbox.datasite.paths import request_path
from fedbox.rpc.envelope import read_header
from fedbox.rpc.futures import Future, FutureRecord
from fedbox.rpc.sealing import read_published
from fedbox.testing import message_header

ALICE, BOB, CAROL = "alice@a.org", "bob@b.org", "carol@c.org"
CHUNK = SEGMENT_SIZE + TAG_SIZE
BODY_LEN = 2 * SEGMENT_SIZE + SEGMENT_SIZE // 2  # segments 0 and 1 full, 2 the last

Tamper = Callable[[bytearray, int], None]


def _flip(data: bytearray, at: int) -> None:
    data[at] ^= 0x01


def _in_header(key: bytes, *, occurrence: int = 1, skip: int = 0) -> Tamper:
    """Change one character of the JSON value after ``key`` (keeping the file's length)."""

    def tamper(data: bytearray, body_start: int) -> None:
        at = -1
        for _ in range(occurrence):
            at = data.index(key, at + 1, body_start)
        at += len(key) + skip
        old = chr(data[at])
        data[at] = (
            ord("B" if old == "A" else "A") if old.isalpha() else ord("1" if old != "1" else "2")
        )

    return tamper


def _segment(index: int, offset: int) -> Tamper:
    def tamper(data: bytearray, body_start: int) -> None:
        _flip(data, body_start + index * CHUNK + offset)

    return tamper


def _last_byte(data: bytearray, body_start: int) -> None:
    _flip(data, len(data) - 1)


def _truncate(data: bytearray, body_start: int) -> None:
    del data[-1]


def _extend(data: bytearray, body_start: int) -> None:
    data += b"\0"


def _swap_segments(data: bytearray, body_start: int) -> None:
    first = slice(body_start, body_start + CHUNK)
    second = slice(body_start + CHUNK, body_start + 2 * CHUNK)
    data[first], data[second] = data[second], data[first]


# name -> (tamper, what the refusal says)
CASES: dict[str, tuple[Tamper, str]] = {
    "header created": (_in_header(b'"created":'), "failed authentication"),
    "header expires": (_in_header(b'"expires":'), "failed authentication"),
    "header user headers": (_in_header(b'"round":"'), "failed authentication"),
    # v2 leaves a sealed body's body_sha256 empty; v is bound, so no downgrade to v1
    "header v": (_in_header(b'"v":', occurrence=2), "failed authentication"),
    "header body_len": (_in_header(b'"body_len":', skip=1), "failed authentication"),
    # v3 binds the nonce prefix into every KEK: a changed one fails at the key wrap.
    "enc nonce_prefix": (_in_header(b'"nonce_prefix":"'), "failed authentication"),
    "wrap ephemeral": (_in_header(b'"ephemeral":"'), "failed authentication"),
    "wrap wrapped key": (_in_header(b'"wrapped":"'), "failed authentication"),
    "wrap prekey id": (_in_header(b'"prekey_id":"'), "does not hold"),
    "segment 0": (_segment(0, 1000), "segment 0 failed"),
    "segment 1": (_segment(1, 5), "segment 1 failed"),
    "segment 2 (last)": (_segment(2, 7), "segment 2 failed"),
    "tag of segment 0": (_segment(0, CHUNK - 1), "segment 0 failed"),
    "tag of the last segment": (_last_byte, "segment 2 failed"),
    "truncated": (_truncate, "truncated"),
    "extended": (_extend, "bytes after the body"),
    "segments reordered": (_swap_segments, "segment 0 failed"),
}


def _body_start(path: Path) -> int:
    with open(path, "rb") as f:
        read_header(f)
        return f.tell()


def test_every_region_of_an_encrypted_request_is_checked(root: Path, start_peer) -> None:
    fedbox.connect(root, BOB, encrypt=True).close()  # bob publishes keys, then is away
    body = os.urandom(BODY_LEN)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        app = alice.app("t")
        control = app.send(BOB, "echo", body, headers={"round": "1"})
        tampered: dict[str, tuple[fedbox.Future, bytes, str]] = {}
        for name, (tamper, reason) in CASES.items():
            fut = app.send(BOB, "echo", body, headers={"round": "1"})
            path = root / request_path(ALICE, BOB, "t", "echo", fut.id)
            data = bytearray(path.read_bytes())
            tamper(data, _body_start(path))
            path.write_bytes(bytes(data))
            tampered[name] = (fut, bytes(data), reason)
        bob = start_peer(BOB, encrypt=True)
        assert control.wait(60).body == body
        for name, (fut, data, reason) in tampered.items():
            response = fut.wait(60)
            assert response.status == 400, (name, response.text)
            assert "undecryptable request" in response.text, name
            assert reason in response.text, (name, response.text)
            path = root / request_path(ALICE, BOB, "t", "echo", fut.id)
            quarantined = path.parent / ".quarantine" / path.name
            wait_for(quarantined)  # the refusal is written first, then the request moved
            assert not path.exists(), name
            assert quarantined.read_bytes() == data, name
    assert bob.stop() == {"handled": 1}


def test_a_request_wrapped_for_someone_else_is_refused(root: Path, start_peer) -> None:
    for email in (BOB, CAROL):
        fedbox.connect(root, email, encrypt=True).close()
    bob = start_peer(BOB, encrypt=True)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        msg_id = new_message_id()
        header = message_header(
            ALICE, BOB, "t", "echo", msg_id=msg_id, created=1e9, expires_in=4e9 - 1e9
        )
        path = str(request_path(ALICE, BOB, "t", "echo", msg_id))
        with alice.store.writer(path) as f:  # addressed to bob, encrypted for carol
            alice.sealer.encrypt_into(f, header, b"for carol", read_published(alice.store, CAROL))
        record = FutureRecord(
            id=msg_id, app="t", endpoint="echo", recipient=BOB, created=1e9, expires=4e9
        )
        alice.futures.add(record)
        response = Future(alice, record).wait(30)
    assert response.status == 400
    assert "not encrypted for bob@b.org (readers: carol@c.org, alice@a.org)" in response.text
    assert bob.stop() == {"handled": 0}


def test_a_third_identity_cannot_decrypt(root: Path) -> None:
    fedbox.connect(root, BOB, encrypt=True).close()
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        fut = alice.app("t").send(BOB, "echo", b"for bob only")
    path = root / request_path(ALICE, BOB, "t", "echo", fut.id)
    with fedbox.connect(root, CAROL, encrypt=True) as carol, open(path, "rb") as f:
        header = read_header(f)
        with pytest.raises(fedbox.DecryptError, match=r"not encrypted for carol@c\.org") as info:
            carol.sealer.open_body(f, header, path=str(path))
    assert info.value.message_id == fut.id
    # Relabelling bob's wrap for carol does not help: the key agreement is bob's.
    wraps = header.enc["wraps"]
    wraps[0] = {**wraps[0], "to": CAROL, "prekey_id": carol.sealer.identity.prekey_id}
    with fedbox.connect(root, CAROL, encrypt=True) as carol, open(path, "rb") as f:
        read_header(f)
        with pytest.raises(fedbox.DecryptError, match="failed authentication"):
            carol.sealer.open_body(f, header, path=str(path))
