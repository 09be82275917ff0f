"""Writing Flower's protobuf wire format by hand, so array data is never copied.

``recorddict_to_proto`` builds nested protobuf objects, and each level copies the array
bytes again (about 0.4 s for a 40 MB model). Protobuf's encoding is simple: a field is a
varint tag, then for bytes and sub-messages a varint length and the payload; a
serialiser writes fields in field-number order and leaves out proto3 defaults. So small
fields are serialised by protobuf itself, and each array's data is a ``memoryview`` of
the Flower ``Array``'s own bytes, written to the message file as it is. The result is
byte for byte ``message_to_proto(msg).SerializeToString()``
(tests/fl/test_fl_large_codec.py checks it across record types).
"""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.common.serde import recorddict_to_proto
from flwr.common.serde_utils import error_to_proto, metadata_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.proto.recorddict_pb2 import Array as ProtoArray
from flwr.proto.recorddict_pb2 import ArrayRecord as ProtoArrayRecord
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from fedbox.rpc.body import Buffer

__all__ = ["content_field", "head_bytes", "recorddict_parts", "varint"]

_LEN = 2  # wire type of length-delimited fields
_CONTENT = 2  # Message.content


def varint(value: int) -> bytes:
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
    head = varint(number << 3 | _LEN) + varint(size)
    return [head, *parts], len(head) + size


def head_bytes(message: Message) -> bytes:
    """The fields of ``message`` before its content: metadata, and the error if any."""
    head = ProtoMessage(metadata=metadata_to_proto(message.metadata))
    if message.has_error():
        head.error.CopyFrom(error_to_proto(message.error))
    return head.SerializeToString()


def content_field(size: int) -> bytes:
    """The tag and length that precede a RecordDict of ``size`` bytes in a Message."""
    return varint(_CONTENT << 3 | _LEN) + varint(size)


def _array_parts(array: Array) -> tuple[list[Buffer], int]:
    small = ProtoArray(
        dtype=array.dtype, shape=list(array.shape), stype=array.stype
    ).SerializeToString()
    data = array.data
    if not len(data):
        return [small], len(small)
    parts, size = _field(4, [memoryview(data)], len(data))
    return [small, *parts], len(small) + size


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


def recorddict_parts(content: RecordDict) -> tuple[list[Buffer], int]:
    """The serialised RecordDict as buffers (array data as views) and its size."""
    out: list[Buffer] = []
    for key, record in content.items():
        if isinstance(record, ArrayRecord):
            key_bytes = ProtoRecordDict.Item(key=key).SerializeToString()
            value, value_size = _field(2, *_array_record_parts(record))
            item, _ = _field(1, [key_bytes, *value], len(key_bytes) + value_size)
            out += item
        else:  # metric and config records are small: let protobuf do it
            out.append(recorddict_to_proto(RecordDict({key: record})).SerializeToString())
    return out, sum(len(p) for p in out)
