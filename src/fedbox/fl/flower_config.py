"""Flower's reading of an app's ``pyproject.toml`` and of ``--run-config``, without
importing Flower when the input is plain.

Importing ``flwr`` takes about half a second, and ``fedbox simulate`` reads the app's
config before it can start its client processes (issue 20): that half second was on
the path to the first round. Most apps are plain (the required keys, a run config of
strings, numbers and booleans, ``key=value`` overrides), and for those this module
gives exactly what Flower's helpers give. Anything else (a missing key, a ``.toml``
overrides file, fab include/exclude patterns, a value Flower refuses, a key the app
does not have) goes to Flower's own helpers, so the result or the error is Flower's.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr.app import UserConfig

__all__ = ["fuse_run_config", "project_config"]

_VALUE_TYPES = (bool, int, float, str)
"""Flower's ``UserConfigValue``."""
_COMPONENTS = ("serverapp", "clientapp")
_OVERRIDE = re.compile(r"(\S+?)=(\'[^\']*\'|\"[^\"]*\"|\S+)")
"""Flower's pattern for one ``key=value`` of ``--run-config``."""


class _NotPlain(Exception):
    """The input needs Flower's helpers (for its result or for its error message)."""


def project_config(app_dir: Path) -> tuple[dict[str, Any], UserConfig]:
    """``app_dir/pyproject.toml`` as Flower's ``get_project_config`` reads it, and its
    flattened ``[tool.flwr.app.config]``; raises what Flower's helpers raise."""
    try:
        return _plain_project(app_dir)
    except _NotPlain:
        pass
    from flwr.common.config import flatten_dict, get_project_config

    raw = get_project_config(app_dir)
    return raw, flatten_dict(raw["tool"]["flwr"]["app"].get("config", {}))


def fuse_run_config(defaults: UserConfig, items: list[str]) -> UserConfig:
    """``defaults`` with the ``--run-config`` ``items`` over them, as Flower's
    ``fuse_dicts(defaults, parse_config_args(items))``; raises what those raise."""
    try:
        return _plain_fuse(defaults, items)
    except _NotPlain:
        pass
    from flwr.common.config import fuse_dicts, parse_config_args

    return fuse_dicts(dict(defaults), parse_config_args(items))


def _plain_project(app_dir: Path) -> tuple[dict[str, Any], UserConfig]:
    path = app_dir / "pyproject.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _NotPlain from exc
    project = raw.get("project")
    app = raw.get("tool", {}).get("flwr", {}).get("app")
    if not isinstance(project, dict) or not isinstance(app, dict):
        raise _NotPlain
    components = app.get("components")
    if (
        "name" not in project
        or "version" not in project
        or "publisher" not in app
        or "fab-include" in app
        or "fab-exclude" in app
        or not isinstance(components, dict)
        or not all(name in components for name in _COMPONENTS)
    ):
        raise _NotPlain
    return raw, _flatten(app.get("config", {}))


def _flatten(table: Any, prefix: str = "") -> UserConfig:
    if not isinstance(table, dict):
        raise _NotPlain
    flat: UserConfig = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        elif isinstance(value, _VALUE_TYPES):
            flat[name] = value
        else:
            raise _NotPlain
    return flat


def _plain_fuse(defaults: UserConfig, items: list[str]) -> UserConfig:
    parsed: dict[str, Any] = {}
    for item in items:
        if item.endswith(".toml"):
            raise _NotPlain
        toml = "\n".join(f"{k} = {v}" for k, v in _OVERRIDE.findall(item))
        try:
            parsed.update(tomllib.loads(toml))
        except tomllib.TOMLDecodeError as exc:
            raise _NotPlain from exc
    overrides = _flatten(parsed)
    if not set(overrides) <= set(defaults):
        raise _NotPlain
    return {**defaults, **overrides}
