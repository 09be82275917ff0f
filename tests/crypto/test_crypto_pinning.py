"""First contact (trust on first use) is loud, and ``require_pinned`` refuses strangers.

Issue 11, point 13: whoever wrote a peer's ``did.json`` first gets pinned, so first
contact is logged as a WARNING with the fingerprint and how to verify it; a box
connected with ``require_pinned=True`` accepts and addresses only peers pinned by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from echo_app import serve_echo

import fedbox
from fedbox.crypto import TrustStore, UntrustedKey
from fedbox.datasite.workspace import Workspace
from fedbox.rpc import Box

A, B = "a@x.org", "b@x.org"


def _fingerprint(box: Box) -> str:
    assert box.sealer is not None
    return box.sealer.identity.public_bundle().fingerprint


def _pin(me: str, peer: Box) -> None:
    TrustStore(Workspace.for_email(me).state_dir).trust(peer.email, _fingerprint(peer))


def test_first_contact_is_a_warning_with_the_fingerprint_and_how_to_check_it(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fedbox.connect(root, A) as a, fedbox.connect(root, B) as b:
        serve_echo(b)
        with caplog.at_level(logging.WARNING, logger="fedbox.rpc.sealing"):
            assert a.app("t").send(B, "echo", b"hi").wait(30).body == b"hi"
            a.app("t").send(B, "echo", b"again").wait(30)
        fp_b, fp_a = _fingerprint(b), _fingerprint(a)
    first = [r for r in caplog.records if "first contact" in r.getMessage()]
    by_a = [r.getMessage() for r in first if f"first contact with {B}" in r.getMessage()]
    by_b = [r.getMessage() for r in first if f"first contact with {A}" in r.getMessage()]
    assert len(by_a) == 1 and len(by_b) == 1, "once per peer, not per message"
    assert all(r.levelno == logging.WARNING for r in first)
    assert fp_b in by_a[0] and fp_a in by_b[0]
    assert f"fedbox keys show --root ROOT --email {B}" in by_a[0]
    assert f"fedbox keys trust {B} FINGERPRINT --email {A}" in by_a[0]


def test_a_box_that_requires_pins_refuses_an_unpinned_sender_403(root: Path) -> None:
    handled: list[str] = []
    with fedbox.connect(root, A) as a, fedbox.connect(root, B, require_pinned=True) as b:
        serve_echo(b, handled)
        refused = a.app("t").send(B, "echo", b"hi").wait(30)
        assert refused.status == 403, refused.text
        assert f"{A} is not pinned" in refused.text
        assert f"fedbox keys trust {A} {_fingerprint(a)}" in refused.text
        assert handled == []
        _pin(B, a)  # B checked A's fingerprint out of band
        assert a.app("t").send(B, "echo", b"now").wait(30).body == b"now"
    assert handled == [A]


def test_sending_to_an_unpinned_peer_raises_untrusted_key(root: Path) -> None:
    fedbox.connect(root, B).close()  # B publishes its keys
    with fedbox.connect(root, A, require_pinned=True) as a:
        with pytest.raises(UntrustedKey, match=f"fedbox keys trust {B} ") as info:
            a.app("t").send(B, "echo", b"hi")
        assert info.value.pinned is None and info.value.email == B
        assert not list(root.rglob("*.request")), "nothing was written"
        assert TrustStore(Workspace.for_email(A).state_dir).pinned(B) is None
        with fedbox.connect(root, B) as b:
            serve_echo(b)
            _pin(A, b)
            assert a.app("t").send(B, "echo", b"hi").wait(30).body == b"hi"


def test_require_pinned_without_encryption_is_refused(root: Path) -> None:
    with pytest.raises(ValueError, match="require_pinned=True needs encrypt=True"):
        fedbox.connect(root, A, encrypt=False, require_pinned=True)
    assert not Workspace.for_email(A).state_dir.exists(), "nothing was created"
