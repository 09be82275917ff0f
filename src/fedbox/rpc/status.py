"""Outcomes of a call, as HTTP-style codes so they read the same in files and logs."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status"]


class Status(IntEnum):
    OK = 200
    BAD_REQUEST = 400
    """The request file could not be read (corrupt, wrong header, undecryptable)."""
    FORBIDDEN = 403
    """The request was readable but not allowed (wrong recipient, forged sender, a sender
    key that is not the pinned one or not published, plaintext to an encrypting box)."""
    NOT_FOUND = 404
    """No handler is registered for the endpoint."""
    EXPIRED = 419
    """The request's ``expires`` had passed before it was handled; it never ran."""
    INTERNAL_ERROR = 500
    """The handler raised; the reason is in the body."""
