"""Zero-copy Flower bodies (issue 6): byte identity with Flower's serializer, array data
written as views and read back with one copy."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.common.constant import ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.supercore.task_identity import TaskIdentity

from fedbox.errors import CorruptMessage
from fedbox.fl import codec
from fedbox.fl.codec import (
    RUN_CONFIG_RECORD,
    BatchEncoder,
    decode_message,
    encode_message,
    message_body,
    run_config_trailer,
    take_run_config,
)
from fedbox.rpc.body import Shared
from fedbox.rpc.envelope import Header, read_header, write_buffers
from fedbox.rpc.payload import open_payload
from fedbox.store import LocalStore

DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
]
SHAPES = [(), (0,), (7,), (2, 3, 4), (1, 1, 1, 1), (3, 0, 2)]


@pytest.fixture(autouse=True)
def task_identity() -> None:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 77, 1, 1


def _arrays(seed: int) -> ArrayRecord:
    rng = np.random.default_rng(seed)
    arrays: dict[str, Array] = {}
    for i, dtype in enumerate(DTYPES):
        shape = SHAPES[i % len(SHAPES)]
        arrays[f"{dtype}{shape}"] = Array(np.asarray(rng.random(shape) * 100).astype(dtype))
    arrays["fortran"] = Array(np.asfortranarray(rng.random((3, 5))))
    arrays["raw"] = Array(dtype="float32", shape=(2,), stype="custom", data=b"\x00" * 8)
    arrays["empty-data"] = Array(dtype="float32", shape=(0,), stype="custom", data=b"")
    return ArrayRecord(arrays)


CONTENTS = {
    "arrays-every-dtype-and-shape": RecordDict({"model": _arrays(1), "extra": _arrays(2)}),
    "metrics": RecordDict(
        {"m": MetricRecord({"i": 3, "f": 0.25, "li": [1, 2, 3], "lf": [0.5, 1.5], "neg": -7})}
    ),
    "configs": RecordDict(
        {
            "c": ConfigRecord(
                {"s": "héllo", "b": b"\x00\xff", "t": True, "i": 9, "f": 1e-3, "ls": ["a", "b"]}
            )
        }
    ),
    "mixed": RecordDict(
        {
            "arrays": ArrayRecord([np.arange(6, dtype=np.float32), np.ones((3, 4))]),
            "config": ConfigRecord({"lr": 0.1, "b": b"xx", "l": [1, 2]}),
            "metrics": MetricRecord({"a": 1.0, "l": [1, 2]}),
        }
    ),
    "unicode-and-empty-keys": RecordDict(
        {"": ArrayRecord({"": Array(np.zeros(0, dtype=np.float32))}), "ключ ✓": ConfigRecord()}
    ),
    "empty-content": RecordDict(),
    "empty-records": RecordDict({"a": ArrayRecord(), "c": ConfigRecord(), "m": MetricRecord()}),
}


NAMES = [*CONTENTS, "reply", "error", "error-no-reason"]


def _message(name: str) -> Message:
    """The message called ``name`` (built in the test: Flower reads TaskIdentity)."""
    if name in CONTENTS:
        msg = Message(CONTENTS[name], 5, "train", group_id="g", ttl=123.5)
        msg.metadata.__dict__["_message_id"] = f"id-{name}"
        return msg
    request = _message("mixed")
    if name == "reply":
        reply = Message(RecordDict({"m": MetricRecord({"x": 1})}), reply_to=request)
    elif name == "error":
        reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "boom ✗"), reply_to=request)
    else:
        return Message(Error(ErrorCode.UNKNOWN), reply_to=request)
    reply.metadata.__dict__["_message_id"] = name
    return reply


def _through_a_file(tmp_path: Path, body_buffers: list[memoryview]) -> Message:
    """Write the body as a message file and decode it from the file's payload."""
    store = LocalStore(tmp_path / "store", fsync=False)
    header = Header(
        id="x", kind="request", sender="a@x.org", recipient="b@x.org", app="app", endpoint="e",
        created=0, expires=1,
    )  # fmt: skip
    with store.writer("m.request") as f:
        write_buffers(f, header, body_buffers)
    f = store.open("m.request")
    payload = open_payload(
        store, f, read_header(f), writer="a@x.org", reader="b@x.org", sealer=None
    )
    with payload:
        return decode_message(payload)


