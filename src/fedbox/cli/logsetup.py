"""Logging for every ``fedbox`` entry point: one handler, Flower's lines through it once.

Flower puts its own console handler on the ``flwr`` logger and lets records propagate,
so with a root handler as well every Flower line came out twice, and hiding the
duplicate hid the strategy's round headers that ``flwr run`` shows (issue 12). Here
Flower's handler goes and its INFO lines come through ours, once, by default.
Flower is imported late (only by the commands that run an app), and adds its handler
when it is: :func:`adopt_flower_logger` takes it away again then.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

__all__ = ["PLAIN_FORMAT", "VerboseOpt", "adopt_flower_logger", "configure_logging"]

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
    global _flower_level
    _flower_level = min(level, logging.INFO)
    adopt_flower_logger()


_flower_level: int | None = None
"""The ``flwr`` logger's level :func:`configure_logging` chose; None before it ran."""


def adopt_flower_logger() -> None:
    """Flower's lines through our handler only, at the level :func:`configure_logging`
    chose. Call it again once Flower is imported: its import adds its own console
    handler (every line twice) and sets its logger to DEBUG. No-op before
    :func:`configure_logging` ran (a library caller keeps its own logging)."""
    if _flower_level is None:
        return
    flwr = logging.getLogger("flwr")
    for own in list(flwr.handlers):
        flwr.removeHandler(own)
    flwr.propagate = True
    flwr.setLevel(_flower_level)
