"""The bridge's framing refuses every malformed body with a WireError saying what is
wrong, and a failure frame tells an incomplete body from a complete one."""

from __future__ import annotations

import io
import json
import struct

import pytest

from fedbox.bridge.wire import (
    FAILED,
    MAX_FRAME,
    MAX_HEAD,
    REQUEST_MAGIC,
    RESPONSE_MAGIC,
    ChunkStream,
    IncompleteBody,
    WireError,
    read_frames,
    read_request_head,
    read_response_head,
    request_prefix,
    response_frames,
)

U32 = struct.Struct("<I")


def head(magic: bytes, fields: object) -> bytes:
    raw = json.dumps(fields).encode()
    return magic + U32.pack(len(raw)) + raw


def test_a_request_round_trips_and_leaves_the_body_to_read() -> None:
    headers = [("x-a", "1"), ("x-a", "2"), ("cookie", "é")]
    f = io.BytesIO(request_prefix("POST", "/p?q=1", headers) + b"the body")
    got = read_request_head(f)
    assert (got.method, got.target, got.headers) == ("POST", "/p?q=1", headers)
    assert f.read() == b"the body"


def test_a_response_round_trips_in_frames() -> None:
    big = b"x" * (MAX_FRAME + 10)
    body = b"".join(response_frames(201, [("a", "b")], [b"one", b"", big]))
    f = io.BytesIO(body)
    assert read_response_head(f).status == 201
    assert b"".join(read_frames(f)) == b"one" + big


def test_a_failure_after_the_start_is_an_incomplete_body() -> None:
    def chunks():
        yield b"start"
        raise OSError("disk gone")

    f = io.BytesIO(b"".join(response_frames(200, [], chunks())))
    read_response_head(f)
    pieces = read_frames(f)
    assert next(pieces) == b"start"
    with pytest.raises(IncompleteBody, match="OSError: disk gone"):
        next(pieces)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "ends inside the magic"),
        (b"GET / HTTP/1.1\r\n", "not a bridge message"),
        (REQUEST_MAGIC + b"\x01", "ends inside the head length"),
        (REQUEST_MAGIC + U32.pack(MAX_HEAD + 1), "exceeds"),
        (REQUEST_MAGIC + U32.pack(10) + b"{}", "ends inside the head"),
        (REQUEST_MAGIC + U32.pack(3) + b"{{{", "unreadable HTTP head"),
        (head(REQUEST_MAGIC, [1]), "not a JSON object"),
        (head(REQUEST_MAGIC, {"method": "G T", "target": "/"}), "bad HTTP method"),
        (head(REQUEST_MAGIC, {"method": "GET", "target": "x"}), "bad HTTP target"),
        (head(REQUEST_MAGIC, {"method": "GET", "target": "/", "headers": {}}), "list of"),
        (head(REQUEST_MAGIC, {"method": "GET", "target": "/", "headers": [["a"]]}), "list of"),
        (head(REQUEST_MAGIC, {"method": "GET", "target": "/", "headers": [[1, 2]]}), "list of"),
    ],
)
def test_a_bad_request_head_is_refused(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        read_request_head(io.BytesIO(data))


@pytest.mark.parametrize("status", [None, "200", True, 99, 1000])
def test_a_bad_status_is_refused(status: object) -> None:
    data = head(RESPONSE_MAGIC, {"status": status, "headers": []})
    with pytest.raises(WireError, match="bad HTTP status"):
        read_response_head(io.BytesIO(data))


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        (b"", "ends inside the frame length"),
        (U32.pack(5) + b"abc", "ends inside the frame"),
        (U32.pack(MAX_FRAME + 1), "exceeds"),
        (U32.pack(0) + b"more", "after the end"),
        (U32.pack(FAILED) + U32.pack(MAX_HEAD + 1), "exceeds"),
        (U32.pack(FAILED) + U32.pack(9) + b"short", "ends inside the failure reason"),
    ],
)
def test_bad_frames_are_refused(frames: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        b"".join(read_frames(io.BytesIO(frames)))


def test_a_chunk_stream_reads_across_chunks_without_joining_them() -> None:
    stream = ChunkStream(iter([b"ab", b"", b"cde"]))
    assert stream.read(1) == b"a"
    assert stream.read(3) == b"b"  # one chunk at a time, like a socket
    assert stream.read() == b"cde"
    assert stream.read() == b""
