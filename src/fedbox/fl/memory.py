"""Keep freed model-sized buffers in the process for the next round.

Every round, a client and the aggregator allocate and free buffers the size of the
model: received array data, Flower's numpy conversions, FedAvg's sums. glibc serves
each allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free, so every
round the kernel zeroes and faults in those pages again. On the 2-core VM the
benchmarks run on, that page-fault work is most of a 40 MB round (``clear_page`` alone
was a quarter of all CPU time). Raising the mmap and trim thresholds makes glibc keep
freed memory on its heap and hand it out again: the next round reuses warm pages. One
arena for all threads, because a thread's own arena unmaps a heap as soon as it is
empty, whatever the thresholds say; the handler threads are few, so they do not
contend for it.

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
"""Buffers up to 256 MiB are recycled. Larger ones still come straight from the kernel:
measured with a 400 MB model, recycling them fragmented the heap (peak RSS 3.3 GB to
4.1 GB) and made rounds slower, not faster."""


def keep_freed_memory() -> bool:
    """Ask glibc to recycle freed buffers up to 256 MiB; False where that is not possible
    (another C library or platform) or not wanted (``FEDBOX_MALLOC=system``)."""
    if os.environ.get(ENV, "").strip().lower() == "system" or not sys.platform.startswith("linux"):
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
