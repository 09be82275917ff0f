"""Flower ``Message`` <-> bytes: Flower's own protobuf, nothing added.

A body is byte for byte ``message_to_proto(msg).SerializeToString()``, so any Flower
tool can read it, but it is produced without Flower's per-level copies of the array
data, and :class:`BatchEncoder` serialises a ``RecordDict`` that goes to many nodes
(FedAvg sends the same model to all) only once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message.message import make_message
from flwr.common.serde import (
    array_from_proto,
    config_record_from_proto,
    message_from_proto,
    metric_record_from_proto,
    recorddict_to_proto,
)
from flwr.common.serde_utils import (
    error_from_proto,
    error_to_proto,
    metadata_from_proto,
    metadata_to_proto,
)
from flwr.proto.error_pb2 import Error as ProtoError
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.proto.message_pb2 import Metadata as ProtoMetadata
from flwr.proto.recorddict_pb2 import Array as ProtoArray
from flwr.proto.recorddict_pb2 import ArrayRecord as ProtoArrayRecord
from flwr.proto.recorddict_pb2 import ConfigRecord as ProtoConfigRecord
from flwr.proto.recorddict_pb2 import MetricRecord as ProtoMetricRecord
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

__all__ = [
    "BatchEncoder",
    "MessageSummary",
    "PartsReader",
    "decode_message",
    "describe_body",
    "encode_message",
    "scalar_metrics",
    "summarize",
]


def encode_message(message: Message) -> bytes:
    """Flower's protobuf bytes of ``message`` (metadata, content or error)."""
    return b"".join(_message_parts(message, None))


def decode_message(body: Buffer) -> Message:
    """The ``Message`` in ``body``; ``google.protobuf.message.DecodeError`` if it is not one.

    Array data is copied once (Flower's own path copies it twice); anything the fast
    reader does not expect goes through protobuf, which is the authority.
    """
    try:
        return _decode_fast(memoryview(body).cast("B"))
    except Exception:  # unusual but maybe valid encoding, or invalid: protobuf decides
        return message_from_proto(ProtoMessage.FromString(bytes(body)))


class BatchEncoder:
    """Encodes a batch of messages, serialising each distinct content object once.

    The cache is keyed by object identity and lives only as long as the encoder,
    which callers create per batch: a RecordDict mutated between batches is never
    served stale. :meth:`reader` hands the bytes out as a stream over the cached
    parts, so a 40 MB model sent to N nodes is never copied N times.
    """

    def __init__(self) -> None:
        self._content: dict[int, tuple[RecordDict, list[Buffer], int]] = {}

    def parts(self, message: Message) -> list[Buffer]:
        return _message_parts(message, self)

    def encode(self, message: Message) -> bytes:
        return b"".join(self.parts(message))

    def reader(self, message: Message) -> PartsReader:
        return PartsReader(self.parts(message))

    def _content_parts(self, content: RecordDict) -> tuple[list[Buffer], int]:
        cached = self._content.get(id(content))
        if cached is None or cached[0] is not content:
            parts = _recorddict_parts(content)
            cached = (content, parts, sum(len(p) for p in parts))
            self._content[id(content)] = cached
        return cached[1], cached[2]


class PartsReader(io.RawIOBase):
    """A read-once binary stream over byte buffers, without joining them."""

    def __init__(self, parts: list[Buffer]) -> None:
        self._parts = [memoryview(p).cast("B") for p in parts if len(p)]
        self._index = 0
        self._offset = 0
        self.size = sum(len(p) for p in self._parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(out) - written, len(part) - self._offset)
            out[written : written + n] = part[self._offset : self._offset + n]
            written += n
            self._offset += n
            if self._offset == len(part):
                self._index, self._offset = self._index + 1, 0
        return written


# -- Flower's wire format, written by hand for the big fields -------------------------
#
# ``recorddict_to_proto`` builds nested protobuf objects, and each level copies the
# array bytes (about 0.5 s for a 40 MB model). Protobuf's encoding is simple: a field
# is a varint tag, then for bytes and sub-messages a varint length and the payload;
# a serialiser writes fields in field-number order and leaves out proto3 defaults.
# So small fields are serialised by protobuf itself and array data is appended as
# a view. tests/fl/test_fl_runner.py checks the result is byte-identical.

