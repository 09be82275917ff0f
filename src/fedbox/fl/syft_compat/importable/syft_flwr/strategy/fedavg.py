"""FedAvg that keeps the global model of every round on disk, as syft-flwr's does."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import Parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAvg

__all__ = ["FedAvgWithModelSaving", "save_safetensors"]

logger = logging.getLogger(__name__)

_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def save_safetensors(path: Path, arrays: Sequence[np.ndarray]) -> None:
    """Write ``arrays`` as ``layer_{i}`` in the safetensors format (an 8-byte header
    length, a JSON header of dtypes, shapes and offsets, then the raw little-endian
    data), so the files load with ``safetensors`` as syft-flwr's do, without needing it."""
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for i, array in enumerate(arrays):
        data = np.ascontiguousarray(array)
        dtype = _DTYPES.get(data.dtype.name)
        if dtype is None:
            raise TypeError(f"layer_{i}: safetensors has no dtype for {data.dtype}")
        raw = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
        header[f"layer_{i}"] = {
            "dtype": dtype,
            "shape": list(data.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # data starts 8-byte aligned
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for raw in blobs:
            f.write(raw)
    tmp.replace(path)


class FedAvgWithModelSaving(FedAvg):
    """Flower's FedAvg, plus ``{save_path}/parameters_round_{n}.safetensors`` each time
    the global model is evaluated (round 0 is the initial model)."""

    def __init__(self, save_path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        self.save_path = Path(save_path)
        self.save_path.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)

    def _save_global_model(self, server_round: int, parameters: Parameters) -> None:
        if not self.save_path.is_dir():
            logger.error("cannot save round %d: %s is gone", server_round, self.save_path)
            return
        path = self.save_path / f"parameters_round_{server_round}.safetensors"
        save_safetensors(path, parameters_to_ndarrays(parameters))
        logger.info("checkpoint saved to %s", path)

    def evaluate(self, server_round: int, parameters: Parameters) -> Any:
        self._save_global_model(server_round, parameters)
        return super().evaluate(server_round, parameters)
