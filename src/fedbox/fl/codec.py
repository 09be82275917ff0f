"""Flower ``Message`` <-> bodies: Flower's own protobuf.

A body is byte for byte ``message_to_proto(msg).SerializeToString()``, so any Flower
tool can read it, but it is produced without Flower's per-level copies of the array
data: :func:`message_body` gives it as an RPC :class:`~fedbox.rpc.body.Body` whose
buffers are views of the arrays' own bytes, written to the message file as they are
(``fedbox.fl.wire_encode``). :class:`BatchEncoder` serialises a ``RecordDict`` that goes to
many nodes (FedAvg sends the same model to all) once, as a Shared piece that the RPC
layer stores once. Decoding reads a large payload as a stream and copies each
array's data once, from the file into the ``bytes`` of its ``Array``
(``fedbox.fl.wire_decode``); bodies above protobuf's 2 GiB limit, which the RPC layer
stores as chunks, decode the same way. A small one (:data:`SMALL_MESSAGE`) is read whole
and parsed by protobuf, whose C parser is faster there.

The one addition is the run config, which the aggregator appends to each instruction
as a second ``content`` field (:func:`run_config_trailer`): protobuf merges repeated
message fields, so the body stays a valid Flower ``Message``, whose content holds one
more ConfigRecord, and the run config is encrypted with the body instead of travelling
in the plaintext envelope header (issue 12). The trailer is the same for every message
of a run, so shared content stays one Shared piece. The runner takes the record out
(:func:`take_run_config`) before the ClientApp sees the message.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict, UserConfig
from flwr.common.serde import message_from_proto, recorddict_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

from fedbox.errors import FedboxError, NotAFlowerMessage
from fedbox.fl.wire_decode import read_message
from fedbox.fl.wire_encode import content_field, head_bytes, recorddict_parts
from fedbox.rpc.body import Body, Buffer, PiecesReader, Shared
from fedbox.rpc.payload import Payload

__all__ = [
    "RUN_CONFIG_RECORD",
    "BatchEncoder",
    "MessageSummary",
    "decode_message",
    "describe_body",
    "encode_message",
    "message_body",
    "records_of",
    "run_config_trailer",
    "scalar_metrics",
    "summarize",
    "take_run_config",
]

_Record = TypeVar("_Record", ArrayRecord, ConfigRecord, MetricRecord)

SMALL_MESSAGE = 128 << 10
"""Bodies up to this many bytes are parsed by protobuf in one piece. Its C parser beats
the streaming reader up to about this size (a 40 KB model: 46 against 120 µs; twenty
small arrays: 0.4 against 1.1 ms), which pays off with large arrays (4 MB: 0.4 against
4.9 ms). Measured in issue 20 with 1,000 virtual clients."""

RUN_CONFIG_RECORD = "fedbox.run-config"
"""Name of the ConfigRecord that carries the run config inside an instruction's body."""


def run_config_trailer(run_config: UserConfig) -> bytes:
    """A second ``content`` field holding ``run_config``, to append to a Message's bytes."""
    record = RecordDict({RUN_CONFIG_RECORD: ConfigRecord(dict(run_config))})
    data = recorddict_to_proto(record).SerializeToString()
    return content_field(len(data)) + data


def records_of(content: RecordDict, kind: type[_Record]) -> Iterator[tuple[str, _Record]]:
    """``content``'s records of one kind, by name. Flower's views (``config_records``
    and its kin) build a new checked dictionary at each call; at 1,000 virtual clients
    a twentieth of the aggregator's time went on those read for progress (issue 20)."""
    for name, record in content.items():
        if isinstance(record, kind):
            yield name, record


def take_run_config(message: Message) -> UserConfig | None:
    """Remove the run config record from ``message``; its scalars, or None if it had none."""
    if not message.has_content():
        return None
    record = message.content.get(RUN_CONFIG_RECORD)
    if not isinstance(record, ConfigRecord):
        return None
    del message.content[RUN_CONFIG_RECORD]
    return {str(k): v for k, v in record.items() if isinstance(v, bool | int | float | str)}


def encode_message(message: Message) -> bytes:
    """Flower's protobuf bytes of ``message`` (metadata, content or error)."""
    return bytes(message_body(message))


def message_body(message: Message) -> Body:
    """Flower's protobuf of ``message`` as buffers: array data as views, never joined."""
    return BatchEncoder().body(message)


