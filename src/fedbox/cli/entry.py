"""What runs when you type ``fedbox``: the smallest Typer app that can run the command.

The whole command (:mod:`fedbox.cli.main`) imports every command group, remote data
science (pydantic), the bridge and the hub's client among them. ``fedbox simulate``,
``run`` and ``bootstrap`` need none of it, and importing it was a fifth of simulate's
way to its first round on a small machine (issue 20): they run on
:data:`fedbox.cli.fl_commands.fl_app` (its Click command built once,
:func:`~fedbox.cli.fl_commands.fl_command`), which registers the same three functions,
with the same options, under the same ``--verbose`` callback. Anything else, including
``fedbox --help``, runs on the whole command.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

from fedbox.cli import fl_commands
from fedbox.cli.fl_options import console
from fedbox.cli.roots import print_error
from fedbox.errors import FedboxError

__all__ = ["command_of", "main"]

_VERBOSE = re.compile(r"-v+|--verbose")
"""The top-level options that may come before the command: the logging callback's."""


def command_of(args: Sequence[str]) -> str | None:
    """The command word of ``fedbox ARGS``, or None when something other than
    ``--verbose`` comes first (``--help``, a completion option)."""
    for arg in args:
        if not _VERBOSE.fullmatch(arg):
            return arg
    return None


def main() -> None:
    command: Callable[[], object]
    if command_of(sys.argv[1:]) in fl_commands.COMMANDS:
        command = fl_commands.fl_command()
    else:
        from fedbox.cli.main import app

        command = app
    try:
        command()
    except FedboxError as exc:
        print_error(exc, console)
        raise SystemExit(2) from exc
