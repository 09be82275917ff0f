"""Options several commands share, declared once so their names and help never drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedbox.sizes import parse_size

__all__ = ["ChunkSizeOpt", "ChunkThresholdOpt", "EmailOpt", "NodeConfigOpt", "StateOpt"]

EmailOpt = Annotated[str, typer.Option("--email", help="Your identity (an email).")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Private state dir \\[default: $FEDBOX_HOME/EMAIL]."),
]


def _size(value: str) -> int:
    """A ``--chunk-*`` value: bytes, or a size with a unit (``64KiB``, ``1GB``)."""
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if size < 1:
        raise typer.BadParameter(f"{value!r} is not a positive size")
    return size


ChunkThresholdOpt = Annotated[
    int | None,
    typer.Option(
        "--chunk-threshold",
        parser=_size,
        metavar="SIZE",
        help="Bodies above this size travel as resumable chunk blobs "
        "\\[default: $FEDBOX_CHUNK_THRESHOLD or 512MiB].",
    ),
]
ChunkSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--chunk-size",
        parser=_size,
        metavar="SIZE",
        help="Bytes per chunk blob \\[default: $FEDBOX_CHUNK_SIZE or 64MiB].",
    ),
]
NodeConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--node-config",
        metavar="[SITE:]CONFIG",
        help="The ClientApp's context.node_config, as flower-supernode's: "
        "\"db='sqlite:///x.db' n=3\" or a .toml file; repeat it. A SITE: prefix "
        "(an email or a partition index) aims it at one datasite.",
    ),
]
