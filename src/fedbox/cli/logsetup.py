"""Logging for every ``fedbox`` entry point: one handler, Flower's lines through it once.

Flower puts its own console handler on the ``flwr`` logger and lets records propagate,
so with a root handler as well every Flower line came out twice, and hiding the
duplicate hid the strategy's round headers that ``flwr run`` shows (issue 12). Here
Flower's handler goes and its INFO lines come through ours, once, by default.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

__all__ = ["PLAIN_FORMAT", "VerboseOpt", "configure_logging"]

VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        metavar="",
        show_default=False,
        help="More logs, repeatable: -v for fedbox's info lines, -vv for debug detail.",
    ),
]
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Without a terminal (a log file, a pipe) lines are never wrapped, so a traceback in a
client's log reads as Python wrote it."""


def configure_logging(verbose: int) -> None:
    """Root level WARNING, INFO with ``-v``, DEBUG with ``-vv``; Flower at INFO or lower."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler: logging.Handler
    if sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    flwr = logging.getLogger("flwr")
    for own in list(flwr.handlers):
        flwr.removeHandler(own)
    flwr.propagate = True
    flwr.setLevel(min(level, logging.INFO))
