"""Who this participant is: syft-flwr's ``create_client``, answered from fedbox's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedbox.datasite.workspace import fedbox_home

from ..config import load_flwr_pyproject

__all__ = ["EMAIL_ENV_VARS", "FedboxSyftClient", "SyftFlwrClient", "create_client"]

EMAIL_ENV_VARS = ("SYFTBOX_EMAIL", "FEDBOX_EMAIL")
"""Where a participant started by ``python main.py`` finds its own email."""


@dataclass(frozen=True, slots=True)
class FedboxSyftClient:
    """The parts of syft-flwr's client that projects read: the email and the folders.

    fedbox keeps no SyftBox folder: ``datasites`` is the store root when it is a
    folder (``$FEDBOX_ROOT`` or ``[tool.syft_flwr].root``), else the state dir's parent.
    """

    email: str
    root: Path

    @property
    def my_datasite(self) -> Path:
        return self.datasites / self.email

    @property
    def datasites(self) -> Path:
        return self.root / "datasites"

    @property
    def config_path(self) -> Path:
        return self.root / "pyproject.toml"

    def app_data(self, app_name: str | None = None, datasite: str | None = None) -> Path:
        return self.datasites / (datasite or self.email) / "app_data" / (app_name or "")

    def get_client(self) -> Any:
        return self


SyftFlwrClient = FedboxSyftClient


def create_client(
    transport: str | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    email: str | None = None,
    **kwargs: Any,
) -> FedboxSyftClient:
    """This participant: ``email``, else ``$SYFTBOX_EMAIL``, else ``$FEDBOX_EMAIL``.
    ValueError says how to name it when none is set."""
    if transport not in (None, "syftbox"):
        raise ValueError(f"transport {transport!r} is not available under fedbox; use 'syftbox'")
    own = email or next((os.environ[n] for n in EMAIL_ENV_VARS if os.environ.get(n)), None)
    if not own:
        raise ValueError(f"who are you? set {' or '.join(EMAIL_ENV_VARS)} to your email")
    root = os.environ.get("FEDBOX_ROOT")
    if not root and project_dir is not None:
        table = load_flwr_pyproject(project_dir, check_module=False)["tool"].get("syft_flwr", {})
        root = table.get("root")
    is_folder = bool(root) and "://" not in str(root)
    return FedboxSyftClient(own, Path(str(root)).expanduser() if is_folder else fedbox_home())
