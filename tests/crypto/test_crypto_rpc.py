"""End-to-end encryption on the RPC path, between real processes sharing one folder."""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from cli_process import fedbox_cli
from peer_process import run_peer
from waiting import wait_for

import fedbox
from fedbox.crypto import UntrustedKey, bundle_from_did
from fedbox.datasite.paths import Kind, request_path, response_path
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.envelope import Header, read_envelope, read_header
from fedbox.testing import envelope_bytes, message_header

ALICE, BOB, CAROL = "alice@a.org", "bob@b.org", "carol@c.org"
MARKER = b"FEDBOX-PLAINTEXT-MARKER-7f3a9c"


def publish(root: Path, *emails: str) -> None:
    """Create and publish keys for each email, as its first encrypted connect does."""
    for email in emails:
        fedbox.connect(root, email, encrypt=True).close()


def files_under(root: Path) -> list[Path]:
    """Every file under the store root, hidden ones (temps, quarantine) included."""
    return [p for p in root.rglob("*") if p.is_file()]


def header_of(path: Path) -> Header:
    with open(path, "rb") as f:
        return read_header(f)


def audit_notes(home: Path, email: str) -> dict[str, tuple[int | None, str | None]]:
    log = AuditLog(home / email / "audit.db")
    try:
        return {r.id: (r.status, r.note) for r in log.records(direction="in")}
    finally:
        log.close()


def test_encrypted_round_trip_between_two_processes(root: Path, start_peer) -> None:
    bob = start_peer(BOB, encrypt=True)
    results = run_peer("call", str(root), ALICE, "t", BOB, "echo", "5", "1000", "--encrypt")
    assert [r["status"] for r in results] == [200] * 5
    assert all(r["match"] and r["sender"] == BOB for r in results)
    assert bob.stop() == {"handled": 5}
    for r in results:
        (req,) = root.rglob(f"{r['id']}.request")
        (resp,) = root.rglob(f"{r['id']}.response")
        assert [w["to"] for w in header_of(req).enc["wraps"]] == [BOB, ALICE]
        assert [w["to"] for w in header_of(resp).enc["wraps"]] == [ALICE, BOB]
    assert (root / "datasites" / BOB / "public" / "did.json").is_file()