@pytest.fixture(params=["protobuf", "streaming"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which decoder reads these small bodies: protobuf, as it does, or the streaming
    reader that large bodies take (made to take every size)."""
    if request.param == "streaming":
        monkeypatch.setattr(codec, "SMALL_MESSAGE", -1)
    return str(request.param)


@pytest.mark.parametrize("name", NAMES)
def test_bodies_are_byte_identical_to_flowers_serializer(
    name: str, reader: str, tmp_path: Path
) -> None:
    msg = _message(name)
    reference = message_to_proto(msg).SerializeToString()
    assert bytes(message_body(msg)) == reference
    assert encode_message(msg) == reference
    assert bytes(BatchEncoder().body(msg, shared=True)) == reference
    flowers = message_from_proto(ProtoMessage.FromString(reference))
    for back in (decode_message(reference), _through_a_file(tmp_path, message_body(msg).buffers())):
        assert encode_message(back) == reference
        assert back.metadata == flowers.metadata
        if flowers.has_content():
            for key, record in flowers.content.array_records.items():
                for akey, array in record.items():
                    got = back.content.array_records[key][akey]
                    assert type(got.data) is bytes and got.data == array.data
                    if array.stype == "numpy.ndarray":
                        np.testing.assert_array_equal(got.numpy(), array.numpy())


def test_the_run_config_trailer_merges_into_the_content_and_leaves_sharing_alone(
    reader: str, tmp_path: Path
) -> None:
    config = {"lr": 0.5, "rounds": 3, "iid": True, "name": "zebra"}
    msg = _message("mixed")
    body = BatchEncoder(run_config_trailer(config)).body(msg, shared=True)
    assert sum(isinstance(p, Shared) for p in body.pieces) == 1
    flowers = message_from_proto(ProtoMessage.FromString(bytes(body)))  # protobuf merges
    assert flowers.content[RUN_CONFIG_RECORD] == ConfigRecord(config)
    back = _through_a_file(tmp_path, list(body.buffers()))  # a payload: no fallback
    assert set(back.content) == set(msg.content) | {RUN_CONFIG_RECORD}
    assert take_run_config(back) == config
    assert encode_message(back) == encode_message(msg)
    assert take_run_config(decode_message(encode_message(msg))) is None


def test_array_data_goes_to_the_file_as_views_of_the_arrays_own_bytes(tmp_path: Path) -> None:
    model = np.random.default_rng(0).random(8 << 20 >> 3)  # 8 MiB of float64
    record = ArrayRecord([model, model[:10].astype(np.float32)])
    msg = Message(RecordDict({"model": record}), 5, "train")
    body = message_body(msg)
    datas = {id(a.data) for a in record.values()}
    big = [v for v in body.buffers() if v.nbytes > 1000]
    assert big and all(id(v.obj) in datas for v in big), "array data must not be copied"
    tracemalloc.start()
    try:
        store = LocalStore(tmp_path, fsync=False)
        header = Header(
            id="x", kind="request", sender="a@x.org", recipient="b@x.org", app="a",
            endpoint="e", created=0, expires=1,
        )  # fmt: skip
        with store.writer("m.request") as f:
            write_buffers(f, header, list(body.buffers()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"writing allocated {peak} bytes: the body was copied"


def test_decoding_from_a_file_copies_array_data_once(tmp_path: Path) -> None:
    model = np.random.default_rng(1).random(16 << 20 >> 3)  # 16 MiB
    msg = Message(RecordDict({"model": ArrayRecord([model])}), 5, "train")
    size = len(ArrayRecord([model])["0"].data)
    buffers = list(message_body(msg).buffers())
    tracemalloc.start()
    try:
        back = _through_a_file(tmp_path, buffers)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size <= current < size + (1 << 20)
    assert peak < size + (1 << 20), f"peak {peak} for {size} bytes of arrays: a second copy"
    np.testing.assert_array_equal(back.content["model"]["0"].numpy(), model)


def test_a_damaged_array_in_a_file_is_refused_not_decoded(tmp_path: Path) -> None:
    model = np.arange(2 << 20, dtype=np.float32)  # 8 MiB: read lazily, verified at the end
    msg = Message(RecordDict({"model": ArrayRecord([model])}), 5, "train")
    store = LocalStore(tmp_path, fsync=False)
    header = Header(
        id="x", kind="request", sender="a@x.org", recipient="b@x.org", app="a", endpoint="e",
        created=0, expires=1,
    )  # fmt: skip
    with store.writer("m.request") as f:
        write_buffers(f, header, list(message_body(msg).buffers()))
    path = tmp_path / "m.request"
    data = bytearray(path.read_bytes())
    data[-1000] ^= 1
    path.write_bytes(data)
    f = store.open("m.request")
    failures: list[Exception] = []
    payload = open_payload(
        store, f, read_header(f), writer="a@x.org", reader="b@x.org", sealer=None,
        on_failure=failures.append,
    )  # fmt: skip
    with payload, pytest.raises(CorruptMessage, match="digest"):
        decode_message(payload)
    assert len(failures) == 1 and payload.failure is failures[0]
