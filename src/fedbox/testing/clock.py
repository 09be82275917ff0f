"""A clock that moves only when a test says so (trio's ``MockClock``)."""

from __future__ import annotations

import math
import threading
import time

__all__ = ["FakeClock"]


class FakeClock:
    """Unix time for ``fedbox.connect(..., clock=clock)`` that stands still until
    :meth:`advance`: expiry and cleanup tests never sleep.

    Starts at the real time (so message files' own times look recent) unless given
    ``now``. Safe to read from the box's threads while a test advances it.
    """

    def __init__(self, now: float | None = None) -> None:
        self._now = time.time() if now is None else _finite(now)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self()})"

    def advance(self, seconds: float) -> float:
        """Move time forward (never back: nothing in fedbox expects that); return it."""
        if _finite(seconds) < 0:
            raise ValueError(f"a clock only moves forward, got {seconds} s")
        with self._lock:
            self._now += seconds
            return self._now


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"time must be a finite number, got {value}")
    return float(value)
