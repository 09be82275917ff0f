"""Options several commands share, declared once so their names and help never drift."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fedbox.sizes import parse_size

__all__ = ["ChunkSizeOpt", "ChunkThresholdOpt", "EmailOpt", "StateOpt"]

EmailOpt = Annotated[str, typer.Option("--email", help="Your identity (an email).")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Private state dir [default: $FEDBOX_HOME/EMAIL]."),
]


def _exported_size(env: str) -> Callable[[str | None], str | None]:
    """A size option stored in ``env``, where every box of this process and of the
    processes it starts (``simulate``'s clients) reads it."""

    def export(value: str | None) -> str | None:
        if value is not None:
            try:
                size = parse_size(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from exc
            if size < 1:
                raise typer.BadParameter(f"{value!r} is not a positive size")
            os.environ[env] = str(size)
        return value

    return export


ChunkThresholdOpt = Annotated[
    str | None,
    typer.Option(
        "--chunk-threshold",
        callback=_exported_size("FEDBOX_CHUNK_THRESHOLD"),
        help="Bodies above this size travel as resumable chunk blobs "
        "\\[default: $FEDBOX_CHUNK_THRESHOLD or 512MiB].",
    ),
]
ChunkSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--chunk-size",
        callback=_exported_size("FEDBOX_CHUNK_SIZE"),
        help="Bytes per chunk blob \\[default: $FEDBOX_CHUNK_SIZE or 64MiB].",
    ),
]
