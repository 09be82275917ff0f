"""Options several commands share, declared once so their names and help never drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["EmailOpt", "StateOpt"]

EmailOpt = Annotated[str, typer.Option("--email", help="Your identity (an email).")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Private state dir [default: $FEDBOX_HOME/EMAIL]."),
]
