"""What the ``dataset``, ``job`` and ``serve`` commands share: ``--json`` output and
opening rds for an identity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fedbox.cli.roots import fail, refusals_reported_here, store_options
from fedbox.errors import FedboxError
from fedbox.rds import Rds
from fedbox.rds import connect as rds_connect

__all__ = ["JsonOpt", "console", "emit_json", "open_rds"]

console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


@contextmanager
def open_rds(
    root: str, email: str, state_dir: Path | None, flags: list[str] | None
) -> Iterator[Rds]:
    """rds for ``email`` on ``root`` (encrypted); bad roots exit 2 with one line."""
    options = store_options(root, flags)
    with refusals_reported_here():
        try:
            rds = rds_connect(root, email, state_dir=state_dir, storage_options=options)
        except (FedboxError, ValueError, TypeError) as exc:
            raise fail(exc) from exc
    try:
        yield rds
    finally:
        rds.close()