def decode_message(body: Buffer | Body | Payload) -> Message:
    """The ``Message`` in ``body``; NotAFlowerMessage (a ``DecodeError``) if it is not one.

    A large body's array data is copied once (Flower's own path copies it twice). A
    :class:`Payload` is read to its end, which verifies it (CorruptMessage or
    DecryptError if it is damaged). For bytes, anything the fast reader does not expect
    goes through protobuf, which is the authority; a large payload laid out unusually is
    refused.
    """
    if isinstance(body, Payload):
        if body.size > SMALL_MESSAGE:
            return _decode_payload(body)
        body = body.read()
    data = bytes(body) if isinstance(body, Body) else body
    if memoryview(data).nbytes <= SMALL_MESSAGE:
        return _decode_with_protobuf(bytes(data))
    try:
        with Payload.of(memoryview(data)) as payload:
            return _decode_payload(payload)
    except Exception:  # unusual but maybe valid encoding, or invalid: protobuf decides
        return _decode_with_protobuf(bytes(data))


def _decode_with_protobuf(data: bytes) -> Message:
    """Protobuf's verdict; Flower's conversion of what it parsed may refuse it too."""
    try:
        return message_from_proto(ProtoMessage.FromString(data))
    except Exception as exc:  # DecodeError, and what Flower raises (see _decode_payload)
        raise NotAFlowerMessage(f"not a Flower message: {exc}") from exc


def _decode_payload(payload: Payload) -> Message:
    stream = payload.stream()
    try:
        message = read_message(stream, payload.size)
    except FedboxError:  # the payload itself is damaged (CorruptMessage, DecryptError)
        raise
    except Exception as exc:
        # Besides Unusual layouts and protobuf's DecodeError, Flower's converters raise
        # whatever they meet in values they do not expect: AttributeError for a record
        # value of no type, MessageInitializationError for neither content nor error.
        raise NotAFlowerMessage(f"not a Flower message: {exc}") from exc
    if not payload.verified:
        raise NotAFlowerMessage("not a Flower message: bytes after the message")
    return message


class BatchEncoder:
    """Encodes a batch of messages, serialising each distinct content object once.

    The cache is keyed by object identity and lives only as long as the encoder,
    which callers create per batch: a RecordDict mutated between batches is never
    served stale. Content marked ``shared`` becomes one :class:`Shared` piece, which
    the RPC layer stores once for all the messages of its batch. ``trailer`` (bytes of
    whole protobuf fields, e.g. :func:`run_config_trailer`) ends every body with content,
    after the shared piece, so sharing is unaffected.
    """

    def __init__(self, trailer: bytes = b"") -> None:
        self._content: dict[int, tuple[RecordDict, list[Buffer], int, Shared | None]] = {}
        self._trailer = trailer

    def body(self, message: Message, *, shared: bool = False) -> Body:
        head = head_bytes(message)
        if not message.has_content():
            return Body([head])
        content = message.content
        cached = self._content.get(id(content))
        if cached is None or cached[0] is not content:
            parts, size = recorddict_parts(content)
            cached = (content, [content_field(size), *parts], size, None)
            self._content[id(content)] = cached
        if not shared:
            return Body([head, *cached[1], self._trailer])
        piece = cached[3]
        if piece is None:
            piece = Shared(cached[1])
            self._content[id(content)] = (*cached[:3], piece)
        return Body([head, piece, self._trailer])

    def parts(self, message: Message) -> list[memoryview]:
        return list(self.body(message).buffers())

    def encode(self, message: Message) -> bytes:
        return bytes(self.body(message))

    def reader(self, message: Message) -> io.RawIOBase:
        return PiecesReader(self.body(message).buffers())


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


def describe_body(body: Buffer | Payload) -> list[tuple[str, str]] | None:
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


LEGACY_METRICS_SUFFIX = ".metrics"
"""Apps on Flower's legacy API (``NumPyClient``) reply with their metrics in a
ConfigRecord named ``fitres.metrics`` or ``evaluateres.metrics``."""


def scalar_metrics(message: Message) -> dict[str, float]:
    """Every scalar in the message's MetricRecords and legacy-API metrics ConfigRecords,
    for progress displays (issue 12)."""
    out: dict[str, float] = {}
    if not message.has_content():
        return out
    content = message.content
    items: list[tuple[str, object]] = [
        pair for _, record in records_of(content, MetricRecord) for pair in record.items()
    ]
    for name, config in records_of(content, ConfigRecord):
        if name.endswith(LEGACY_METRICS_SUFFIX):
            items.extend(config.items())
    for key, value in items:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out
