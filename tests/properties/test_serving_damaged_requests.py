"""A serving box over damaged request files: every one is answered (a damaged one 400
or 403, and moved to ``.quarantine/`` when it is unusable), and the box goes on serving.
The parsers' properties, end to end through the reading path a recipient really runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from waiting import wait_until

import fedbox
from fedbox.datasite.identity import new_message_id
from fedbox.datasite.paths import request_path, response_path
from fedbox.rpc.envelope import read_header
from fedbox.rpc.quarantine import quarantine_path
from fedbox.store import LocalStore
from fedbox.testing.parsers import APP, ENDPOINT, READER, WRITER, container, mutate
from fedbox.testing.requests import envelope_bytes, message_header

pytestmark = pytest.mark.timeout(240)
FILES = 40


def _request(msg_id: str, body: bytes) -> bytes:
    header = message_header(WRITER, READER, APP, ENDPOINT, msg_id=msg_id)
    return envelope_bytes(header, body)


def test_a_serving_box_answers_every_damaged_request_and_keeps_serving(tmp_path: Path) -> None:
    rng = random.Random(18)
    store = LocalStore(tmp_path / "root", fsync=False)
    planted: dict[str, bytes] = {}
    for _ in range(FILES):
        msg_id = new_message_id()
        body = rng.choice([b"hello", container([b"ab", b"cd"])])
        planted[msg_id] = mutate(rng, _request(msg_id, body))
        store.put(str(request_path(WRITER, READER, APP, ENDPOINT, msg_id)), planted[msg_id])
    with fedbox.connect(store.root, READER, encrypt=False) as box:
        app = box.app(APP)
        app.on_request(ENDPOINT)(lambda req: req.body)
        app.start()
        try:
            answers = {i: str(response_path(WRITER, READER, APP, ENDPOINT, i)) for i in planted}
            wait_until(lambda: all(store.exists(p) for p in answers.values()), "every answer")
            valid = new_message_id()
            store.put(
                str(request_path(WRITER, READER, APP, ENDPOINT, valid)), _request(valid, b"ok")
            )
            after = str(response_path(WRITER, READER, APP, ENDPOINT, valid))
            wait_until(lambda: store.exists(after), "the answer to a valid request")
        finally:
            app.stop()
    with store.open(after) as f:
        assert read_header(f).status == 200
    statuses = []
    for msg_id, path in answers.items():
        with store.open(path) as f:
            status = read_header(f).status
        request = str(request_path(WRITER, READER, APP, ENDPOINT, msg_id))
        statuses.append(status)
        assert status in (200, 400, 403, 419), (msg_id, status)  # 419: a digit of expires hit
        if status in (400, 403):  # refused: kept aside, byte for byte, never read again
            assert store.read(quarantine_path(request)) == planted[msg_id]
    assert statuses.count(400) > FILES // 2  # the damage reached the parsers
