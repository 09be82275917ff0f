"""The parsers that read what other participants wrote, as functions of bytes.

Every byte fedbox parses may come from someone hostile: a message file (its envelope,
and the parts table inside its body), a ``syft.pub.yaml``, a Flower message body. Each
entry point here feeds bytes to one of them through its public reading path and returns
what fedbox made of them; anything it refuses must raise a :class:`~fedbox.FedboxError`
(issue 18, point 4). ``tests/properties/`` checks that over generated inputs, and
``benchmarks/parsers.py`` over a million; :func:`seeds` and :func:`mutate` give them
valid inputs to damage, so the search reaches past the first check of each parser.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message.message import make_message
from flwr.common import Metadata

from fedbox.datasite.paths import Kind, MessagePath, blob_path
from fedbox.datasite.permissions import PermissionSet, permissions_from_files
from fedbox.errors import CorruptMessage, DecryptError
from fedbox.fl.codec import decode_message, encode_message, run_config_trailer
from fedbox.rpc.envelope import header_mismatch, read_envelope, read_header
from fedbox.rpc.parts import PartKind, PartRef, decode_table, encode_table
from fedbox.rpc.payload import Payload, open_payload
from fedbox.rpc.sealing import Sealer
from fedbox.store import LocalStore
from fedbox.testing.requests import envelope_bytes, message_header

__all__ = [
    "APP",
    "ENDPOINT",
    "MESSAGE_ID",
    "PERMISSION_PATH",
    "READER",
    "WRITER",
    "MessageFolder",
    "container",
    "decode_flower",
    "decode_flower_payload",
    "mutate",
    "parse_envelope",
    "parse_permissions",
    "parse_table",
    "seeds",
]

WRITER, READER, APP, ENDPOINT = "a@x.org", "b@x.org", "props", "echo"
MESSAGE_ID = "0b7c5a36-2f0e-4d1e-9a4b-3c2d1e0f9a8b"
PERMISSION_PATH = f"datasites/{READER}/public/syft.pub.yaml"


def parse_envelope(data: bytes) -> tuple[object, bytes]:
    """``read_envelope`` over ``data`` held in memory: the header and verified body."""
    return read_envelope(io.BytesIO(data))


def parse_table(data: bytes) -> list[PartRef]:
    """The parts table at the start of ``data`` (a container's plaintext)."""
    return decode_table(io.BytesIO(data).read, len(data))


def parse_permissions(data: bytes) -> PermissionSet:
    """``data`` as the ``syft.pub.yaml`` of ``datasites/{READER}/public``, loaded
    strictly (a bad file raises) and then asked about a path, so the patterns it
    compiled run too. Loading it leniently must never raise at all."""
    permissions_from_files([(PERMISSION_PATH, data)])
    rules = permissions_from_files([(PERMISSION_PATH, data)], strict=True)
    rules.explain(WRITER, f"datasites/{READER}/public/a@x.org/data.csv", "write")
    return rules


def decode_flower(data: bytes) -> Message:
    """``decode_message`` over bytes: the fast reader, then protobuf for unusual layouts."""
    return decode_message(data)


def decode_flower_payload(data: bytes) -> Message:
    """``decode_message`` over a payload: the streaming reader only, as for a message file."""
    with Payload.of(data) as payload:
        return decode_message(payload)


class MessageFolder:
    """A store holding one request from WRITER to READER: :meth:`read` writes ``data`` as
    that request's file and reads it as READER's serving box does (the header, checked
    against the path, then the body through its parts table, blobs beside it, verified).
    Without a ``sealer`` (READER's, ``box.sealer``) an encrypted body is refused."""

    def __init__(self, root: str | Path, sealer: Sealer | None = None) -> None:
        self.store = LocalStore(root, fsync=False)
        self.sealer = sealer

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` as a plain blob of the request's direction; its name."""
        name = hashlib.sha256(data).hexdigest()
        self.store.put(str(blob_path(WRITER, READER, APP, name)), data)
        return name

    def read(self, data: bytes, msg_id: str = MESSAGE_ID) -> bytes:
        """``data`` as the file of request ``msg_id``, read: the body, or a FedboxError."""
        where = MessagePath(WRITER, READER, APP, ENDPOINT, msg_id, Kind.REQUEST)
        path = str(where.path)
        self.store.put(path, data)
        f = self.store.open(path)
        try:
            header = read_header(f, path=path)
            problem = header_mismatch(header, where)
            if problem:
                raise CorruptMessage(f"request refused: {problem}", path, header.id)
            if header.enc is not None and self.sealer is None:  # so does such a box (400)
                raise DecryptError("encrypted, and this folder reads plaintext only", path)
            payload = open_payload(
                self.store,
                f,
                header,
                writer=WRITER,
                reader=READER,
                sealer=self.sealer,
                path=path,
            )
        except BaseException:
            f.close()
            raise
        with payload:
            return payload.read()

    def close(self) -> None:
        self.store.close()


def container(parts: list[bytes | PartRef]) -> bytes:
    """A parts container: each ``bytes`` item an inline part, each PartRef as it is."""
    refs = [PartRef(PartKind.INLINE, len(p)) if isinstance(p, bytes) else p for p in parts]
    return encode_table(refs) + b"".join(p for p in parts if isinstance(p, bytes))


def _flower_message() -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord(
                {"w": Array(dtype="float32", shape=(2, 3), stype="numpy.ndarray", data=bytes(24))}
            ),
            "metrics": MetricRecord({"loss": 0.5, "n": 3, "hist": [1, 2, 3]}),
            "config": ConfigRecord(
                {"lr": 0.1, "name": "x", "flags": [True, False], "raw": b"\x00"}
            ),
        }
    )
    return make_message(metadata=_metadata("train"), content=content)


def _metadata(message_type: str) -> Metadata:
    """Built whole: ``Message(...)`` would read Flower's per-process TaskIdentity."""
    return Metadata(
        run_id=7,
        message_id="id",
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=1.0,
        ttl=60.0,
        message_type=message_type,
    )


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs of each parser (by the entry point's name), to damage."""
    header = message_header(
        WRITER, READER, APP, ENDPOINT, msg_id=MESSAGE_ID, headers={"k": "v"}, created=1.0
    )
    flower = encode_message(_flower_message())
    table = container([b"ab", b"cde"])
    blob = PartRef(PartKind.BLOB, 3, 3, hashlib.sha256(b"abc").hexdigest())
    return {
        "envelope": [
            envelope_bytes(header, b""),
            envelope_bytes(header, b"hello"),
            envelope_bytes(header, table),
        ],
        "table": [table, container([b"x", blob, b"yz"])],
        "permissions": [
            b'rules:\n  - pattern: "**"\n    access:\n      read: ["*"]\n',
            b"terminal: true\nrules:\n  - pattern: '{useremail}/*.csv'\n"
            b"    access: {write: [USER], admin: [c@x.org]}\n"
            b"  - pattern: 'a/[!b-d]?/**'\n    access: {read: []}\n",
        ],
        "flower": [
            flower,
            flower + run_config_trailer({"rounds": 3, "lr": 0.1}),
            encode_message(make_message(metadata=_metadata("query"), content=RecordDict())),
        ],
    }


_LENGTH = struct.Struct("<I")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """``data`` damaged a few times over, as a disk, a carrier or an attacker would: bytes
    flipped or replaced, cut, spliced, repeated, and 32-bit lengths lied about."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if choice == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif choice == 2:
            del out[at:]
        elif choice == 3:
            out[at:at] = rng.randbytes(rng.randrange(1, 16))
        elif choice == 4:
            end = min(len(out), at + rng.randrange(1, 64))
            out[at:at] = out[at:end] * rng.randrange(1, 8)
        elif choice == 5 and len(out) >= at + 4:
            lie = rng.choice([0, 1, 0xFFFFFFFF, 1 << 20, (1 << 20) + 1, rng.randrange(1 << 32)])
            out[at : at + 4] = _LENGTH.pack(lie)
        elif choice == 6 and out:
            del out[at : at + rng.randrange(1, 16)]
    return bytes(out)
