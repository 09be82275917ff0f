"""Client processes die with the ``fedbox simulate`` that started them (issue 11, point 18).

A simulation's clients wait for an aggregator that lives in the parent; if the parent is
killed with SIGKILL it cannot stop them, and they would wait forever. Two mechanisms,
because each alone has a gap:

- On Linux the child asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``). It covers only deaths after the call, and only Linux;
  it fires when the *thread* that started the child ends, so start children from a
  thread that lives as long as they should (``simulate`` uses its main thread).
- The parent holds the write end of a pipe whose read end each child inherits. The
  parent never writes; when it dies, however it dies, the kernel closes the write end,
  and a thread in the child blocked reading the pipe wakes with end-of-file and ends
  the process. This also covers a parent that died before the child made the call.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

__all__ = ["Lifeline", "die_with_parent"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
_EXIT_ORPHANED = 1


class Lifeline:
    """The parent's side: give :attr:`child_fd` to each child (``pass_fds``) and keep
    this object open for as long as the children may live."""

    def __init__(self) -> None:
        # Both ends are close-on-exec: only children given child_fd inherit the read end,
        # and no child ever holds the write end (it would keep the pipe open).
        self._read, self._write = os.pipe()

    @property
    def child_fd(self) -> int:
        return self._read

    def close(self) -> None:
        """Close both ends; children still watching see end-of-file and exit. Idempotent."""
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1

    def forked(self) -> None:
        """In a child forked (not started by ``exec``) from the parent: close the write
        end the fork copied, which would keep the pipe open after the parent died."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1

    def __enter__(self) -> Lifeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def die_with_parent(fd: int, *, kernel_signal: bool = True) -> None:
    """In a child: end this process when the parent holding the :class:`Lifeline` whose
    read end is ``fd`` dies. ``kernel_signal=False`` relies on the pipe alone."""
    if kernel_signal:
        _ask_kernel_for_sigkill()
    threading.Thread(target=_watch, args=(fd,), name="fedbox-lifeline", daemon=True).start()


def _ask_kernel_for_sigkill() -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux; elsewhere the pipe does the job."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable (%s); relying on the pipe", exc)


def _watch(fd: int) -> None:
    try:
        while os.read(fd, 1):  # the parent never writes: only end-of-file comes
            pass
    except OSError:
        pass
    logger.warning("the parent process is gone; exiting")
    os._exit(_EXIT_ORPHANED)  # at once: the run is over and nobody waits for a clean stop
