"""Helpers for testing fedbox and code built on it: fakes, not mocks (trio's ``testing``).

- :class:`FakeClock`: time that moves when the test says (``connect(..., clock=...)``).
- :class:`MemoryStore`: a private in-memory store, shared between boxes on purpose only.
- :func:`check_store`: the checks every Store implementation must pass;
  :func:`wait_reported`, what a store's watcher reports until a given path.
- :func:`write_request`: a request file written by hand, without a sending box.
- :func:`message_header`, :func:`envelope_bytes`: any message's header and file, built by
  hand (a planted response, a file to damage on purpose).
- :mod:`fedbox.testing.parsers` (imported on its own: it imports Flower): each parser of
  what others write as a function of bytes, valid inputs and a mutator to damage them.

This module may import every layer; nothing in fedbox imports it.
"""

from fedbox.testing.clock import FakeClock
from fedbox.testing.memory import MemoryStore
from fedbox.testing.requests import envelope_bytes, message_header, write_request
from fedbox.testing.store_checks import (
    BAD_PATHS,
    STORE_CHECKS,
    StoreCheck,
    check_store,
    wait_reported,
)

__all__ = [
    "BAD_PATHS",
    "STORE_CHECKS",
    "FakeClock",
    "MemoryStore",
    "StoreCheck",
    "check_store",
    "envelope_bytes",
    "message_header",
    "wait_reported",
    "write_request",
]
