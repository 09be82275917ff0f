"""Waiting in the main thread without holding off signal handlers.

CPython runs a Python signal handler in the main thread, between bytecodes. The kernel
may hand a process's SIGTERM to any of its threads; when it lands on another one, a main
thread blocked in an untimed lock wait (``Event.wait()``) is not woken, and the handler
(Ctrl-C, a service manager's stop) waits for whatever releases that lock next: a
``fedbox bridge serve`` was found serving 20 minutes after its SIGTERM. A timed wait
comes back to the interpreter often enough for the handler to run.
"""

from __future__ import annotations

import threading

__all__ = ["wait_interruptibly"]

CHECK = 0.25
"""Seconds between the interpreter's looks at pending signals while waiting."""


def wait_interruptibly(event: threading.Event) -> None:
    """``event.wait()``, during which signal handlers still run (raise, set flags)."""
    while not event.wait(CHECK):
        pass
