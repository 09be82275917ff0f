"""``fedbox simulate``, ``fedbox bootstrap`` and ``fedbox run``: Flower over files.

Register them on the main app with :func:`register`. This module also runs on its
own (``python -m fedbox.cli.fl_commands run ...``): that is how ``simulate`` starts
its client processes, independent of how the main command is assembled. The commands
themselves live in ``simulate_cmd``, ``bootstrap_cmd`` and ``run_cmd``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import click
import typer

from fedbox.cli.bootstrap_cmd import bootstrap
from fedbox.cli.logsetup import VerboseOpt, configure_logging
from fedbox.cli.run_cmd import run
from fedbox.cli.simulate_cmd import simulate

__all__ = ["bootstrap", "fl_app", "fl_command", "register", "run", "simulate"]

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
def _configure(verbose: VerboseOpt = 0) -> None:
    """Logging for this module's own entry point (the main command configures its own)."""
    configure_logging(verbose)


@functools.cache
def fl_command() -> click.Command:
    """:data:`fl_app` as the Click command Typer builds from it, once per process:
    building it reads every parameter of the three commands, which took a client forked
    from ``simulate`` a good part of its way to joining; it uses its parent's."""
    return typer.main.get_command(fl_app)


if __name__ == "__main__":
    fl_command()()
