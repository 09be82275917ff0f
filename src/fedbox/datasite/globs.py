"""SyftBox glob semantics: ``*`` within a segment, ``**`` across segments, placeholders."""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDER", "Pieces", "compile_pattern", "validate_pattern"]

PLACEHOLDER = "{useremail}"
"""Stands for the requesting user's email in a pattern; matched literally, never as a glob."""

_SYFTBOX_PLACEHOLDER = "{{.UserEmail}}"

# A compiled pattern is a tuple of regex pieces; None stands for the user's email, which is
# escaped and spliced in at match time so that an email can never act as a glob.
Pieces = tuple[str | None, ...]


def _class_end(segment: str, start: int) -> int:
    """Index just past the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(segment) and segment[i] == "!":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1
    end = segment.find("]", i)
    return -1 if end == -1 else end + 1


def _translate_segment(segment: str) -> tuple[list[str | None], int, int, bool]:
    """Regex pieces for one segment, plus (literal chars, literal prefix, has wildcard)."""
    pieces: list[str | None] = []
    literal = 0
    prefix = 0
    wild = False
    i = 0
    while i < len(segment):
        if segment.startswith(PLACEHOLDER, i):
            pieces.append(None)
            step = len(PLACEHOLDER)
            literal += step
            prefix += 0 if wild else step
            i += step
            continue
        c = segment[i]
        if c == "*":
            pieces.append("[^/]*")
            wild = True
            i += 1
        elif c == "?":
            pieces.append("[^/]")
            wild = True
            i += 1
        elif c == "[" and (end := _class_end(segment, i)) != -1:
            body = segment[i + 1 : end - 1]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            pieces.append(f"(?!/)[{'^' if negate else ''}{body}]")
            wild = True
            i = end
        else:
            pieces.append(re.escape(c))
            literal += 1
            prefix += 0 if wild else 1
            i += 1
    return pieces, literal, prefix, wild


def compile_pattern(pattern: str) -> tuple[Pieces, tuple[int, int, int]]:
    """Translate a normalised glob into regex pieces and its specificity key.

    The key is (kind, literal prefix length, literal characters), larger = more specific;
    see :mod:`fedbox.datasite.permissions` for why this order.
    """
    segments = pattern.split("/")
    collapsed: list[str] = []
    for seg in segments:  # "**/**" means the same as "**"
        if not (seg == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(seg)
    pieces: list[str | None] = []
    literal = 0
    prefix = 0
    wild = False
    globstar = False
    last = len(collapsed) - 1
    for i, seg in enumerate(collapsed):
        if seg == "**":
            globstar = True
            wild = True
            if i < last:
                pieces.append("(?:.*/)?")
            elif pieces:
                pieces.pop()  # the "/" after the previous segment becomes optional
                pieces.append("(?:/.*)?")
            else:
                pieces.append(".*")
            continue
        seg_pieces, seg_literal, seg_prefix, seg_wild = _translate_segment(seg)
        pieces.extend(seg_pieces)
        literal += seg_literal
        prefix += 0 if wild else seg_prefix
        wild = wild or seg_wild
        if i < last:
            pieces.append("/")
            literal += 1
            prefix += 0 if wild else 1
    kind = 0 if globstar else (1 if wild else 2)
    return tuple(pieces), (kind, prefix, literal)


def validate_pattern(pattern: object) -> str:
    """Return the pattern with SyftBox's placeholder spelling normalised, or raise ValueError."""
    if not isinstance(pattern, str):
        raise ValueError(f"pattern must be a string, got {type(pattern).__name__}")
    if not pattern:
        raise ValueError("pattern is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in pattern):
        raise ValueError(f"pattern {pattern!r} contains a control character")
    if "\\" in pattern:
        raise ValueError(f"pattern {pattern!r} contains a backslash; use '/'")
    if pattern.startswith("/"):
        raise ValueError(f"pattern {pattern!r} is absolute; write it relative to this folder")
    normal = pattern.replace(_SYFTBOX_PLACEHOLDER, PLACEHOLDER)
    if "{{" in normal:
        raise ValueError(
            f"pattern {pattern!r} uses a template other than {PLACEHOLDER} "
            f"(or {_SYFTBOX_PLACEHOLDER}); no other is supported"
        )
    if any(seg in ("", ".", "..") for seg in normal.split("/")):
        raise ValueError(f"pattern {pattern!r} has an empty, '.' or '..' segment")
    return normal
