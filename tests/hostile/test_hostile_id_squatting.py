"""Threat: a peer who can write the shared folder sends requests under another peer's
pending ids (ids are visible in the folders); it must not take their place (issue 11.8)."""

from __future__ import annotations

import json
from pathlib import Path

from peer_process import run_peer
from planted import ALICE, BOB, CAROL, envelope
from waiting import wait_for

from fedbox.datasite.paths import request_path, response_path
from fedbox.rpc.envelope import read_envelope


def test_requests_under_anothers_pending_ids_do_not_take_their_place(
    root: Path, start_peer
) -> None:
    ids = run_peer("send", str(root), ALICE, "t", BOB, "echo", "10", "64")
    for i, msg_id in enumerate(ids):  # while bob is offline, carol squats every id
        squat = root / request_path(CAROL, BOB, "t", "echo", msg_id)
        squat.parent.mkdir(parents=True, exist_ok=True)
        squat.write_bytes(envelope(CAROL, BOB, msg_id, b"carol's own") if i == 0 else b"junk")
    bob = start_peer(BOB)
    results = run_peer("wait", str(root), ALICE, "t", json.dumps(ids))
    assert [(r["id"], r["status"], r["sender"]) for r in results] == [(i, 200, BOB) for i in ids]
    answers = []
    for msg_id in ids:
        to_carol = root / response_path(CAROL, BOB, "t", "echo", msg_id)
        wait_for(to_carol)
        with open(to_carol, "rb") as f:
            header, body = read_envelope(f)
        answers.append((header.status, body))
    assert answers[0] == (200, b"carol's own")
    assert {status for status, _ in answers[1:]} == {400}
    assert all(b"too short" in body for _, body in answers[1:])
    assert bob.stop() == {"handled": 11}
