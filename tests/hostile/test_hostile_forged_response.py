"""Threat: a peer who can write the shared folder plants a plaintext error response for
another's request; it must neither answer the request nor stop the recipient answering
it (issue 11.9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import wait_until

import fedbox
from fedbox.datasite.paths import Kind, response_path
from fedbox.errors import UnauthenticatedResponse
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.signing import sign_refusal
from fedbox.testing import envelope_bytes, message_header

ALICE, BOB, CAROL = "alice@a.org", "bob@b.org", "carol@c.org"


def _bob_answered(home: Path, msg_id: str) -> bool:
    log = AuditLog(home / BOB / "audit.db")
    try:
        return any(r.id == msg_id and r.status == 200 for r in log.records(peer=ALICE))
    finally:
        log.close()


@pytest.mark.parametrize("signer", [None, CAROL], ids=["unsigned", "signed-by-carol"])
def test_a_forged_plaintext_error_neither_answers_nor_blocks_the_request(
    root: Path, start_peer, fedbox_home: Path, signer: str | None
) -> None:
    fedbox.connect(root, BOB, encrypt=True).close()  # bob's keys are published
    carol = fedbox.connect(root, CAROL, encrypt=True)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        fut = alice.app("t").send(BOB, "echo", b"the real question")
        forged_at = root / response_path(ALICE, BOB, "t", "echo", fut.id)

        def plant() -> None:
            header = message_header(
                BOB,
                ALICE,
                "t",
                "echo",
                msg_id=fut.id,
                kind=Kind.RESPONSE,
                status=500,
                expires_in=600,
            )
            body = b"forged failure"
            if signer is not None:
                header = sign_refusal(carol.sealer.identity, header, body)
            forged_at.parent.mkdir(parents=True, exist_ok=True)
            forged_at.write_bytes(envelope_bytes(header, body))

        plant()
        with pytest.raises(UnauthenticatedResponse, match="unauthenticated refusal 500"):
            fut.result()
        assert alice.futures.get(fut.id).status is None  # still pending
        (row,) = alice.audit.records(direction="out")
        assert row.status is None and "unauthenticated refusal 500" in row.note
        assert (forged_at.parent / ".quarantine" / forged_at.name).exists()
        plant()  # carol keeps at it: bob must answer anyway
        bob = start_peer(BOB, encrypt=True)
        wait_until(lambda: _bob_answered(fedbox_home, fut.id), "bob to answer alice")
        response = fut.wait(timeout=60)
        assert (response.status, response.body) == (200, b"the real question")
        assert bob.stop() == {"handled": 1}
    carol.close()
