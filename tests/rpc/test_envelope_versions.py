"""Envelope v2 (issue 20) next to v1: v1 files still read; plain bodies are still checked
against their digest; sealed bodies and blobs are vouched for by the cipher, and a v1
sealed blob (named by its SHA-256) is still read and checked."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

import fedbox
from fedbox.crypto import SEGMENT_SIZE, encrypt_body, seal
from fedbox.datasite.paths import blob_path, request_path
from fedbox.errors import CorruptMessage, DecryptError
from fedbox.rpc import Body, Shared
from fedbox.rpc.blobs import BLOB_NONCE_PREFIX
from fedbox.rpc.envelope import VERSION, read_envelope, read_header, write_envelope
from fedbox.rpc.parts import PartKind, PartRef, encode_table
from fedbox.rpc.payload import open_payload
from fedbox.testing import message_header

ALICE, BOB = "alice@a.org", "bob@b.org"
MODEL = os.urandom(3 << 20)


def _header(v: int = VERSION):
    return message_header(ALICE, BOB, "t", "echo").model_copy(update={"v": v})


def _read_as_bob(bob: fedbox.Box, path: Path) -> bytes:
    f = open(path, "rb")  # noqa: SIM115 (the payload owns and closes it)
    header = read_header(f)
    with open_payload(
        bob.store, f, header, writer=ALICE, reader=BOB, sealer=bob.sealer, path=str(path)
    ) as payload:
        return payload.read()


@pytest.mark.parametrize("v", [1, 2])
def test_plain_files_of_both_versions_read(v: int) -> None:
    buf = io.BytesIO()
    final = write_envelope(buf, _header(v), b"a plain body")
    assert final.body_sha256 == hashlib.sha256(b"a plain body").hexdigest()
    header, body = read_envelope(io.BytesIO(buf.getvalue()))
    assert (header.v, body) == (v, b"a plain body")


@pytest.mark.parametrize("v", [1, 2])
def test_a_tampered_plain_body_is_refused_in_both_versions(v: int) -> None:
    buf = io.BytesIO()
    write_envelope(buf, _header(v), b"a plain body")
    data = bytearray(buf.getvalue())
    data[-3] ^= 1
    with pytest.raises(CorruptMessage, match="digest does not match"):
        read_envelope(io.BytesIO(bytes(data)))


@pytest.fixture
def pair(root: Path):
    with (
        fedbox.connect(root, BOB, encrypt=True, fsync=False) as bob,
        fedbox.connect(root, ALICE, encrypt=True, fsync=False) as alice,
    ):
        yield alice, bob


def _send_model(alice: fedbox.Box) -> str:
    """A request whose body refers to a sealed blob (the model is a Shared piece)."""
    body = Body([b"head", Shared([MODEL]), b"tail"])
    return alice.app("t").send(BOB, "echo", body).id


def test_a_v2_sealed_message_carries_no_digest_and_opens(root: Path, pair) -> None:
    alice, bob = pair
    msg_id = _send_model(alice)
    path = root / request_path(ALICE, BOB, "t", "echo", msg_id)
    with open(path, "rb") as f:
        header = read_header(f)
    assert (header.v, header.body_sha256) == (2, "")
    (blob,) = (root / path.relative_to(root).parts[0] / "t" / "blobs").iterdir()
    assert blob.name != hashlib.sha256(blob.read_bytes()).hexdigest()
    assert _read_as_bob(bob, path) == b"head" + MODEL + b"tail"


def test_a_tampered_v2_sealed_blob_is_refused_by_the_cipher(root: Path, pair) -> None:
    alice, bob = pair
    path = root / request_path(ALICE, BOB, "t", "echo", _send_model(alice))
    (blob,) = (root / path.relative_to(root).parts[0] / "t" / "blobs").iterdir()
    data = bytearray(blob.read_bytes())
    data[SEGMENT_SIZE + 100] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(DecryptError, match="segment 1 failed authentication"):
        _read_as_bob(bob, path)


def _v1_message_with_sealed_blob(root: Path, alice: fedbox.Box, *, name: str | None) -> Path:
    """What fedbox wrote before v2: the blob named by the SHA-256 of its ciphertext (or
    ``name``), the table sealed in a v1 envelope whose body_sha256 is the ciphertext's."""
    key = os.urandom(32)
    cipher = io.BytesIO()
    encrypt_body(MODEL, cipher, key, nonce_prefix=BLOB_NONCE_PREFIX, segment_size=SEGMENT_SIZE)
    stored = cipher.getvalue()
    name = name or hashlib.sha256(stored).hexdigest()
    alice.store.put(str(blob_path(ALICE, BOB, "t", name)), stored)
    ref = PartRef(PartKind.SEALED_BLOB, len(MODEL), len(stored), name, key, SEGMENT_SIZE)
    table = encode_table([ref])
    header = _header(1)
    fields = header.model_dump()
    sealed = io.BytesIO()
    assert alice.sealer is not None
    bundle = alice.sealer.bundle(BOB)
    fields["enc"] = seal(
        io.BytesIO(table), sealed, sender=alice.sealer.identity, recipients=[bundle], header=fields
    )
    path = root / request_path(ALICE, BOB, "t", "echo", header.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = header.model_validate(fields).to_json()
    path.write_bytes(b"FBX1" + len(raw).to_bytes(4, "little") + raw + sealed.getvalue())
    return path


def test_a_v1_sealed_blob_still_reads(root: Path, pair) -> None:
    alice, bob = pair
    path = _v1_message_with_sealed_blob(root, alice, name=None)
    assert _read_as_bob(bob, path) == MODEL


def test_a_v1_sealed_blob_is_still_checked_against_its_name(root: Path, pair) -> None:
    alice, bob = pair
    path = _v1_message_with_sealed_blob(root, alice, name="ab" * 32)
    with pytest.raises(DecryptError, match="SHA-256"):
        _read_as_bob(bob, path)


def test_a_v2_sealed_blob_must_be_named_by_its_key(root: Path, pair) -> None:
    """In v2 the name is checked against the key in the (authenticated) table: a table
    pointing at another sealed blob under a wrong name is refused before reading."""
    alice, bob = pair
    path = _v1_message_with_sealed_blob(root, alice, name=None)
    data = path.read_bytes()
    assert b'"v":1' in data
    # The same message re-sealed as v2: the blob keeps its v1 (ciphertext SHA-256) name.
    with open(path, "rb") as f:
        header = read_header(f)
        table = bob.sealer.open_body(f, header)
    fields = header.model_copy(update={"v": 2, "enc": None}).model_dump()
    sealed = io.BytesIO()
    fields["enc"] = seal(
        io.BytesIO(table),
        sealed,
        sender=alice.sealer.identity,
        recipients=[alice.sealer.bundle(BOB)],
        header=fields,
    )
    raw = header.model_validate(fields).to_json()
    path.write_bytes(b"FBX1" + len(raw).to_bytes(4, "little") + raw + sealed.getvalue())
    with pytest.raises(DecryptError, match="name does not belong to its key"):
        _read_as_bob(bob, path)
