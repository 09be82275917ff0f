"""Bytes a store takes on disk, for the tests that check what a broadcast writes."""

from __future__ import annotations

import os
from pathlib import Path


def store_usage(root: Path) -> tuple[int, int]:
    """(bytes, files) of the messages and blobs under ``root``, each inode once: hard links
    share their bytes. Writers' temporary dot-files are not counted; messages may be
    landing while it walks, and such a file may vanish under it."""
    seen: dict[tuple[int, int], int] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith("."):
                continue
            try:
                st = os.stat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values()), len(seen)
