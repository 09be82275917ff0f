"""Bad files and bad names: each quarantined or refused clearly, other traffic unaffected."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest
from peer_process import run_peer
from waiting import wait_for

import fedbox
from fedbox.datasite.paths import Kind, request_path, response_path
from fedbox.rpc.envelope import read_envelope
from fedbox.testing import envelope_bytes, message_header


def _envelope(sender: str, recipient: str, msg_id: str, body: bytes = b"payload", **kw) -> bytes:
    header = message_header(sender, recipient, "t", "echo", msg_id=msg_id, expires_in=600, **kw)
    return envelope_bytes(header, body)


def _plant(root: Path, make, sender: str = "alice@a.org", recipient: str = "bob@b.org"):
    """Write ``make(msg_id)`` at a fresh request path, whole (temp file, then rename): a
    placeholder written first could be read, answered and quarantined before the real one."""
    msg_id = str(uuid.uuid4())
    path = root / request_path(sender, recipient, "t", "echo", msg_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make(msg_id)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return msg_id, path, data


def _response_status(root: Path, msg_id: str, sender: str = "alice@a.org") -> tuple[int, bytes]:
    path = root / response_path(sender, "bob@b.org", "t", "echo", msg_id)
    wait_for(path)
    with open(path, "rb") as f:
        header, body = read_envelope(f)
    return header.status, body


def _valid(msg_id: str, **kw) -> bytes:
    return _envelope("alice@a.org", "bob@b.org", msg_id, **kw)


def _lying_body_len(msg_id: str) -> bytes:
    """A plaintext request whose header claims a terabyte of body (issue 11, point 5)."""
    data = _valid(msg_id)
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + length])
    raw = json.dumps({**header, "body_len": 10**12}).encode()
    return data[:4] + struct.pack("<I", len(raw)) + raw + data[8 + length :]


@pytest.mark.parametrize(
    ("name", "make", "status", "reason"),
    [
        ("truncated", lambda i: _valid(i)[:-3], 400, b"body is"),
        ("bad magic", lambda i: b"NOPE" + _valid(i)[4:], 400, b"bad magic"),
        ("short", lambda i: b"FB", 400, b"too short"),
        ("empty", lambda i: b"", 400, b"too short"),
        ("garbage header", lambda i: b"FBX1\x05\x00\x00\x00{{{{{", 400, b"unreadable header"),
        ("huge header len", lambda i: b"FBX1\xff\xff\xff\xff", 400, b"header length"),
        ("digest mismatch", lambda i: _valid(i)[:-1] + b"X", 400, b"digest"),
        ("extra bytes", lambda i: _valid(i) + b"tail", 400, b"after the body"),
        ("lying body_len", _lying_body_len, 400, b"header says 1000000000000"),
        (
            "addressed to someone else",
            lambda i: _envelope("alice@a.org", "eve@e.org", i),
            403,
            b"addressed to eve@e.org",
        ),
        (
            "forged sender",
            lambda i: _envelope("mallory@m.org", "bob@b.org", i),
            403,
            b"claims sender mallory@m.org",
        ),
        ("id differs from name", lambda i: _valid(str(uuid.uuid4())), 400, b"differs from file"),
        ("wrong kind", lambda i: _valid(i, kind=Kind.RESPONSE, status=200), 400, b"kind is"),
    ],
)
def test_bad_request_file_is_quarantined_and_answered(
    root: Path, start_peer, name, make, status, reason
) -> None:
    start_peer("bob@b.org")
    placeholder = str(uuid.uuid4())
    msg_id, path, data = _plant(
        root, make if name != "id differs from name" else lambda _: make(placeholder)
    )
    got_status, body = _response_status(root, msg_id)
    assert got_status == status, body
    assert reason in body
    wait_for(path.parent / ".quarantine" / path.name)  # moved aside once answered
    assert not path.exists()
    assert (path.parent / ".quarantine" / path.name).read_bytes() == data
    ok = run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "echo", "2", "100")
    assert [r["status"] for r in ok] == [200, 200]


def test_the_answer_never_quotes_the_file(root: Path, start_peer) -> None:
    """A request that is really someone's private file (a link to /etc/passwd, say) is
    answered 400 without a byte of it (issue 11, point 4)."""
    start_peer("bob@b.org")
    secret = b"s3cr3t:hunter2:0:0:root\n"
    msg_id, path, _ = _plant(root, lambda _: secret)
    status, body = _response_status(root, msg_id)
    assert status == 400
    assert b"bad magic" in body
    assert secret[:4] not in body and b"hunter2" not in body
    assert (path.parent / ".quarantine" / path.name).read_bytes() == secret


def test_path_tricks_in_folder_names_are_quarantined(root: Path, start_peer) -> None:
    bob = start_peer("bob@b.org")
    msg_id = str(uuid.uuid4())
    evil = root / "syft_outbox_inbox_..@a.org_to_bob@b.org" / "t" / "rpc" / "echo"
    evil.mkdir(parents=True)
    (evil / f"{msg_id}.request").write_bytes(_valid(msg_id))
    bad_name = root / request_path("alice@a.org", "bob@b.org", "t", "echo", msg_id).parent
    bad_name.mkdir(parents=True, exist_ok=True)
    (bad_name / "not-a-uuid.request").write_bytes(_valid(msg_id))
    wait_for(evil / ".quarantine" / f"{msg_id}.request")
    wait_for(bad_name / ".quarantine" / "not-a-uuid.request")
    ok = run_peer("call", str(root), "alice@a.org", "t", "bob@b.org", "echo", "1", "10")
    assert ok[0]["status"] == 200
    assert bob.stop() == {"handled": 1}


@pytest.mark.parametrize(
    "email",
    ["../bob@b.org", "bob@b.org/x", "bo\x00b@b.org", "bob", "", "a_to_b@x.org", "b\n@x.org"],
)
def test_sending_to_an_invalid_email_is_refused(root: Path, email: str) -> None:
    with fedbox.connect(root, "alice@a.org") as box, pytest.raises(fedbox.InvalidIdentity):
        box.app("t").send(email, "echo", b"x")
    assert list(root.rglob("*.request")) == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x" * 300])
def test_invalid_app_and_endpoint_names_are_refused(root: Path, bad: str) -> None:
    with fedbox.connect(root, "alice@a.org") as box:
        with pytest.raises(fedbox.InvalidIdentity):
            box.app(bad)
        with pytest.raises(fedbox.InvalidIdentity):
            box.app("t").send("bob@b.org", bad, b"x")


def test_connecting_as_an_invalid_email_is_refused(root: Path) -> None:
    with pytest.raises(fedbox.InvalidIdentity, match="not a valid email"):
        fedbox.connect(root, "not-an-email")


def test_corrupt_response_raises_and_is_quarantined(root: Path) -> None:
    with fedbox.connect(root, "alice@a.org", encrypt=False) as box:  # bob has no keys
        fut = box.app("t").send("bob@b.org", "echo", b"hi")
        path = root / response_path("alice@a.org", "bob@b.org", "t", "echo", fut.id)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"FBX1junk")
        with pytest.raises(fedbox.CorruptMessage, match=r"header length|ends inside"):
            fut.wait(timeout=10)
        assert (path.parent / ".quarantine" / path.name).exists()
