"""Taking a model out of a run's record: the global arrays of a round, as a file.

The record keeps every distinct content the ServerApp pushed, beside it
(:data:`fedbox.fl.record.Content`).
The global arrays of round N are the arrays in the last content with arrays pushed in
round N: with FedAvg (and most strategies) that is the evaluate message, which carries
the model aggregated in round N; a round without an evaluate phase gives the arrays its
train messages carried, the model the round started from. Works on finished, running
and crashed runs alike.

Two formats, by the file's suffix: ``.safetensors`` (written here, to the published
format: no torch or ``safetensors`` package needed to write it, any reader loads it)
and ``.npz`` (NumPy). Arrays are named ``{record}.{array}``, e.g. ``arrays.0``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
from flwr.app import ArrayRecord
from flwr.common.serde import recorddict_from_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from fedbox.errors import FedboxError
from fedbox.fl.codec import records_of
from fedbox.fl.record import RunNotFound, connect_reader, read_content, record_path, runs_dir

__all__ = ["FORMATS", "ExportError", "round_arrays", "write_arrays"]

FORMATS = (".safetensors", ".npz")


class ExportError(FedboxError):
    """The round has no arrays in the record, or the file cannot be written as asked."""


_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
}


def round_arrays(state_dir: Path, name: str, round: str) -> dict[str, np.ndarray]:
    """The global arrays of ``round`` in run ``name`` (see the module docstring)."""
    path = record_path(state_dir, name)
    if not path.exists():
        raise RunNotFound(f"no run named {name} in {runs_dir(state_dir)}")
    conn = connect_reader(path)
    try:
        rows = conn.execute(
            "SELECT content, MAX(pushed) AS last FROM messages"
            " WHERE round=? AND content IS NOT NULL GROUP BY content ORDER BY last DESC",
            (round,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ExportError(f"the record of run {name} is unreadable: {exc}") from exc
    finally:
        conn.close()
    for digest, _ in rows:
        data = read_content(path, digest)
        if data is None:
            continue  # lost in a power cut (contents are not fsync'd)
        content = recorddict_from_proto(ProtoRecordDict.FromString(data))
        arrays = {
            f"{key}.{array_name}": array.numpy()
            for key, record in records_of(content, ArrayRecord)
            for array_name, array in record.items()
        }
        if arrays:
            return arrays
    raise ExportError(f"run {name} recorded no arrays sent in round {round}")


def write_arrays(arrays: dict[str, np.ndarray], out: Path, metadata: dict[str, str]) -> None:
    """Write ``arrays`` to ``out`` in the format its suffix names; atomically."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"{out}: the file name must end with {' or '.join(FORMATS)}")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if suffix == ".npz":
                np.savez(f, **cast(dict[str, Any], arrays))  # names, not options
            else:
                _write_safetensors(f, arrays, metadata)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _write_safetensors(
    f: BinaryIO, arrays: dict[str, np.ndarray], metadata: dict[str, str]
) -> None:
    """The safetensors layout: u64 little-endian header size, JSON header (padded with
    spaces to 8 bytes), then each tensor's little-endian C-order bytes."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    blobs: list[bytes] = []
    offset = 0
    for name, array in arrays.items():
        dtype = _SAFETENSORS_DTYPES.get(array.dtype.name)
        if dtype is None:
            raise ExportError(f"array {name} has dtype {array.dtype}, which safetensors lacks")
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    f.write(len(text).to_bytes(8, "little"))
    f.write(text)
    for blob in blobs:
        f.write(blob)
