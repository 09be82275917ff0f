"""No size ceiling (issue 6): bodies above the chunking threshold travel as chunk blobs.

The threshold is lowered so that megabytes stand in for gigabytes: protobuf refuses
messages over 2 GiB, and here a guard refuses to let protobuf parse more than 64 KiB at
once, so a round that passes shows that no part of fedbox's path needs the whole
message in one protobuf object.
"""

from __future__ import annotations

import math
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.common.serde import message_to_proto
from large_helpers import AGG, Federation, blob_files, model_of, plus_one_app

import fedbox
import fedbox.fl.codec as codec
import fedbox.fl.wire_decode as wire_decode
from fedbox.fl.codec import BatchEncoder, decode_message
from fedbox.rpc import Request

THRESHOLD = 1 << 20
CHUNK = 256 << 10
SMALL_PARSE = 64 << 10


def _chunked(**extra: object) -> dict[str, object]:
    return {"chunk_threshold": THRESHOLD, "chunk_size": CHUNK, **extra}


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
def encrypt(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def fed(root: Path, encrypt: bool) -> Iterator[Federation]:
    federation = Federation(root, 2, plus_one_app, **_chunked(encrypt=encrypt))
    yield federation
    federation.close()


def _check_plus_one(replies: list[Message], model: ArrayRecord) -> None:
    for reply in replies:
        for key, array in model.items():
            np.testing.assert_array_equal(reply.content["model"][key].numpy(), array.numpy() + 1)


def _content_size(model: ArrayRecord) -> int:
    """Bytes of the content field of a message carrying ``model`` (what gets chunked:
    everything after the metadata)."""
    msg = Message(RecordDict({"model": model}), 1, "train")
    _head, *content = BatchEncoder().body(msg).buffers()
    return sum(v.nbytes for v in content)


def test_a_message_just_above_the_threshold_is_chunked_both_ways(fed: Federation) -> None:
    model = model_of(THRESHOLD + 4096)
    replies = fed.round(model)
    _check_plus_one(replies, model)
    chunks = math.ceil(_content_size(model) / CHUNK)
    for email in fed.emails:
        folder = f"syft_outbox_inbox_{AGG}_to_{email}"
        mine = [p for p in blob_files(fed.root, AGG) if p.parts[-4] == folder]
        assert len(mine) == chunks, "the model is cut into chunks, copied into each folder"
        assert all(p.stat().st_nlink == 1 for p in mine), "each folder's chunks are its own"
        answered = blob_files(fed.root, email)
        assert len(answered) >= chunks, "the reply is chunked too"
    assert max(p.stat().st_size for p in blob_files(fed.root)) <= CHUNK + 64


def test_a_message_just_below_the_threshold_is_not_chunked(fed: Federation, encrypt: bool) -> None:
    """Encrypted bodies are chunked from one chunk up: a reader decrypts a part whole."""
    model = model_of((CHUNK if encrypt else THRESHOLD) - (64 << 10))
    replies = fed.round(model)
    _check_plus_one(replies, model)
    assert len({p.name for p in blob_files(fed.root, AGG)}) == 1, "one shared blob"
    for email in fed.emails:
        assert blob_files(fed.root, email) == [], "a reply to one node is one file"


def test_an_encrypted_message_above_one_chunk_is_chunked(root: Path) -> None:
    federation = Federation(root, 2, plus_one_app, **_chunked(encrypt=True))
    try:
        model = model_of(CHUNK + 4096)
        _check_plus_one(federation.round(model), model)
        assert len({p.name for p in blob_files(root, AGG)}) == 2
        for email in federation.emails:
            assert len(blob_files(root, email)) == 2
    finally:
        federation.close()


class _SmallParses:
    """A protobuf class whose FromString refuses more than SMALL_PARSE bytes."""

    def __init__(self, cls: type) -> None:
        self._cls = cls

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._cls(*args, **kwargs)

    def FromString(self, data: bytes) -> object:
        assert len(data) <= SMALL_PARSE, f"protobuf asked to parse {len(data)} bytes"
        return self._cls.FromString(data)


def test_a_model_over_the_ceiling_moves_with_protobuf_seeing_small_pieces_only(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "ProtoMetadata",
        "ProtoError",
        "ProtoArray",
        "ProtoConfigRecord",
        "ProtoMetricRecord",
    ):
        monkeypatch.setattr(wire_decode, name, _SmallParses(getattr(wire_decode, name)))

    def no_fallback(*args: object) -> None:
        raise AssertionError("the whole message was handed to protobuf")

    monkeypatch.setattr(codec, "message_from_proto", no_fallback)
    model = model_of(6 << 20, seed=5)  # "over the ceiling": 6 x the threshold
    replies = fed.round(model)
    _check_plus_one(replies, model)
    assert max(p.stat().st_size for p in fed.root.rglob("*") if p.is_file()) <= CHUNK + 64 * 1024


def test_a_chunked_body_is_flowers_serialization_and_decodes_in_bounded_memory(
    root: Path, encrypt: bool
) -> None:
    """The chunks, read back in order, are byte for byte Flower's serialization; decoding
    allocates the arrays and at most a chunk more (one chunk decrypted at a time)."""
    model = model_of(4 << 20, seed=7)
    msg = Message(RecordDict({"model": model}), 5, "train")
    msg.metadata.__dict__["_message_id"] = "m"
    reference = message_to_proto(msg).SerializeToString()
    arrays = sum(len(a.data) for a in model.values())
    seen: dict[str, object] = {}
    done = threading.Event()
    with (
        fedbox.connect(root, "a@x.org", fsync=False, **_chunked(encrypt=encrypt)) as a,
        fedbox.connect(root, "b@x.org", fsync=False, **_chunked(encrypt=encrypt)) as b,
    ):
        server = b.app("t")

        @server.on_request("raw", stream=True)
        def raw(req: Request) -> bytes:
            assert req.payload is not None
            seen["raw"] = req.payload.read()
            return b""

        @server.on_request("decode", stream=True)
        def decode(req: Request) -> bytes:
            assert req.payload is not None
            tracemalloc.start()
            try:
                seen["message"] = decode_message(req.payload)
                seen["peak"] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                done.set()
            return b""

        server.start()
        body = BatchEncoder().body(msg)
        assert a.app("t").send("b@x.org", "raw", body).wait(30).status == 200
        assert seen["raw"] == reference
        assert a.app("t").send("b@x.org", "decode", body).wait(30).status == 200
    assert done.is_set()
    back = seen["message"]
    assert isinstance(back, Message)
    for key, array in model.items():
        assert back.content["model"][key].data == array.data
    assert seen["peak"] < arrays + CHUNK + (1 << 20), f"peak {seen['peak']} for {arrays} bytes"