def test_plaintext_never_appears_in_the_store(root: Path, start_peer, tmp_path: Path) -> None:
    start_peer(BOB, encrypt=True)
    big = MARKER * (3 * (1 << 20) // len(MARKER))  # several segments
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        app = alice.app("t")
        futures = [
            app.send(BOB, "echo", big, headers={"note": "headers are bound, not secret"}),
            app.send(BOB, "echo", MARKER),
            app.send(BOB, "echo", io.BytesIO(MARKER * 100)),  # a streamed body
            app.send(BOB, "nope", MARKER),  # 404: its reason text is encrypted too
        ]
        responses = [f.wait(60) for f in futures]
    assert [r.status for r in responses] == [200, 200, 200, 404]
    assert responses[0].body == big and responses[1].body == MARKER
    assert responses[2].body == MARKER * 100
    assert b"no handler for endpoint 'nope'" in responses[3].body
    assert len(list(root.rglob("*.response"))) == 4
    for path in files_under(root):
        data = path.read_bytes()
        assert MARKER not in data and MARKER[:12] not in data, path
    # The scan would see it: the same traffic without encryption leaves it in both files.
    plain_root = tmp_path / "plain"
    with (
        fedbox.connect(plain_root, "x@a.org", encrypt=False) as x,
        fedbox.connect(plain_root, "y@b.org", encrypt=False) as y,
    ):
        y.app("t").on_request("echo")(lambda req: req.body)
        y.app("t").start()
        x.app("t").send("y@b.org", "echo", MARKER).wait(30)
    assert sum(MARKER in p.read_bytes() for p in files_under(plain_root)) == 2


def test_broadcast_encrypts_once_and_wraps_per_recipient(root: Path, start_peer) -> None:
    bob, carol = start_peer(BOB, encrypt=True), start_peer(CAROL, encrypt=True)
    body = os.urandom(3 << 20)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        futures = alice.app("t").broadcast([BOB, CAROL], "echo", body)
        assert [f.recipient for f in futures] == [BOB, CAROL]
        responses = [f.wait(60) for f in futures]
    assert [(r.status, r.sender, r.body == body) for r in responses] == [
        (200, BOB, True),
        (200, CAROL, True),
    ]
    bodies, headers = [], []
    for fut in futures:
        (path,) = root.rglob(f"{fut.id}.request")
        with open(path, "rb") as f:
            headers.append(read_header(f))
            bodies.append(f.read())
    assert bodies[0] == bodies[1], "one encryption: the same ciphertext in both files"
    assert [[w["to"] for w in h.enc["wraps"]] for h in headers] == [[BOB, ALICE], [CAROL, ALICE]]
    assert headers[0].enc["nonce_prefix"] == headers[1].enc["nonce_prefix"]
    assert headers[0].enc["wraps"][0]["wrapped"] != headers[1].enc["wraps"][0]["wrapped"]
    assert bob.stop() == {"handled": 1} and carol.stop() == {"handled": 1}


def test_a_peer_without_keys_is_refused_and_nothing_is_written(root: Path) -> None:
    publish(root, BOB)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        app = alice.app("t")
        with pytest.raises(fedbox.CryptoError) as info:
            app.send("nokeys@x.org", "echo", b"secret")
        assert "datasites/nokeys@x.org/public/did.json" in str(info.value)
        assert info.value.path == "datasites/nokeys@x.org/public/did.json"
        with pytest.raises(fedbox.CryptoError, match=r"nokeys@x\.org has no published keys"):
            app.broadcast([BOB, "nokeys@x.org"], "echo", b"secret")
        assert alice.futures.pending() == []
    assert list(root.rglob("*.request")) == []
    assert not [p for p in files_under(root) if "syft_outbox" in str(p)]


def test_plaintext_request_to_an_encrypted_box_is_403(root: Path, start_peer, fedbox_home) -> None:
    bob = start_peer(BOB, encrypt=True)
    (result,) = run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "10")
    assert result["status"] == 403
    assert b"encryption required" in bytes.fromhex(result["body"])
    sent = root / request_path(ALICE, BOB, "t", "echo", result["id"])
    wait_for(sent.parent / ".quarantine" / sent.name)
    assert [p.stem for p in root.rglob(".quarantine/*.request")] == [result["id"]]
    assert bob.stop() == {"handled": 0}
    status, note = audit_notes(fedbox_home, BOB)[result["id"]]
    assert status == 403 and "encryption required" in note


def test_encrypted_request_to_a_plaintext_box_is_400(root: Path, start_peer) -> None:
    publish(root, BOB)  # keys published earlier, but bob now serves without encryption
    bob = start_peer(BOB)
    (result,) = run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "10", "--encrypt")
    assert result["status"] == 400
    assert b"runs without encryption" in bytes.fromhex(result["body"])
    assert bob.stop() == {"handled": 0}


def test_rotation_with_messages_in_flight(root: Path, start_peer) -> None:
    publish(root, BOB)
    before = run_peer("send", str(root), ALICE, "t", BOB, "echo", "2", "100", "--encrypt")
    rotated = fedbox_cli("keys", "rotate", "--root", str(root), "--email", BOB)
    assert rotated.returncode == 0, rotated.stderr
    after = run_peer("send", str(root), ALICE, "t", BOB, "echo", "1", "100", "--encrypt")
    prekeys = {
        header_of(next(root.rglob(f"{i}.request"))).enc["wraps"][0]["prekey_id"]
        for i in before + after
    }
    assert len(prekeys) == 2, "the later request uses the new prekey"
    bob = start_peer(BOB, encrypt=True)
    results = run_peer("wait", str(root), ALICE, "t", json.dumps(before + after), "--encrypt")
    assert [r["status"] for r in results] == [200] * 3
    # Rotating while bob runs: the next sender wraps to a prekey bob loaded before it existed.
    assert fedbox_cli("keys", "rotate", "--root", str(root), "--email", BOB).returncode == 0
    live = run_peer("call", str(root), ALICE, "t", BOB, "echo", "2", "100", "--encrypt")
    assert [r["status"] for r in live] == [200, 200]
    assert bob.stop() == {"handled": 5}


