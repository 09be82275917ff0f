"""Where a local file goes when the hub does not take it: ``NAME.conflict.EXT`` (someone
else wrote first) or ``NAME.rejected.EXT`` (the rules forbid the write). Never over an
existing file: a second copy is ``NAME.conflict-2.EXT``, and so on."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

__all__ = ["keep_aside"]


def _candidate(rel: str, kind: str, n: int) -> str:
    path = PurePosixPath(rel)
    tag = kind if n == 1 else f"{kind}-{n}"
    name = f"{path.stem}.{tag}{path.suffix}" if path.suffix else f"{path.name}.{tag}"
    return str(path.with_name(name))


def keep_aside(root: Path, rel: str, kind: str) -> str:
    """Rename ``rel`` to its first free ``kind`` copy name; the copy's relative path."""
    n = 1
    while True:
        target = _candidate(rel, kind, n)
        try:
            os.link(root / rel, root / target)  # fails if taken: no copy is ever replaced
        except FileExistsError:
            n += 1
            continue
        os.unlink(root / rel)
        return target
