"""The Rich consoles the Flower commands print through, and a second look at the terminal.

A Rich console decides when it is made whether it writes to a terminal (colours, width).
A client process forked from ``fedbox simulate`` (:mod:`fedbox.cli.client_fork`) inherits
consoles that looked at the parent's terminal while its own output goes to a log file:
:func:`look_again` makes them decide again, as a new process would.
"""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["FILE_WIDTH", "look_again", "stderr_console", "stdout_console"]

FILE_WIDTH = 140
"""Wide enough for the tables when output goes to a file or a pipe (Rich assumes 80)."""

_made: list[tuple[Console, bool]] = []


def _init(console: Console, stderr: bool) -> None:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else FILE_WIDTH
    Console.__init__(console, stderr=stderr, width=width)


def _made_here(stderr: bool) -> Console:
    console = Console.__new__(Console)
    _init(console, stderr)
    _made.append((console, stderr))
    return console


def stdout_console() -> Console:
    """A console on standard output: the terminal's width, or :data:`FILE_WIDTH`."""
    return _made_here(stderr=False)


def stderr_console() -> Console:
    """A console on standard error: the terminal's width, or :data:`FILE_WIDTH`."""
    return _made_here(stderr=True)


def look_again() -> None:
    """Every console made here decides afresh whether it writes to a terminal."""
    for console, stderr in _made:
        _init(console, stderr)
