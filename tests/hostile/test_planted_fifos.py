"""FIFOs named like requests (issue 11.3).

Threat model: a participant who can write the shared folder can create a FIFO named
``{uuid}.request`` in anyone's inbox. It can make the recipient look at it and refuse
it; it cannot make the recipient wait on it: other requests are answered, the recipient
stops when asked and starts again with such files in its backlog.
"""

from __future__ import annotations

import os
from pathlib import Path

from peer_process import run_peer
from planted import ALICE, BOB, request_at

from fedbox.datasite.paths import response_path
from fedbox.rpc.envelope import read_envelope


def _plant_fifos(root: Path, count: int) -> list[Path]:
    fifos = []
    for _ in range(count):
        _, path = request_at(root)
        os.mkfifo(path)
        fifos.append(path)
    return fifos


def test_fifos_in_the_backlog_and_arriving_do_not_stop_traffic(root: Path, start_peer) -> None:
    _plant_fifos(root, 9)  # more than the recipient has handler threads
    bob = start_peer(BOB)
    _plant_fifos(root, 9)
    answers = run_peer("call", str(root), ALICE, "t", BOB, "echo", "3", "100", timeout=90)
    assert [a["status"] for a in answers] == [200, 200, 200]
    assert bob.stop() == {"handled": 3}, "stopped without hanging, the FIFOs never handled"
    again = start_peer(BOB)  # a restart with the FIFOs still in its backlog
    answers = run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "10", timeout=90)
    assert [a["status"] for a in answers] == [200]
    assert again.stop() == {"handled": 1}


def test_a_fifo_request_is_quarantined_and_answered(root: Path, start_peer) -> None:
    (fifo,) = _plant_fifos(root, 1)
    bob = start_peer(BOB)
    run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "10", timeout=90)
    bob.stop()
    msg_id = fifo.name.removesuffix(".request")
    answer = root / response_path(ALICE, BOB, "t", "echo", msg_id)
    assert (fifo.parent / ".quarantine" / fifo.name).is_fifo()
    with open(answer, "rb") as f:
        header, body = read_envelope(f)
    assert header.status == 400 and b"not a regular file" in body
