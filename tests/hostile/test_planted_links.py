"""Symbolic and hard links planted in the shared folder (issue 11.4).

Threat model: a participant who can write the shared folder can put a link where a
request, a folder, an outbox or ``.quarantine`` should be, or hard-link a file it can
reach into an inbox. It can make the recipient refuse those files; it cannot make the
recipient read, quote, write, move or delete anything outside the store root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from peer_process import run_peer
from planted import ALICE, BOB, envelope, files_under, request_at

from fedbox.datasite.paths import outbox_dir, request_path, response_path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def _serve_backlog_then_call(root: Path, start_peer) -> dict:
    """Bob starts with the planted files in his backlog, answers one real call, stops
    (after every file he had seen was dealt with); what he handled."""
    bob = start_peer(BOB)
    answers = run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "10", timeout=90)
    assert [a["status"] for a in answers] == [200], "real traffic goes on"
    return bob.stop()


def test_a_request_linked_to_an_envelope_outside_is_not_handled(
    root: Path, outside: Path, start_peer
) -> None:
    msg_id, path = request_at(root)
    target = outside / "envelope"
    data = envelope(ALICE, BOB, msg_id)
    target.write_bytes(data)
    path.symlink_to(target)
    assert _serve_backlog_then_call(root, start_peer) == {"handled": 1}
    answer = root / response_path(ALICE, BOB, "t", "echo", msg_id)
    assert not answer.exists() or b"symbolic link" in answer.read_bytes(), "never a 200"
    assert files_under(outside) == [target] and target.read_bytes() == data


def test_a_hard_link_to_a_file_outside_is_not_handled(
    root: Path, outside: Path, start_peer
) -> None:
    msg_id, path = request_at(root)
    target = outside / "envelope"
    target.write_bytes(envelope(ALICE, BOB, msg_id))
    os.link(target, path)
    assert _serve_backlog_then_call(root, start_peer) == {"handled": 1}


@pytest.mark.parametrize("target", ["secret", "/etc/passwd"])
def test_no_answer_quotes_a_linked_file(root: Path, outside: Path, start_peer, target: str) -> None:
    secret = outside / "secret"
    secret.write_bytes(b"SECRET-BYTES of someone else")
    linked = secret if target == "secret" else Path(target)
    msg_id, path = request_at(root)
    path.symlink_to(linked)
    _serve_backlog_then_call(root, start_peer)
    answer = root / response_path(ALICE, BOB, "t", "echo", msg_id)
    if answer.exists():
        assert repr(linked.read_bytes()[:4]).encode() not in answer.read_bytes()


def test_a_symlinked_quarantine_keeps_files_inside(root: Path, outside: Path, start_peer) -> None:
    _, path = request_at(root)
    (path.parent / ".quarantine").symlink_to(outside, target_is_directory=True)
    path.write_bytes(b"junk that must be quarantined")
    _serve_backlog_then_call(root, start_peer)
    assert files_under(outside) == [], "nothing moved out of the root"


def test_a_symlinked_outbox_gets_no_responses_written_outside(
    root: Path, outside: Path, start_peer
) -> None:
    (root / outbox_dir(BOB, ALICE)).symlink_to(outside, target_is_directory=True)
    (sent,) = run_peer("send", str(root), ALICE, "t", BOB, "echo", "1", "10")
    assert (root / request_path(ALICE, BOB, "t", "echo", sent)).exists()
    bob = start_peer(BOB)
    bob.stop()  # after the backlog request was dealt with
    assert files_under(outside) == [], "no response written outside the root"