Buffer = bytes | bytearray | memoryview
_LEN = 2  # wire type of length-delimited fields


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, parts: list[Buffer], size: int) -> tuple[list[Buffer], int]:
    """Wrap ``parts`` (``size`` bytes in all) as length-delimited field ``number``."""
    head = _varint(number << 3 | _LEN) + _varint(size)
    return [head, *parts], len(head) + size


def _array_parts(array: Array) -> tuple[list[Buffer], int]:
    small = array_to_proto_without_data(array).SerializeToString()
    data = array.data
    if not len(data):
        return [small], len(small)
    parts, size = _field(4, [memoryview(data)], len(data))
    return [small, *parts], len(small) + size


def array_to_proto_without_data(array: Array) -> ProtoArray:
    return ProtoArray(dtype=array.dtype, shape=list(array.shape), stype=array.stype)


def _array_record_parts(record: ArrayRecord) -> tuple[list[Buffer], int]:
    out: list[Buffer] = []
    total = 0
    for key, array in record.items():
        key_bytes = ProtoArrayRecord.Item(key=key).SerializeToString()
        value, value_size = _field(2, *_array_parts(array))
        item, item_size = _field(1, [key_bytes, *value], len(key_bytes) + value_size)
        out += item
        total += item_size
    return out, total


def _recorddict_parts(content: RecordDict) -> list[Buffer]:
    out: list[Buffer] = []
    for key, record in content.items():
        if isinstance(record, ArrayRecord):
            key_bytes = ProtoRecordDict.Item(key=key).SerializeToString()
            value, value_size = _field(2, *_array_record_parts(record))
            item, _ = _field(1, [key_bytes, *value], len(key_bytes) + value_size)
            out += item
        else:  # metric and config records are small: let protobuf do it
            out.append(recorddict_to_proto(RecordDict({key: record})).SerializeToString())
    return out


class _Unusual(Exception):
    """Valid protobuf perhaps, but not laid out as a serialiser writes Flower messages."""


