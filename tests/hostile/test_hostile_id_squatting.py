"""Threat: a peer who can write the shared folder sends requests under another peer's
pending ids (ids are visible in the folders); it must not take their place (issue 11.8)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from peer_process import run_peer

from fedbox.datasite.paths import request_path, response_path
from fedbox.rpc.envelope import Header, read_envelope, write_envelope

ALICE, BOB, CAROL = "alice@a.org", "bob@b.org", "carol@c.org"


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _carol_echo(msg_id: str) -> bytes:
    now = time.time()
    header = Header(
        id=msg_id,
        kind="request",
        sender=CAROL,
        recipient=BOB,
        app="t",
        endpoint="echo",
        created=now,
        expires=now + 600,
    )
    buf = io.BytesIO()
    write_envelope(buf, header, b"carol's own")
    return buf.getvalue()


def test_requests_under_anothers_pending_ids_do_not_take_their_place(
    root: Path, start_peer
) -> None:
    ids = run_peer("send", str(root), ALICE, "t", BOB, "echo", "10", "64")
    for i, msg_id in enumerate(ids):  # while bob is offline, carol squats every id
        squat = root / request_path(CAROL, BOB, "t", "echo", msg_id)
        squat.parent.mkdir(parents=True, exist_ok=True)
        squat.write_bytes(_carol_echo(msg_id) if i == 0 else b"junk")
    bob = start_peer(BOB)
    results = run_peer("wait", str(root), ALICE, "t", json.dumps(ids))
    assert [(r["id"], r["status"], r["sender"]) for r in results] == [(i, 200, BOB) for i in ids]
    answers = []
    for msg_id in ids:
        to_carol = root / response_path(CAROL, BOB, "t", "echo", msg_id)
        _wait_for(to_carol)
        with open(to_carol, "rb") as f:
            header, body = read_envelope(f)
        answers.append((header.status, body))
    assert answers[0] == (200, b"carol's own")
    assert {status for status, _ in answers[1:]} == {400}
    assert all(b"too short" in body for _, body in answers[1:])
    assert bob.stop() == {"handled": 11}
