"""``--node-config``: what a datasite tells its ClientApp, as ``flower-supernode`` does.

Flower's own syntax, parsed by Flower's own parser: ``"db='sqlite:///x.db' n=3"``
(TOML values, so strings are quoted) or the path of a ``.toml`` file. fedbox adds one
thing: a prefix naming the datasite it is for, by email or partition index
(``client-1@sim.fedbox:db='sqlite:///x.db'``, ``1:db='sqlite:///x.db'``), so one
``fedbox simulate`` can configure each of its clients. Values without a prefix go to
every datasite; a datasite's own values win over those; both win over fedbox's
defaults (``partition-id``, ``num-partitions``, ``data-path``), as Flower lets a
SuperNode's node config say anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedbox.fl.config import AppConfigError

if TYPE_CHECKING:
    from flwr.app import UserConfig

__all__ = [
    "DATA_DIR_ENV",
    "NodeConfigEntry",
    "check_targets",
    "export_data_dir",
    "node_config_for",
    "node_config_overrides",
    "parse_node_config",
]

DATA_DIR_ENV = "DATA_DIR"
"""Where Flower apps written for syft-flwr look for their data dir."""

_TARGET = re.compile(r"^(?P<target>\d+|[^\s=:'\"@]+@[^\s=:'\"@]+):(?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class NodeConfigEntry:
    """One ``--node-config`` value: for every datasite (``target`` None) or one."""

    target: str | None
    """An email, or a partition index as text."""
    values: UserConfig

    def applies_to(self, index: int, email: str) -> bool:
        return self.target is None or self.target in (email, str(index))


def parse_node_config(items: Iterable[str]) -> tuple[NodeConfigEntry, ...]:
    """Parse ``--node-config`` values; AppConfigError names the one that is wrong."""
    entries = []
    for item in items:
        match = _TARGET.match(item.strip())
        target, rest = (match["target"], match["rest"]) if match else (None, item)
        entries.append(NodeConfigEntry(target, _parse_values(item, rest.strip())))
    return tuple(entries)


def _parse_values(item: str, text: str) -> UserConfig:
    if not text:
        raise AppConfigError(f"--node-config {item!r}: no key=value in it")
    from flwr.common.config import parse_config_args  # only when there is a --node-config

    try:
        values = parse_config_args([text])
    except FileNotFoundError as exc:
        raise AppConfigError(f"--node-config {item!r}: no such file {exc.filename}") from exc
    except Exception as exc:  # ValueError, click.ClickException, TOMLDecodeError
        message = getattr(exc, "message", None) or str(exc)
        raise AppConfigError(f"--node-config {item!r}: {message}") from exc
    if not values:
        raise AppConfigError(
            f"--node-config {item!r}: no key=value in it; write strings in quotes, "
            "e.g. db='sqlite:///data.db'"
        )
    return values


def check_targets(entries: Iterable[NodeConfigEntry], datasites: Sequence[str]) -> None:
    """AppConfigError for an entry aimed at a datasite that is not in ``datasites``."""
    for entry in entries:
        if entry.target is None:
            continue
        if entry.target.isdigit():
            if int(entry.target) >= len(datasites):
                raise AppConfigError(
                    f"--node-config {entry.target}:...: there are only {len(datasites)} "
                    f"datasites (partitions 0-{len(datasites) - 1})"
                )
        elif entry.target not in datasites:
            raise AppConfigError(
                f"--node-config {entry.target}:...: not a datasite of this run "
                f"({', '.join(datasites)})"
            )


def node_config_overrides(
    entries: Iterable[NodeConfigEntry], *, index: int, email: str
) -> UserConfig:
    """The values for datasite ``email`` (partition ``index``): shared ones first, then
    its own, each later ``--node-config`` winning over an earlier one."""
    entries = list(entries)
    merged: UserConfig = {}
    for entry in [e for e in entries if e.target is None] + [e for e in entries if e.target]:
        if entry.applies_to(index, email):
            merged.update(entry.values)
    return merged


def node_config_for(
    partition_id: int, num_partitions: int, data_path: str | os.PathLike[str] | None
) -> UserConfig:
    """Flower's node_config keys, plus ``data-path`` (empty when there is no data dir)."""
    return {
        "partition-id": int(partition_id),
        "num-partitions": int(num_partitions),
        "data-path": str(Path(data_path).expanduser().resolve()) if data_path else "",
    }


def export_data_dir(data_path: str | os.PathLike[str]) -> None:
    """Tell the ClientApp's own code where its data is, as syft-flwr apps expect it:
    ``$DATA_DIR``. For a process that serves one datasite; the runner itself passes the
    path in ``node_config`` (``data-path``), never through the environment."""
    os.environ[DATA_DIR_ENV] = str(Path(data_path).expanduser().resolve())