def test_a_prekey_rotated_out_is_refused_loudly(root: Path, start_peer) -> None:
    publish(root, BOB)
    (msg_id,) = run_peer("send", str(root), ALICE, "t", BOB, "echo", "1", "100", "--encrypt")
    out = fedbox_cli("keys", "rotate", "--root", str(root), "--email", BOB, "--retain", "0")
    assert out.returncode == 0, out.stderr
    bob = start_peer(BOB, encrypt=True)
    (result,) = run_peer("wait", str(root), ALICE, "t", json.dumps([msg_id]), "--encrypt")
    assert result["status"] == 400
    assert b"does not hold" in bytes.fromhex(result["body"])
    assert bob.stop() == {"handled": 0}


def test_a_changed_identity_key_is_refused_until_trusted(
    root: Path, start_peer, fedbox_home: Path
) -> None:
    bob = start_peer(BOB, encrypt=True)
    with fedbox.connect(root, ALICE, encrypt=True) as alice:
        app = alice.app("t")
        app.on_request("echo")(lambda req: req.body)
        app.start()
        assert app.send(BOB, "echo", b"hi").wait(30).status == 200  # pins bob's key
        old_fp = alice.sealer.trust.pinned(BOB)
        bob.stop()
        shutil.rmtree(fedbox_home / BOB / "keys")  # bob resets his keys
        bob = start_peer(BOB, encrypt=True)  # new identity, republished
        new_fp = bundle_from_did(
            json.loads((root / "datasites" / BOB / "public" / "did.json").read_text()), BOB
        ).fingerprint
        assert new_fp != old_fp
        requests_before = set(root.rglob("*.request"))
        with pytest.raises(UntrustedKey, match=f"fedbox keys trust {BOB}") as info:
            app.send(BOB, "echo", b"hi")
        assert info.value.pinned == old_fp and info.value.presented == new_fp
        assert set(root.rglob("*.request")) == requests_before
        # Bob, with his new key, calling alice: refused 403, never handled.
        (refused,) = run_peer("call", str(root), BOB, "t", ALICE, "echo", "1", "10", "--encrypt")
        assert refused["status"] == 403
        assert b"untrusted sender key" in bytes.fromhex(refused["body"])
        wait_for(
            root
            / request_path(BOB, ALICE, "t", "echo", refused["id"]).parent.joinpath(
                ".quarantine", f"{refused['id']}.request"
            )
        )
        show = fedbox_cli("keys", "show", BOB, "--root", str(root), "--email", ALICE)
        assert show.returncode == 1 and "CHANGED" in show.stdout
        trusted = fedbox_cli("keys", "trust", BOB, new_fp, "--email", ALICE, "--root", str(root))
        assert trusted.returncode == 0, trusted.stdout
        assert app.send(BOB, "echo", b"again").wait(30).body == b"again"
        (ok,) = run_peer("call", str(root), BOB, "t", ALICE, "echo", "1", "10", "--encrypt")
        assert ok["status"] == 200 and ok["match"]
    assert bob.stop() == {"handled": 1}
    status, note = audit_notes(fedbox_home, ALICE)[refused["id"]]
    assert status == 403 and "changed" in note


def _copy_request(src: Path, root: Path, new_id: str | None = None) -> Path:
    """Plant a copy of a request file, under its own id or (header rewritten) a new one."""
    data = src.read_bytes()
    header = header_of(src)
    if new_id is not None:
        data = data.replace(header.id.encode(), new_id.encode(), 1)
    target = root / request_path(
        header.sender, header.recipient, header.app, header.endpoint, new_id or header.id
    )
    target.write_bytes(data)
    return target


def test_a_replayed_request_is_not_run_again(root: Path, start_peer) -> None:
    bob = start_peer(BOB, encrypt=True)
    (first,) = run_peer("call", str(root), ALICE, "t", BOB, "echo", "1", "50", "--encrypt")
    assert first["status"] == 200
    assert bob.stop() == {"handled": 1}
    (request,) = root.rglob(f"{first['id']}.request")
    saved = request.read_bytes()
    for path in root.rglob("*.re*"):  # the cleanup job removed both files
        path.unlink()
    request.write_bytes(saved)  # a carrier replays the old file under its id...
    replay_new_id = _copy_request(request, root, str(uuid.uuid4()))  # ...and under a new one
    bob = start_peer(BOB, encrypt=True)
    new_id = replay_new_id.stem
    resp = root / response_path(ALICE, BOB, "t", "echo", new_id)
    wait_for(resp)
    with open(resp, "rb") as f:
        header, body = read_envelope(f)
    assert header.status == 400 and b"undecryptable" in body
    assert bob.stop() == {"handled": 0}
    assert not (root / response_path(ALICE, BOB, "t", "echo", first["id"])).exists()


