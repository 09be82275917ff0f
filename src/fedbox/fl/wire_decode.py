"""Reading Flower's protobuf wire format as a stream, array data copied once.

The reader walks a Message front to back: small fields (metadata, array headers,
metric and config records) are handed to protobuf, and each array's data is read
straight from the stream into the ``bytes`` object that becomes ``Array.data``
(``io.BufferedReader.read(n)`` fills a fresh bytes object from the file, one copy; see
``fedbox.rpc.payload``). Nothing ever holds the whole message, so a body of any size,
beyond protobuf's 2 GiB limit too, decodes in the memory its arrays need.

Anything laid out otherwise than a protobuf serialiser writes Flower messages (repeated
singular fields, unexpected wire types or fields) raises :class:`Unusual`; the caller
then lets protobuf decide, when it still has the bytes. The exception is a repeated
``content`` field, which fedbox writes itself (the run config,
:func:`fedbox.fl.codec.run_config_trailer`): its items are merged as protobuf merges
them, a later record replacing an earlier one of the same name.
"""

from __future__ import annotations

import io

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message.message import make_message
from flwr.common.serde import array_from_proto, config_record_from_proto, metric_record_from_proto
from flwr.common.serde_utils import error_from_proto, metadata_from_proto
from flwr.proto.error_pb2 import Error as ProtoError
from flwr.proto.message_pb2 import Metadata as ProtoMetadata
from flwr.proto.recorddict_pb2 import Array as ProtoArray
from flwr.proto.recorddict_pb2 import ConfigRecord as ProtoConfigRecord
from flwr.proto.recorddict_pb2 import MetricRecord as ProtoMetricRecord

from fedbox.fl.wire_encode import varint

__all__ = ["Unusual", "read_message"]

_LEN = 2


class Unusual(Exception):
    """Valid protobuf perhaps, but not laid out as a serialiser writes Flower messages."""


class _Reader:
    """Position-tracking reads from a buffered stream of ``size`` bytes."""

    def __init__(self, stream: io.BufferedReader, size: int) -> None:
        self._f = stream
        self.pos = 0
        self.size = size

    def varint(self) -> int:
        head = self._f.peek(10)[:10]
        value = shift = 0
        for i, byte in enumerate(head):
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self._f.read(i + 1)
                self.pos += i + 1
                return value
            shift += 7
        if len(head) >= 10:
            raise Unusual("varint longer than 10 bytes")
        return self._slow_varint()

    def _slow_varint(self) -> int:
        """Byte by byte, when the buffer holds less than a whole varint."""
        value = shift = 0
        while shift <= 63:
            byte = self._f.read(1)
            if not byte:
                raise Unusual("truncated varint")
            self.pos += 1
            value |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return value
            shift += 7
        raise Unusual("varint longer than 10 bytes")

    def field(self, end: int) -> tuple[int, int, bytes]:
        """``(number, length, tag and length bytes)`` of the next length-delimited field."""
        key = self.varint()
        if key & 7 != _LEN:
            raise Unusual("not a length-delimited field")
        length = self.varint()
        if self.pos + length > end:
            raise Unusual("field runs past its end")
        return key >> 3, length, varint(key) + varint(length)

    def take(self, n: int) -> bytes:
        data = self._f.read(n) if n else b""
        if len(data) != n:
            raise Unusual("body ends early")
        self.pos += n
        return data


def _unique(seen: set[int], number: int) -> None:
    if number in seen:  # protobuf would merge repeated singular fields; let it
        raise Unusual(f"field {number} repeated")
    seen.add(number)


def read_message(stream: io.BufferedReader, size: int) -> Message:
    """The Message in the ``size`` bytes of ``stream``, read to their end."""
    r = _Reader(stream, size)
    metadata, content, error = ProtoMetadata(), None, None
    seen: set[int] = set()
    while r.pos < size:
        number, length, _ = r.field(size)
        if number != 2:
            _unique(seen, number)
        end = r.pos + length
        if number == 1:
            metadata = ProtoMetadata.FromString(r.take(length))
        elif number == 2:
            content = _recorddict(r, end, content if content is not None else RecordDict())
        elif number == 3:
            error = error_from_proto(ProtoError.FromString(r.take(length)))
        else:
            raise Unusual("unknown Message field")
        if r.pos != end:
            raise Unusual("field length disagrees with its contents")
    return make_message(metadata=metadata_from_proto(metadata), content=content, error=error)


def _recorddict(r: _Reader, end: int, out: RecordDict) -> RecordDict:
    """The items up to ``end``, added to ``out``."""
    while r.pos < end:
        number, length, _ = r.field(end)
        if number != 1:
            raise Unusual("unknown RecordDict field")
        item_end = r.pos + length
        key, kind, seen = "", 0, set[int]()
        value: ArrayRecord | MetricRecord | ConfigRecord | None = None
        while r.pos < item_end:
            inner, inner_len, _ = r.field(item_end)
            _unique(seen, inner)
            if inner == 1:
                key = r.take(inner_len).decode("utf-8")
            elif inner == 2 and not kind:
                kind, value = inner, _array_record(r, r.pos + inner_len)
            elif inner == 3 and not kind:
                raw = r.take(inner_len)
                kind, value = inner, metric_record_from_proto(ProtoMetricRecord.FromString(raw))
            elif inner == 4 and not kind:
                raw = r.take(inner_len)
                kind, value = inner, config_record_from_proto(ProtoConfigRecord.FromString(raw))
            else:
                raise Unusual("unexpected RecordDict.Item field")
        if value is None:
            raise Unusual("RecordDict.Item without a record")
        out[key] = value
    return out


def _array_record(r: _Reader, end: int) -> ArrayRecord:
    arrays: dict[str, Array] = {}
    while r.pos < end:
        number, length, _ = r.field(end)
        if number != 1:
            raise Unusual("unknown ArrayRecord field")
        item_end = r.pos + length
        key, array, seen = "", None, set[int]()
        while r.pos < item_end:
            inner, inner_len, _ = r.field(item_end)
            _unique(seen, inner)
            if inner == 1:
                key = r.take(inner_len).decode("utf-8")
            elif inner == 2:
                array = _array(r, r.pos + inner_len)
            else:
                raise Unusual("unknown ArrayRecord.Item field")
        arrays[key] = array if array is not None else array_from_proto(ProtoArray())
    return ArrayRecord(array_dict=arrays, keep_input=False)


def _array(r: _Reader, end: int) -> Array:
    small: list[bytes] = []
    data = b""
    seen: set[int] = set()
    while r.pos < end:
        number, length, tag = r.field(end)
        _unique(seen, number)
        if number == 4:
            data = r.take(length)  # the one copy of the array data, from the file
        else:
            small.append(tag + r.take(length))
    head = ProtoArray.FromString(b"".join(small))
    return Array(dtype=head.dtype, shape=tuple(head.shape), stype=head.stype, data=data)
