"""SyftBox glob semantics: ``*`` within a segment, ``**`` across segments, placeholders.

Patterns come from permission files that anyone with admin on a folder writes, and are
matched against paths anyone may ask about, so matching must not backtrack: a regex
engine takes exponential time on ``*a*a*a*a*a*a*a*a*b`` (issue 11, point 14). Here a
compiled pattern is a list of segment patterns and ``**``; both levels are matched with
the greedy wildcard algorithm that remembers only the last star, so a match costs at
most (path length x pattern length) steps, whatever the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PLACEHOLDER", "Glob", "compile_pattern", "validate_pattern"]

PLACEHOLDER = "{useremail}"
"""Stands for the requesting user's email in a pattern; matched literally, never as a glob."""

_SYFTBOX_PLACEHOLDER = "{{.UserEmail}}"


@dataclass(frozen=True, slots=True)
class _Class:
    """``[...]``: one character from a set of characters and ranges (``[!...]`` negated)."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negate: bool

    def __call__(self, c: str) -> bool:
        inside = c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
        return inside is not self.negate


class _Star:
    """``*``: any run of characters within one segment."""


class _One:
    """``?``: any one character."""


class _User:
    """The ``{useremail}`` placeholder: the requesting user's email, literally."""


class _GlobStar:
    """A ``**`` segment: zero or more whole segments."""


STAR, ONE, USER, GLOBSTAR = _Star(), _One(), _User(), _GlobStar()

_Token = str | _Class | _Star | _One | _User
"""One element of a segment pattern; a str is a literal character."""
_Segment = tuple[_Token, ...]


def _class_end(segment: str, start: int) -> int:
    """Index just past the ``]`` closing the class opened at ``start``, or -1."""
    i = start + 1
    if i < len(segment) and segment[i] == "!":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1
    end = segment.find("]", i)
    return -1 if end == -1 else end + 1


def _parse_class(body: str) -> _Class:
    """The set written between ``[`` and ``]``; ``a-z`` is a range, a ``-`` first or
    last is literal. A range written backwards (``z-a``) is refused: it matches nothing."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if lo > hi:
                raise ValueError(f"character range {lo}-{hi} is backwards; write {hi}-{lo}")
            ranges.append((lo, hi))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return _Class(frozenset(chars), tuple(ranges), negate)


def _parse_segment(segment: str) -> tuple[_Segment, int, int, bool]:
    """Tokens of one segment, plus (literal chars, literal prefix, has wildcard)."""
    tokens: list[_Token] = []
    literal = 0
    prefix = 0
    wild = False
    i = 0
    while i < len(segment):
        if segment.startswith(PLACEHOLDER, i):
            tokens.append(USER)
            step = len(PLACEHOLDER)
            literal += step
            prefix += 0 if wild else step
            i += step
            continue
        c = segment[i]
        if c == "*":
            if not tokens or tokens[-1] is not STAR:  # "**" inside a segment is one "*"
                tokens.append(STAR)
            wild = True
            i += 1
        elif c == "?":
            tokens.append(ONE)
            wild = True
            i += 1
        elif c == "[" and (end := _class_end(segment, i)) != -1:
            tokens.append(_parse_class(segment[i + 1 : end - 1]))
            wild = True
            i = end
        else:
            tokens.append(c)
            literal += 1
            prefix += 0 if wild else 1
            i += 1
    return tuple(tokens), literal, prefix, wild


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled pattern: segment patterns and ``**`` markers, and its specificity."""

    segments: tuple[_Segment | _GlobStar, ...]
    specificity: tuple[int, int, int]
    """(kind, literal prefix length, literal characters), larger = more specific; see
    :mod:`fedbox.datasite.permissions` for why this order."""

    def matches(self, path: str, user: str) -> bool:
        """Does the pattern, with ``{useremail}`` set to ``user``, match ``path`` (a
        validated relative path: no empty segments)?"""
        return _wildcard_match(
            self.segments,
            path.split("/"),
            GLOBSTAR,
            lambda seg, name: _wildcard_match(_expand(seg, user), name, STAR, _char_matches),
        )


def _expand(segment: _Segment, user: str) -> list[_Token]:
    if USER not in segment:
        return list(segment)
    out: list[_Token] = []
    for token in segment:
        out.extend(user if token is USER else (token,))
    return out


def _char_matches(token: _Token, c: str) -> bool:
    if isinstance(token, str):
        return token == c
    if token is ONE:
        return True
    return isinstance(token, _Class) and token(c)


def _wildcard_match(
    pattern: Sequence[Any], items: Sequence[Any], star: object, one: Callable[[Any, Any], bool]
) -> bool:
    """Does ``pattern`` match all of ``items``? ``star`` matches any run of items, every
    other element exactly one item, as ``one(element, item)`` says.

    The classic greedy algorithm: on a mismatch, let the last star seen swallow one more
    item and retry from there. Earlier stars never need revisiting (whatever they could
    swallow, the last one can too), so the cost is at most len(pattern) x len(items).
    """
    p = i = 0
    star_p, star_i = -1, 0
    while i < len(items):
        if p < len(pattern) and pattern[p] is star:
            star_p, star_i = p, i
            p += 1
        elif p < len(pattern) and one(pattern[p], items[i]):
            p += 1
            i += 1
        elif star_p >= 0:
            star_i += 1
            p, i = star_p + 1, star_i
        else:
            return False
    while p < len(pattern) and pattern[p] is star:
        p += 1
    return p == len(pattern)


def compile_pattern(pattern: str) -> Glob:
    """Compile a normalised glob (see :func:`validate_pattern`); ValueError if a character
    class is malformed."""
    segments: list[_Segment | _GlobStar] = []
    literal = 0
    prefix = 0
    wild = False
    globstar = False
    parts = pattern.split("/")
    for i, seg in enumerate(parts):
        if seg == "**":
            globstar = wild = True
            if not segments or segments[-1] is not GLOBSTAR:  # "**/**" means "**"
                segments.append(GLOBSTAR)
            continue
        tokens, seg_literal, seg_prefix, seg_wild = _parse_segment(seg)
        segments.append(tokens)
        literal += seg_literal
        prefix += 0 if wild else seg_prefix
        wild = wild or seg_wild
        if i < len(parts) - 1:  # the "/" after a segment counts as literal text
            literal += 1
            prefix += 0 if wild else 1
    kind = 0 if globstar else (1 if wild else 2)
    return Glob(tuple(segments), (kind, prefix, literal))


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
