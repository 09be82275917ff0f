"""Flower ``Message`` <-> bytes: Flower's own protobuf, nothing added.

A request body is exactly ``message_to_proto(msg).SerializeToString()``, so any
Flower tool can read it. :class:`BatchEncoder` produces the same bytes faster
when one ``RecordDict`` goes to many nodes (FedAvg sends the same model to all):
protobuf writes fields in number order (metadata=1, content=2, error=3), so the
serialised content can be computed once and appended to each message's
serialised metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.serde import message_from_proto, message_to_proto, recorddict_to_proto
from flwr.common.serde_utils import error_to_proto, metadata_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

__all__ = [
    "BatchEncoder",
    "MessageSummary",
    "decode_message",
    "encode_message",
    "scalar_metrics",
    "summarize",
]


def encode_message(message: Message) -> bytes:
    """Flower's protobuf bytes of ``message`` (metadata, content or error)."""
    return message_to_proto(message).SerializeToString()


def decode_message(body: bytes) -> Message:
    """The ``Message`` in ``body``; ``google.protobuf.message.DecodeError`` if it is not one."""
    return message_from_proto(ProtoMessage.FromString(body))


@dataclass
class BatchEncoder:
    """Encodes a batch of messages, serialising each distinct content object once.

    The cache is keyed by object identity and lives only as long as the encoder,
    which callers create per batch: a RecordDict mutated between batches is never
    served stale.
    """

    _content: dict[int, tuple[RecordDict, bytes]] = field(default_factory=dict)

    def encode(self, message: Message) -> bytes:
        head = ProtoMessage(metadata=metadata_to_proto(message.metadata))
        if message.has_error():
            head.error.CopyFrom(error_to_proto(message.error))
            return head.SerializeToString()
        content = message.content
        cached = self._content.get(id(content))
        if cached is None or cached[0] is not content:
            data = ProtoMessage(content=recorddict_to_proto(content)).SerializeToString()
            cached = (content, data)
            self._content[id(content)] = cached
        return head.SerializeToString() + cached[1]


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
