"""Reading and writing a project's pyproject.toml, as syft-flwr's ``config`` module does."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from flwr.common.config import validate_config

__all__ = ["load_flwr_pyproject", "load_toml", "write_toml"]


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def write_toml(path: str | os.PathLike[str], value: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        tomli_w.dump(value, f)


def load_flwr_pyproject(path: str | os.PathLike[str], check_module: bool = True) -> dict[str, Any]:
    """The project's pyproject.toml (``path`` is the file or its folder), checked as
    Flower checks an app; ValueError lists what is wrong."""
    path = Path(path)
    if path.name != "pyproject.toml":
        path = path / "pyproject.toml"
    config = load_toml(path)
    valid, errors, _warnings = validate_config(config, check_module, path.parent)
    if not valid:
        raise ValueError(f"{path}: {'; '.join(errors)}")
    return config
