"""Threat model: a participant who can write the shared folder, forging who it is.

Anyone with write access to the store (a co-participant on a shared disk, a leaked bucket
credential) can create files in any outbox folder, including ``A->B``. What such a
writer can do: deny service (delete or garble files; those are quarantined and answered
400 where the sender can be known). What it must not do: make B run a handler believing
the request came from A. The folder name is not proof of the sender; only A's keys are.

Boxes authenticate by default (``fedbox.connect`` encrypts, and an encrypted request
opens only with the keys of the sender its folder names), so a forged request is
refused and its handler never runs. ``encrypt=False`` is the unauthenticated mode: the
forged sender is accepted, which the last test documents (issue 11, point 10).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from echo_app import serve_echo

import fedbox
from fedbox.datasite.identity import new_message_id
from fedbox.datasite.paths import request_path
from fedbox.rpc import Box
from fedbox.rpc.envelope import Header, write_envelope
from fedbox.rpc.futures import Future, FutureRecord
from fedbox.rpc.sealing import read_published
from fedbox.testing import message_header

A, B, C = "a@x.org", "b@x.org", "c@x.org"
NOW, LATER = 1e9, 4e9


def _forged_header(msg_id: str) -> Header:
    return message_header(A, B, "t", "echo", msg_id=msg_id, created=NOW, expires_in=LATER - NOW)


def _answer_seen_by_a(a: Box, msg_id: str) -> fedbox.Response:
    """The response B writes for A (who never sent it), through A's own box."""
    record = FutureRecord(
        id=msg_id, app="t", endpoint="echo", recipient=B, created=NOW, expires=LATER
    )
    a.futures.add(record)
    return Future(a, record).wait(30)


def test_a_forged_plaintext_request_is_refused_by_default(root: Path) -> None:
    handled: list[str] = []
    with fedbox.connect(root, A) as a, fedbox.connect(root, B) as b, fedbox.connect(root, C) as c:
        serve_echo(b, handled)
        msg_id = new_message_id()
        with c.store.writer(str(request_path(A, B, "t", "echo", msg_id))) as f:
            write_envelope(f, _forged_header(msg_id), b"from C, claiming to be A")
        response = _answer_seen_by_a(a, msg_id)
    assert response.status == 403, response.text
    assert "encryption required" in response.text
    assert handled == []


def test_a_request_c_encrypted_with_its_own_keys_does_not_pass_as_a(root: Path) -> None:
    handled: list[str] = []
    with fedbox.connect(root, A) as a, fedbox.connect(root, B) as b, fedbox.connect(root, C) as c:
        serve_echo(b, handled)
        msg_id = new_message_id()
        assert c.sealer is not None
        with c.store.writer(str(request_path(A, B, "t", "echo", msg_id))) as f:
            c.sealer.encrypt_into(
                f, _forged_header(msg_id), b"sealed by C", read_published(c.store, B)
            )
        response = _answer_seen_by_a(a, msg_id)
    assert response.status == 400, response.text
    assert "undecryptable request" in response.text
    assert handled == []


def test_without_encryption_the_folder_name_is_the_sender(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented weakness of ``encrypt=False``: C's forgery runs as A's request."""
    handled: list[str] = []
    with caplog.at_level(logging.WARNING, logger="fedbox.rpc.connect"):
        a = fedbox.connect(root, A, encrypt=False)
        b = fedbox.connect(root, B, encrypt=False)
        c = fedbox.connect(root, C, encrypt=False)
    warnings = [r.getMessage() for r in caplog.records if "not authenticated" in r.getMessage()]
    assert len(warnings) == 3 and all("connected without encryption" in w for w in warnings)
    with a, b, c:
        serve_echo(b, handled)
        msg_id = new_message_id()
        with c.store.writer(str(request_path(A, B, "t", "echo", msg_id))) as f:
            write_envelope(f, _forged_header(msg_id), b"from C, claiming to be A")
        response = _answer_seen_by_a(a, msg_id)
    assert response.status == 200 and response.body == b"from C, claiming to be A"
    assert handled == [A]
