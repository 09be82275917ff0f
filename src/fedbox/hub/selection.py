"""Selections: which paths a client subscribes to, as gitignore-style globs.

``fedbox sync --only 'datasites/a@x.org/public/**'`` hands its globs to the change feed
(``?only=GLOB``, repeatable), so the hub never sends, and the client never pays for,
changes outside them. The same matcher decides on both sides, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pathspec

from fedbox.errors import InvalidIdentity

__all__ = ["Selection", "selection"]

Selection = Callable[[str], bool]


def selection(globs: Sequence[str]) -> Selection | None:
    """A predicate on hub paths for ``globs`` (gitignore syntax); None selects everything."""
    cleaned = [g.strip() for g in globs if g.strip()]
    if not cleaned:
        return None
    for glob in cleaned:
        if glob.startswith("!"):
            raise InvalidIdentity(f"a selection cannot exclude ({glob!r}); use .fedboxignore", glob)
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(cleaned)
    except (ValueError, TypeError) as exc:
        raise InvalidIdentity(f"bad selection glob: {exc}", ",".join(cleaned)) from exc
    return spec.match_file
