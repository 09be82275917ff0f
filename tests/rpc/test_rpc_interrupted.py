"""Every request a participant has seen gets exactly one response, whatever stops it in
between: a kill -9 while handlers run, a response that cannot be written (issue 11.1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from peer_process import run_peer
from small_disk import fill, small_tmpfs
from waiting import wait_until

import fedbox
from fedbox.datasite.paths import Kind, outbox_dir, response_path
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.envelope import write_envelope
from fedbox.testing import message_header

ALICE, BOB = "alice@a.org", "bob@b.org"


def _ran(root: Path) -> list[tuple[str, str]]:
    path = root.parent / "ran"
    lines = path.read_text().splitlines() if path.exists() else []
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


def _served(home: Path) -> dict[str, int | None]:
    log = AuditLog(home / BOB / "audit.db")
    try:
        return {r.id: r.status for r in log.records(direction="in")}
    finally:
        log.close()


@pytest.mark.parametrize("rerun", [True, False], ids=["rerun", "no-rerun"])
def test_handlers_killed_mid_run_are_answered_once_after_restart(
    root: Path, start_peer, fedbox_home: Path, monkeypatch: pytest.MonkeyPatch, rerun: bool
) -> None:
    monkeypatch.setenv("PEER_RERUN", "1" if rerun else "0")
    ids = run_peer("send", str(root), ALICE, "t", BOB, "block", "5", "32")
    bob = start_peer(BOB)
    wait_until(lambda: {i for _, i in _ran(root)} == set(ids), "every handler to start")
    bob.kill()  # SIGKILL while all five handlers run
    first_pids = {pid for pid, _ in _ran(root)}
    (root.parent / "release").touch()
    bob = start_peer(BOB)
    results = run_peer("wait", str(root), ALICE, "t", json.dumps(ids))
    if rerun:
        assert [(r["id"], r["status"]) for r in results] == [(i, 200) for i in ids]
        again = [i for pid, i in _ran(root) if pid not in first_pids]
        assert sorted(again) == sorted(ids)
    else:
        assert [(r["id"], r["status"]) for r in results] == [(i, 500) for i in ids]
        assert all(b"interrupted" in bytes.fromhex(r["body"]) for r in results)
        assert {pid for pid, _ in _ran(root)} == first_pids  # never run twice
    assert bob.stop() == {"handled": 0}
    assert _served(fedbox_home) == dict.fromkeys(ids, 200 if rerun else 500)
    responses = sorted(p.stem for p in root.rglob("*.response"))
    assert responses == sorted(ids)
    bob_again = start_peer(BOB)  # answered: a third start runs and writes nothing
    assert bob_again.stop() == {"handled": 0}
    assert len(_ran(root)) == (10 if rerun else 5)


def test_a_response_that_cannot_be_written_is_retried_until_it_is(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fedbox.rpc.serving")
    with fedbox.connect(root, ALICE) as alice, fedbox.connect(root, BOB) as bob:
        fut = alice.app("t").send(BOB, "echo", b"hello")
        blocker = root / outbox_dir(BOB, ALICE)
        blocker.write_bytes(b"a file where bob's outbox folder should be")
        calls: list[str] = []
        server = bob.app("t")
        server.on_request("echo")(lambda req: calls.append(req.id) or req.body)
        server.start()
        wait_until(
            lambda: any("could not write the response" in r.message for r in caplog.records),
            "a failed write",
        )
        assert bob.audit.incoming(ALICE, fut.id).status is None  # claimed, not answered
        blocker.unlink()
        response = fut.wait(timeout=60)
        assert (response.status, response.body) == (200, b"hello")
        assert calls == [fut.id]
        wait_until(lambda: bob.audit.incoming(ALICE, fut.id).status == 200, "the answer logged")


@pytest.fixture
def full_disk_root(tmp_path: Path) -> Iterator[Path]:
    """A store root on a 2 MiB tmpfs of its own (skipped where mounting is not allowed)."""
    with small_tmpfs(tmp_path / "tmpfs", "2m") as mount:
        yield mount


def test_a_response_on_a_full_disk_is_written_once_space_is_freed(
    full_disk_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fedbox.rpc.serving")
    root = full_disk_root
    with fedbox.connect(root, ALICE) as alice, fedbox.connect(root, BOB) as bob:
        body = bytes(range(256)) * 256
        fut = alice.app("t").send(BOB, "echo", body)
        filler = fill(root)
        server = bob.app("t")
        server.on_request("echo")(lambda req: req.body)
        server.start()
        wait_until(lambda: any("No space left" in r.message for r in caplog.records), "a full disk")
        filler.unlink()
        response = fut.wait(timeout=60)
        assert (response.status, response.body) == (200, body)
        wait_until(lambda: bob.audit.incoming(ALICE, fut.id).status == 200, "the answer logged")


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "not-ours"])
def test_a_response_written_just_before_a_crash_is_not_given_twice(
    root: Path, start_peer, fedbox_home: Path, ours: bool
) -> None:
    """The claiming process died after writing its response and before logging it: the
    file it began writing (same ``created``) counts as the answer; any other file at that
    path (planted, or left from elsewhere) does not."""
    (msg_id,) = run_peer("send", str(root), ALICE, "t", BOB, "block", "1", "32")
    began = 1_800_000_000.25
    log = AuditLog(fedbox_home / BOB / "audit.db")
    assert log.claim(
        id=msg_id, peer=ALICE, app="t", endpoint="block", size=32, sha256="", created=1.0
    )
    log.replying(id=msg_id, peer=ALICE, at=began)
    log.close()
    created = began if ours else began + 1
    header = message_header(
        BOB,
        ALICE,
        "t",
        "block",
        msg_id=msg_id,
        kind=Kind.RESPONSE,
        status=200,
        created=created,
        expires_in=began + 3600 - created,
    )
    written = root / response_path(ALICE, BOB, "t", "block", msg_id)
    written.parent.mkdir(parents=True)
    with open(written, "wb") as f:
        write_envelope(f, header, b"the answer")
    before = written.read_bytes()
    bob = start_peer(BOB)
    wait_until(lambda: _served(fedbox_home)[msg_id] is not None, "bob to log an answer")
    assert bob.stop() == {"handled": 0}
    assert _served(fedbox_home)[msg_id] == (200 if ours else 500)
    assert (written.read_bytes() == before) is ours
    assert _ran(root) == []