def test_an_undecryptable_response_raises_decrypt_error(root: Path) -> None:
    with (
        fedbox.connect(root, ALICE, encrypt=True) as alice,
        fedbox.connect(root, BOB, encrypt=True) as bob,
    ):
        bob.app("t").on_request("echo")(lambda req: req.body)
        bob.app("t").start()
        app = alice.app("t")
        fut = app.send(BOB, "echo", b"x" * 5000)
        done, _ = alice.wait([fut], timeout=30)
        assert done
        path = root / response_path(ALICE, BOB, "t", "echo", fut.id)
        data = bytearray(path.read_bytes())
        data[-20] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(fedbox.DecryptError, match="segment 0 failed") as info:
            fut.wait(10)
        assert info.value.message_id == fut.id
        assert (path.parent / ".quarantine" / path.name).exists()
        # A plaintext 200 in bob's outbox (forged by the carrier) is refused the same way.
        fut2 = app.send(BOB, "echo", b"y")
        alice.wait([fut2], timeout=30)
        path2 = root / response_path(ALICE, BOB, "t", "echo", fut2.id)
        forged = message_header(
            BOB, ALICE, "t", "echo", msg_id=fut2.id, kind=Kind.RESPONSE, status=200, expires_in=60
        )
        path2.write_bytes(envelope_bytes(forged, b"forged"))
        with pytest.raises(fedbox.DecryptError, match="plaintext response"):
            fut2.result()


def test_a_large_body_streams_from_an_open_file(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom((5 << 20) + 7))
    with (
        fedbox.connect(root, ALICE, encrypt=True) as alice,
        fedbox.connect(root, BOB, encrypt=True) as bob,
    ):
        bob.app("t").on_request("len")(lambda req: str(len(req.body)).encode())
        bob.app("t").on_request("echo")(lambda req: req.body)
        bob.app("t").start()
        with open(source, "rb") as f:
            fut = alice.app("t").send(BOB, "echo", f)
        assert fut.wait(60).body == source.read_bytes()
        (request,) = root.rglob(f"{fut.id}.request")
        assert header_of(request).body_len == (5 << 20) + 7 + 6 * 16  # six segments' tags
        old_prekey = bob.sealer.identity.prekey_id
        assert bob.sealer.rotate() != old_prekey  # a running box rotates and republishes
        after = alice.app("t").send(BOB, "len", b"x" * 10)
        assert after.wait(30).body == b"10"
        (request,) = root.rglob(f"{after.id}.request")
        assert header_of(request).enc["wraps"][0]["prekey_id"] == bob.sealer.identity.prekey_id


def test_a_body_of_known_size_gets_its_final_header_first(root: Path, tmp_path: Path) -> None:
    """Its ciphertext size is known before encrypting, so the header (wraps included) is
    written once, unpadded; a stream's header is written with room reserved, then filled.
    Both open."""
    source = tmp_path / "body.bin"
    source.write_bytes(os.urandom(3000))
    with (
        fedbox.connect(root, ALICE, encrypt=True) as alice,
        fedbox.connect(root, BOB, encrypt=True) as bob,
    ):
        bob.app("t").on_request("echo")(lambda req: req.body)
        bob.app("t").start()
        known = alice.app("t").send(BOB, "echo", source.read_bytes())
        with open(source, "rb") as f:
            streamed = alice.app("t").send(BOB, "echo", f)
        for fut in (known, streamed):
            assert fut.wait(60).body == source.read_bytes()
        padding = {}
        for fut in (known, streamed):
            (request,) = root.rglob(f"{fut.id}.request")
            data = request.read_bytes()
            raw = data[8 : 8 + int.from_bytes(data[4:8], "little")]  # FBX1, u32 LE length
            assert header_of(request).body_len == 3000 + 16
            padding[fut] = len(raw) - len(raw.rstrip(b" "))
        assert padding[known] == 0 and padding[streamed] > 0
