"""The envelope format: exact bytes, streaming in one pass, refusal of damage."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
from pathlib import Path

import pytest

from fedbox.datasite.paths import blob_path
from fedbox.errors import CorruptMessage
from fedbox.rpc.envelope import MAGIC, Header, copy_body, read_envelope, read_header, write_envelope
from fedbox.rpc.parts import PartKind, PartRef, encode_table
from fedbox.rpc.payload import open_payload
from fedbox.store import LocalStore, RemoteStore
from fedbox.testing import message_header

HEADER = message_header(
    "a@x.org",
    "b@x.org",
    "t",
    "echo",
    msg_id="0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60",
    created=1.5,
    expires_in=1.0,
)


def test_layout_is_magic_length_json_body() -> None:
    buf = io.BytesIO()
    final = write_envelope(buf, HEADER, b"raw \x00 bytes")
    data = buf.getvalue()
    assert data[:4] == MAGIC
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + length])
    assert data[8 + length :] == b"raw \x00 bytes"
    assert header["body_len"] == 11 == final.body_len
    assert header["body_sha256"] == hashlib.sha256(b"raw \x00 bytes").hexdigest()
    assert header["enc"] is None and header["kind"] == "request"


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 7, 5 << 20])
def test_stream_body_equals_bytes_body(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    streamed, direct = io.BytesIO(), io.BytesIO()
    write_envelope(streamed, HEADER, io.BytesIO(body))
    write_envelope(direct, HEADER, body)
    for buf in (streamed, direct):
        buf.seek(0)
        header, got = read_envelope(buf)
        assert got == body and header.body_len == size
    streamed.seek(0)
    header = read_header(streamed)
    out = io.BytesIO()
    copy_body(streamed, header, out)
    assert out.getvalue() == body


def test_copy_body_detects_tampering() -> None:
    buf = io.BytesIO()
    write_envelope(buf, HEADER, b"a" * 5000)
    data = bytearray(buf.getvalue())
    data[-10] ^= 1
    f = io.BytesIO(bytes(data))
    header = read_header(f)
    with pytest.raises(CorruptMessage, match="digest"):
        copy_body(f, header, io.BytesIO())


def test_unknown_version_is_refused() -> None:
    buf = io.BytesIO()
    write_envelope(buf, HEADER.model_copy(update={"v": 9}), b"")
    buf.seek(0)
    with pytest.raises(CorruptMessage, match="version 9"):
        read_header(buf)


def test_header_with_wrong_types_is_refused() -> None:
    raw = json.dumps({"id": 5, "kind": "nope"}).encode()
    f = io.BytesIO(MAGIC + struct.pack("<I", len(raw)) + raw)
    with pytest.raises(CorruptMessage, match="unreadable header"):
        read_header(f)


# -- hostile files (issue 11: points 5, 6 and "no error message quotes file contents") --

TERA = 10**12
SECRET = "s3cr3t-hunter2"


def _raw_file(path: Path, fields: dict, body: bytes = b"") -> Path:
    """A message file with exactly these header fields (no checks, no fix-ups)."""
    raw = json.dumps({**HEADER.model_dump(), **fields}).encode()
    path.write_bytes(MAGIC + struct.pack("<I", len(raw)) + raw + body)
    return path


def _payload_error(store: LocalStore, path: Path) -> Exception:
    """What reading the file as a received message raises."""
    f = open(path, "rb")  # noqa: SIM115 (the payload owns and closes it)
    try:
        header = read_header(f, path=path.name)
        with open_payload(
            store, f, header, writer="a@x.org", reader="b@x.org", sealer=None, path=path.name
        ) as payload:
            payload.read()
    except Exception as exc:
        f.close()
        return exc
    raise AssertionError("the file was accepted")


@pytest.mark.parametrize("tail", [b"tiny body", b""], ids=["short", "empty"])
def test_a_lying_body_len_is_corrupt_not_a_huge_allocation(tmp_path: Path, tail: bytes) -> None:
    path = _raw_file(tmp_path / "m.request", {"body_len": TERA, "body_sha256": "0" * 64}, tail)
    store = LocalStore(tmp_path, watch_mode="poll")
    exc = _payload_error(store, path)
    assert isinstance(exc, CorruptMessage), repr(exc)
    assert f"is {len(tail)} bytes, header says {TERA}" in str(exc)
    with open(path, "rb") as f, pytest.raises(CorruptMessage, match="header says"):
        read_envelope(f)


def test_a_lying_body_len_of_a_body_blob_is_corrupt(tmp_path: Path) -> None:
    blob = b"the shared body"
    name = hashlib.sha256(blob).hexdigest()
    store = LocalStore(tmp_path, watch_mode="poll")
    store.put(str(blob_path("a@x.org", "b@x.org", "t", name)), blob)
    path = _raw_file(
        tmp_path / "m.request", {"body_len": TERA, "body_sha256": name, "body_ref": name}
    )
    exc = _payload_error(store, path)
    assert isinstance(exc, CorruptMessage), repr(exc)
    assert f"is {len(blob)} bytes, header says {TERA}" in str(exc)


@pytest.mark.parametrize(
    "fields",
    [
        {"created": math.nan},
        {"expires": math.inf},
        {"expires": -math.inf},
        {"created": -1.0},
        {"expires": 1e300},
        {"status": 10**30},
        {"body_len": 1 << 64},
    ],
    ids=lambda f: f"{next(iter(f))}={next(iter(f.values()))}",
)
def test_non_finite_or_absurd_numbers_are_refused(tmp_path: Path, fields: dict) -> None:
    path = _raw_file(tmp_path / "m.request", fields)
    field = next(iter(fields))
    with open(path, "rb") as f, pytest.raises(CorruptMessage, match=f"^unreadable header: {field}"):
        read_header(f)
    with pytest.raises(ValueError, match=field):  # nor can a sender write one
        Header(**{**HEADER.model_dump(), **fields})


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(f"{SECRET}: root:x:0:0\n".encode()),
        lambda p: _raw_file(p, {"headers": {SECRET: 1}}),
        lambda p: _raw_file(p, {"body_len": 0, "body_sha256": SECRET, "body_ref": SECRET}),
    ],
    ids=["bad magic", "headers key", "body_ref"],
)
def test_no_error_quotes_the_file(tmp_path: Path, make) -> None:
    """A request linked to a private file is answered with the error's text: it must not
    carry the file's bytes (issue 11, point 4)."""
    path = tmp_path / "m.request"
    make(path)
    exc = _payload_error(LocalStore(tmp_path, watch_mode="poll"), path)
    assert isinstance(exc, CorruptMessage), repr(exc)
    for piece in (SECRET, SECRET[:4], SECRET[-7:]):
        assert piece not in str(exc), str(exc)


def test_a_lying_blob_size_on_a_remote_store_is_corrupt() -> None:
    """A remote blob's size is known only once downloaded: a table claiming a terabyte
    must fail on the bytes really there, not on allocating a terabyte first."""
    pytest.importorskip("fsspec")
    store = RemoteStore("memory://lying-blob")
    blob = b"ten bytes!"
    digest = hashlib.sha256(blob).hexdigest()
    store.put(str(blob_path("a@x.org", "b@x.org", "t", digest)), blob)
    message = io.BytesIO()
    write_envelope(message, HEADER, encode_table([PartRef(PartKind.BLOB, TERA, TERA, digest)]))
    store.put("m.request", message.getvalue())
    f = store.open("m.request")
    header = read_header(f)
    with (
        open_payload(store, f, header, writer="a@x.org", reader="b@x.org", sealer=None) as body,
        pytest.raises(CorruptMessage, match="bytes early"),
    ):
        body.read()
