"""RPC between separate OS processes sharing one folder."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peer_process import PEER, run_peer

import fedbox
from fedbox.rpc.audit import AuditLog


def test_round_trip_between_two_processes(root: Path, start_peer) -> None:
    bob = start_peer("bob@b.org")
    results = run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "echo", "5", "1000")
    assert [r["status"] for r in results] == [200] * 5
    assert all(r["match"] and r["sender"] == "bob@b.org" for r in results)
    assert bob.stop() == {"handled": 5}


def test_backlog_and_restarted_sender(root: Path, start_peer) -> None:
    """Requests written while the recipient is down are handled when it starts, and a
    new sender process re-attaches to its futures by id."""
    ids = run_peer("send", str(root), "alice@a.org", "t", "bob@b.org", "echo", "4", "64")
    assert len(ids) == 4
    bob = start_peer("bob@b.org")
    results = run_peer("wait", str(root), "alice@a.org", "t", json.dumps(ids))
    assert [r["id"] for r in results] == ids
    assert {r["status"] for r in results} == {200}
    assert bob.stop() == {"handled": 4}


def test_restarted_recipient_does_not_handle_twice(root: Path, start_peer) -> None:
    bob = start_peer("bob@b.org")
    run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "echo", "3", "10")
    assert bob.stop() == {"handled": 3}
    bob_again = start_peer("bob@b.org")
    assert bob_again.stop() == {"handled": 0}


def test_handler_exception_and_unknown_endpoint(root: Path, start_peer) -> None:
    start_peer("bob@b.org")
    boom = run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "boom", "1", "1")
    assert boom[0]["status"] == 500
    assert b"ValueError: deliberate failure in handler" in bytes.fromhex(boom[0]["body"])
    missing = run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "nope", "1", "1")
    assert missing[0]["status"] == 404
    assert b"no handler for endpoint 'nope'" in bytes.fromhex(missing[0]["body"])


def test_300_concurrent_requests_from_three_senders(root: Path, start_peer, fedbox_home) -> None:
    bob = start_peer("bob@b.org")
    senders = ["s1@a.org", "s2@a.org", "s3@a.org"]

    def one(sender: str) -> list[dict]:
        out = subprocess.run(
            [
                sys.executable,
                str(PEER),
                "call",
                str(root),
                sender,
                "t",
                "bob@b.org",
                "echo",
                "100",
                "200",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(3) as pool:
        results = [r for batch in pool.map(one, senders) for r in batch]
    assert len(results) == 300
    assert all(r["status"] == 200 and r["match"] for r in results)
    assert len({r["id"] for r in results}) == 300
    assert bob.stop() == {"handled": 300}
    log = AuditLog(fedbox_home / "bob@b.org" / "audit.db")
    served = log.records(direction="in", limit=1000)
    log.close()
    assert len(served) == 300 and {r.status for r in served} == {200}


def test_response_reaches_only_its_sender(root: Path, start_peer) -> None:
    start_peer("bob@b.org")
    who = run_peer("call", str(root), "carol@c.org", "t", "bob@b.org", "whoami", "1", "0")
    assert bytes.fromhex(who[0]["body"]) == b"carol@c.org->bob@b.org"
    responses = list(root.glob("syft_outbox_inbox_bob@b.org_to_carol@c.org/t/rpc/whoami/*"))
    assert [p.suffix for p in responses] == [".response"]
    assert fedbox.rpc.read_header(responses[0].open("rb")).recipient == "carol@c.org"
