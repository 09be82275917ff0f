"""Human durations on the command line: ``90``, ``90s``, ``15m``, ``12h``, ``1d``."""

from __future__ import annotations

import re

import typer

__all__ = ["parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; a typer.BadParameter naming the accepted forms otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90, 90s, 15m, 12h, 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]
