"""Help texts are printed through Rich, which takes ``[word ...]`` for markup and drops
it: an unescaped ``[default: X]`` vanishes from ``--help``."""

from __future__ import annotations

import re

import click
import typer

from fedbox.cli.main import app

MARKUP = re.compile(r"(?<!\\)\[[A-Za-z#/@]")


def _commands(command: click.Command, path: str = "fedbox") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_help_text_holds_unescaped_rich_markup() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 30
    texts = [
        (f"{path} {getattr(param, 'name', '')}", getattr(param, "help", None) or "")
        for path, command in commands
        for param in command.params
    ] + [(path, command.help or "") for path, command in commands]
    swallowed = [(where, text) for where, text in texts if MARKUP.search(text)]
    assert not swallowed, swallowed
