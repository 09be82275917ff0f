"""How long requests and message files live unless the caller says otherwise."""

from __future__ import annotations

__all__ = ["DEFAULT_CLEANUP_EXPIRY", "DEFAULT_EXPIRY"]

DEFAULT_EXPIRY = 24 * 3600.0
"""Seconds a request stays valid unless the sender says otherwise."""
DEFAULT_CLEANUP_EXPIRY = 24 * 3600.0
"""Age after which the cleanup job removes message files (the audit rows stay)."""
