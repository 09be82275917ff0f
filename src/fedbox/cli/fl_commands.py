"""``fedbox simulate``, ``fedbox bootstrap`` and ``fedbox run``: Flower over files.

Register them on the main app with :func:`register`. This module also runs on its
own (``python -m fedbox.cli.fl_commands run ...``): that is how ``simulate`` starts
its client processes, independent of how the main command is assembled. The commands
themselves live in ``simulate_cmd``, ``bootstrap_cmd`` and ``run_cmd``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from fedbox.cli.bootstrap_cmd import bootstrap
from fedbox.cli.run_cmd import run
from fedbox.cli.simulate_cmd import simulate

__all__ = ["bootstrap", "fl_app", "register", "run", "simulate"]

fl_app = typer.Typer(
    help="Flower over files.", no_args_is_help=True, pretty_exceptions_enable=False
)

COMMANDS: dict[str, Callable[..., None]] = {
    "simulate": simulate,
    "bootstrap": bootstrap,
    "run": run,
}


def register(app: typer.Typer) -> None:
    """Add ``simulate``, ``bootstrap`` and ``run`` to the main ``fedbox`` command."""
    for name, fn in COMMANDS.items():
        app.command(name)(fn)


register(fl_app)


@fl_app.callback()
def _configure(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    """Logging for this module's own entry point (the main command configures its own)."""
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True))],
    )


if __name__ == "__main__":
    fl_app()