def _varint_at(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(view) or shift > 63:
            raise _Unusual("truncated varint")
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(view: memoryview) -> Iterator[tuple[int, int, int, int]]:
    """``(number, field_start, value_start, value_end)`` of each length-delimited field."""
    pos = 0
    while pos < len(view):
        start = pos
        key, pos = _varint_at(view, pos)
        if key & 7 != _LEN:
            raise _Unusual("not a length-delimited field")
        length, pos = _varint_at(view, pos)
        end = pos + length
        if end > len(view):
            raise _Unusual("field runs past the end")
        yield key >> 3, start, pos, end
        pos = end


def _unique(seen: set[int], number: int) -> None:
    if number in seen:  # protobuf would merge repeated singular fields; let it
        raise _Unusual(f"field {number} repeated")
    seen.add(number)


def _decode_array(view: memoryview) -> Array:
    small: list[memoryview] = []
    data = b""
    seen: set[int] = set()
    for number, start, a, b in _fields(view):
        _unique(seen, number)
        if number == 4:
            data = bytes(view[a:b])  # the one copy of the array data
        else:
            small.append(view[start:b])
    head = ProtoArray.FromString(b"".join(small))
    return Array(dtype=head.dtype, shape=tuple(head.shape), stype=head.stype, data=data)


def _decode_array_record(view: memoryview) -> ArrayRecord:
    arrays: dict[str, Array] = {}
    for number, _, a, b in _fields(view):
        if number != 1:
            raise _Unusual("unknown ArrayRecord field")
        key, array, seen = "", None, set()
        for inner, _, c, d in _fields(view[a:b]):
            _unique(seen, inner)
            if inner == 1:
                key = bytes(view[a + c : a + d]).decode("utf-8")
            elif inner == 2:
                array = _decode_array(view[a + c : a + d])
            else:
                raise _Unusual("unknown ArrayRecord.Item field")
        arrays[key] = array if array is not None else array_from_proto(ProtoArray())
    return ArrayRecord(array_dict=arrays, keep_input=False)


def _decode_recorddict(view: memoryview) -> RecordDict:
    out = RecordDict()
    for number, _, a, b in _fields(view):
        if number != 1:
            raise _Unusual("unknown RecordDict field")
        key, kind, value, seen = "", 0, view[0:0], set()
        for inner, _, c, d in _fields(view[a:b]):
            _unique(seen, inner)
            if inner == 1:
                key = bytes(view[a + c : a + d]).decode("utf-8")
            elif inner in (2, 3, 4) and not kind:
                kind, value = inner, view[a + c : a + d]
            else:
                raise _Unusual("unexpected RecordDict.Item field")
        if kind == 2:
            out[key] = _decode_array_record(value)
        elif kind == 3:
            out[key] = metric_record_from_proto(ProtoMetricRecord.FromString(bytes(value)))
        elif kind == 4:
            out[key] = config_record_from_proto(ProtoConfigRecord.FromString(bytes(value)))
        else:
            raise _Unusual("RecordDict.Item without a record")
    return out


def _decode_fast(view: memoryview) -> Message:
    metadata, content, error = ProtoMetadata(), None, None
    seen: set[int] = set()
    for number, _, a, b in _fields(view):
        _unique(seen, number)
        if number == 1:
            metadata = ProtoMetadata.FromString(bytes(view[a:b]))
        elif number == 2:
            content = _decode_recorddict(view[a:b])
        elif number == 3:
            error = error_from_proto(ProtoError.FromString(bytes(view[a:b])))
        else:
            raise _Unusual("unknown Message field")
    return make_message(metadata=metadata_from_proto(metadata), content=content, error=error)


def _message_parts(message: Message, encoder: BatchEncoder | None) -> list[Buffer]:
    head = ProtoMessage(metadata=metadata_to_proto(message.metadata))
    if message.has_error():
        head.error.CopyFrom(error_to_proto(message.error))
        return [head.SerializeToString()]
    if encoder is None:
        parts = _recorddict_parts(message.content)
        size = sum(len(p) for p in parts)
    else:
        parts, size = encoder._content_parts(message.content)
    content, _ = _field(2, parts, size)
    return [head.SerializeToString(), *content]


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What a progress display or ``fedbox inspect`` shows about a message."""

    message_type: str
    group_id: str
    run_id: int
    src_node_id: int
    dst_node_id: int
    records: dict[str, str]
    """Record name -> short description, e.g. ``"ArrayRecord 2 arrays (64, 10)..."``."""
    array_bytes: int
    error: str | None


def summarize(message: Message) -> MessageSummary:
    """A small, printable description of a message (no array data)."""
    records: dict[str, str] = {}
    array_bytes = 0
    if message.has_content():
        for name, record in message.content.items():
            if isinstance(record, ArrayRecord):
                shapes = ", ".join(str(tuple(a.shape)) for a in list(record.values())[:4])
                more = ", ..." if len(record) > 4 else ""
                size = sum(len(a.data) for a in record.values())
                array_bytes += size
                records[name] = f"ArrayRecord {len(record)} arrays [{shapes}{more}] {size} B"
            elif isinstance(record, MetricRecord):
                records[name] = f"MetricRecord {dict(record)}"
            elif isinstance(record, ConfigRecord):
                records[name] = f"ConfigRecord {dict(record)}"
            else:  # a record type from a newer Flower
                records[name] = type(record).__name__
    error = None
    if message.has_error():
        error = f"code {message.error.code}: {message.error.reason}"
    meta = message.metadata
    return MessageSummary(
        message_type=meta.message_type,
        group_id=meta.group_id,
        run_id=meta.run_id,
        src_node_id=meta.src_node_id,
        dst_node_id=meta.dst_node_id,
        records=records,
        array_bytes=array_bytes,
        error=error,
    )


def describe_body(body: Buffer) -> list[tuple[str, str]] | None:
    """Rows for ``fedbox inspect``: what a Flower body holds, or None if it is not one."""
    try:
        message = decode_message(body)
    except Exception:
        return None
    meta, summary = message.metadata, summarize(message)
    rows = [
        ("flower message", meta.message_type),
        ("run / group", f"{meta.run_id} / {meta.group_id or '-'}"),
        ("nodes", f"{meta.src_node_id} -> {meta.dst_node_id}"),
        ("message id", meta.message_id or "-"),
        ("reply to", meta.reply_to_message_id or "-"),
        ("ttl", f"{meta.ttl:.0f} s"),
    ]
    rows += [(f"record {name!r}", text) for name, text in summary.records.items()]
    if summary.error:
        rows.append(("error", summary.error))
    return rows


def scalar_metrics(message: Message) -> dict[str, float]:
    """Every scalar in the message's MetricRecords, for progress displays."""
    out: dict[str, float] = {}
    if not message.has_content():
        return out
    for record in message.content.metric_records.values():
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = float(value)
    return out
