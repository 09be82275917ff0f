"""The envelope format: exact bytes, streaming in one pass, refusal of damage."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import pytest

from fedbox.errors import CorruptMessage
from fedbox.rpc.envelope import MAGIC, Header, copy_body, read_envelope, read_header, write_envelope

HEADER = Header(
    id="0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60",
    kind="request",
    sender="a@x.org",
    recipient="b@x.org",
    app="t",
    endpoint="echo",
    created=1.5,
    expires=2.5,
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
