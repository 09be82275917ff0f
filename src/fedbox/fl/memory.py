"""Keep freed model-sized buffers in the process for the next round.

Every round, a client and the aggregator allocate and free buffers the size of the
model: received array data, Flower's numpy conversions, FedAvg's sums. glibc serves
each allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free, so every
round the kernel zeroes and faults in those pages again. On the 2-core VM the
benchmarks run on, that page-fault work is most of a 40 MB round (``clear_page`` alone
was a quarter of all CPU time). Raising the mmap and trim thresholds makes glibc keep
freed memory on its heap and hand it out again: the next round reuses warm pages.

The cost is that memory freed after a peak is kept rather than returned to the
system, which suits a process whose every round reaches the same peak. fedbox applies
this to the processes it runs itself (``fedbox run`` and ``fedbox simulate``); set
``FEDBOX_MALLOC=system`` to leave the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["ENV", "keep_freed_memory"]

logger = logging.getLogger(__name__)

ENV = "FEDBOX_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_KEEP = 256 << 20
"""Buffers up to 1 GiB are recycled; larger ones still come straight from the kernel,
so a multi-gigabyte model is not pinned on the heap when its round is over."""


def keep_freed_memory() -> bool:
    """Ask glibc to recycle freed buffers up to 1 GiB; False where that is not possible
    (another C library or platform) or not wanted (``FEDBOX_MALLOC=system``)."""
    if os.environ.get(ENV, "").strip().lower() == "system" or not sys.platform.startswith(
        "linux"
    ):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_ARENA_MAX, 1),
            (_M_MMAP_THRESHOLD, _KEEP),
            (_M_TRIM_THRESHOLD, _KEEP),
        )
    )
    if not done:
        logger.debug("mallopt refused the thresholds; the allocator is unchanged")
    return done
