"""A fair share of the machine's cores for each client process of a simulation.

Numerical libraries (OpenMP, MKL, OpenBLAS, PyTorch) start one worker thread per core
in every process. Three PyTorch clients on two cores then run six busy threads that
fight over two cores, and a 0.2 s train round takes 2-3 s (issue 12, point 8). So
``fedbox simulate`` tells each client process how many threads it may use, through
the variables those libraries read when they start, unless the user set them.
PyTorch reads ``OMP_NUM_THREADS`` too, but the share is also applied through
``torch.set_num_threads`` in case the app changed it; that happens only when fedbox
chose the share (:data:`TORCH_THREADS_ENV`), never over a user's own setting.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

__all__ = [
    "THREAD_ENV_VARS",
    "TORCH_THREADS_ENV",
    "available_cores",
    "fair_share",
    "limit_torch_threads",
    "thread_env",
]

logger = logging.getLogger(__name__)

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
"""What OpenMP (and PyTorch), MKL, OpenBLAS, Accelerate and numexpr read at start."""
TORCH_THREADS_ENV = "FEDBOX_TORCH_THREADS"
"""Set by ``simulate`` for its clients when it chose ``OMP_NUM_THREADS`` itself."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def fair_share(processes: int, cores: int | None = None) -> int:
    """Threads per process when ``processes`` share ``cores``: at least one each."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    return max(1, (available_cores() if cores is None else cores) // processes)


def thread_env(processes: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to a client's environment so that ``processes`` clients
    share the cores; those already in ``environ`` are the user's and stay as they are."""
    share = str(fair_share(processes))
    added = {name: share for name in THREAD_ENV_VARS if not environ.get(name)}
    if "OMP_NUM_THREADS" in added:
        added[TORCH_THREADS_ENV] = share
    return added


def limit_torch_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply ``simulate``'s share to PyTorch if the app imported it; the count, or None.

    Called once the ClientApp is loaded. Does nothing when torch is not imported
    (fedbox never imports it) or when the user chose the thread counts.
    """
    env = os.environ if environ is None else environ
    torch = sys.modules.get("torch")
    raw = env.get(TORCH_THREADS_ENV)
    if torch is None or not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not a number", TORCH_THREADS_ENV, raw)
        return None
    torch.set_num_threads(count)
    logger.info("torch limited to %d threads", count)
    return count


def limit_loaded_blas(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply ``OPENBLAS_NUM_THREADS`` to a BLAS already loaded; the count, or None.

    A client forked from ``simulate`` (:mod:`fedbox.cli.client_fork`) inherits NumPy, and
    the BLAS under it, loaded with the parent's thread count before the client's share
    was in its environment: this gives the client its share as a new process reading
    the variable would have had it. Does nothing without NumPy or the variable.
    """
    env = os.environ if environ is None else environ
    raw = env.get("OPENBLAS_NUM_THREADS")
    if "numpy" not in sys.modules or not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        return None
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count, user_api="blas")
    return count
