"""``syft_flwr.bootstrap``: prepare a Flower app for a federation (fedbox's bootstrap)."""

from __future__ import annotations

import os
from pathlib import Path

from fedbox.fl.config import bootstrap_syft_flwr

__all__ = ["bootstrap"]


def bootstrap(
    flwr_project_dir: str | os.PathLike[str],
    aggregator: str,
    datasites: list[str],
    transport: str | None = None,
) -> None:
    """Write ``[tool.syft_flwr]`` and ``main.py`` as ``fedbox bootstrap --syft-flwr`` does.
    Only the ``syftbox`` transport exists here: fedbox carries the files itself."""
    if transport not in (None, "syftbox"):
        raise ValueError(f"transport {transport!r} is not available under fedbox; use 'syftbox'")
    bootstrap_syft_flwr(Path(flwr_project_dir), aggregator, datasites)
