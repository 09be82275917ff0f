"""Where a syft-flwr ClientApp finds its data, and whether it runs in a federation."""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

__all__ = ["get_syftbox_dataset_path", "is_valid_datasite", "run_syft_flwr", "str_to_int"]

_EMAIL = re.compile(r"^[^@]+@[^@]+\.[^@]+$")


def get_syftbox_dataset_path() -> Path:
    """The datasite's data dir: ``$DATA_DIR`` (``fedbox run --data`` sets it), else
    ``.data/``; FileNotFoundError if it does not exist, as in syft-flwr."""
    data_dir = Path(os.getenv("DATA_DIR", ".data/"))
    if not data_dir.exists():
        raise FileNotFoundError(
            f"Path {data_dir} does not exist (must be a valid file or directory)"
        )
    return data_dir


def run_syft_flwr() -> bool:
    """True when the ClientApp has a data dir to read (a federation's datasite), False
    when it should load its own data as in Flower's simulation."""
    try:
        get_syftbox_dataset_path()
    except FileNotFoundError:
        return False
    return True


def is_valid_datasite(datasite: str) -> bool:
    return _EMAIL.match(datasite) is not None


def str_to_int(text: str) -> int:
    """The CRC-32 of ``text``: syft-flwr's node ids (fedbox derives its own elsewhere)."""
    return zlib.crc32(text.encode())
