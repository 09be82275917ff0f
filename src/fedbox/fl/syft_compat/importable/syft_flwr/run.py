"""Running a syft-flwr project's roles: each one is a ``fedbox`` command.

``syftbox_run_flwr_client``/``_server`` are what a bootstrapped project's ``main.py``
calls; here they run ``fedbox run`` for this participant (its email from
:func:`syft_flwr.client.create_client`, the store from ``$FEDBOX_ROOT`` or
``[tool.syft_flwr].root``, the data dir from ``$DATA_DIR``). ``run`` is syft-flwr's
local simulation: ``fedbox simulate`` with one mock dataset per datasite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .client import create_client

__all__ = ["run", "syftbox_run_flwr_client", "syftbox_run_flwr_server"]


def _fedbox(*args: str) -> None:
    """Run a ``fedbox`` command in this Python; RuntimeError if it fails."""
    command = [sys.executable, "-m", "fedbox", *args]
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise RuntimeError(f"`fedbox {' '.join(args)}` failed with exit status {code}")


def _run_role(flower_project_dir: str | os.PathLike[str]) -> None:
    project = Path(flower_project_dir).resolve()
    data = os.environ.get("DATA_DIR")
    email = create_client(project_dir=project).email
    _fedbox("run", str(project), "--email", email, *(["--data", data] if data else []))


def syftbox_run_flwr_client(flower_project_dir: str | os.PathLike[str]) -> None:
    """Serve the project's ClientApp as this datasite until the aggregator says stop."""
    _run_role(flower_project_dir)


def syftbox_run_flwr_server(flower_project_dir: str | os.PathLike[str]) -> None:
    """Run the project's ServerApp as the aggregator, to the end."""
    _run_role(flower_project_dir)


def run(
    project_dir: str | os.PathLike[str], mock_dataset_paths: Sequence[str | os.PathLike[str]]
) -> None:
    """Simulate the federation locally: one client per mock dataset."""
    paths = [Path(p).expanduser().resolve() for p in mock_dataset_paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"mock dataset paths do not exist: {', '.join(missing)}")
    data = [arg for p in paths for arg in ("--data", str(p))]
    _fedbox("simulate", str(Path(project_dir).resolve()), *data)
