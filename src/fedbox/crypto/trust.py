"""Trust on first use: pin each peer's signing key the first time it is seen.

Public keys arrive through the store, which fedbox does not trust. Pinning (as SSH does
with ``known_hosts``) turns a later key swap by the store, or by anyone who can write a
peer's ``did.json``, into a refusal instead of a silent man-in-the-middle. A human who
has checked the new fingerprint with the peer accepts it with ``fedbox keys trust``.
First contact itself is the weak moment (whoever wrote the ``did.json`` first is
pinned), so the caller says it loudly, and ``require_pinned`` refuses peers nobody has
pinned by hand (issue 11, point 13).

Pins live in SQLite at ``state_dir/trust.sqlite3``; each check is one transaction, so two
processes meeting a new peer at once pin the same key or one of them refuses.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

from fedbox.crypto.keys import PublicBundle
from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import create_private
from fedbox.errors import CryptoError, UntrustedKey

__all__ = ["TrustStore", "UntrustedKey", "normalize_fingerprint"]

logger = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def normalize_fingerprint(text: str) -> str:
    """The canonical grouped form of a fingerprint typed with any case or separators."""
    digits = re.sub(r"[\s:-]", "", text).lower()
    if not _HEX64.match(digits):
        raise CryptoError(f"{text!r} is not a fingerprint (64 hex digits, e.g. from fedbox keys)")
    return ":".join(digits[i : i + 4] for i in range(0, 64, 4))


class TrustStore:
    """Pinned signing-key fingerprints by email. Opens the database per call: no handle."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "trust.sqlite3"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(create_private(self.path), timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS pins (email TEXT PRIMARY KEY, fp TEXT NOT NULL)")
        return conn

    def check(self, bundle: PublicBundle, *, require_pinned: bool = False) -> bool:
        """Verify the bundle's signatures and compare its key with the pin; True if this
        was first contact and the key has just been pinned (trust on first use).

        Raises CryptoError for bad signatures (nothing is pinned), UntrustedKey for a key
        that differs from the pin, and, with ``require_pinned``, UntrustedKey for a peer
        that has no pin (nothing is pinned then either).
        """
        bundle.verify()
        presented = bundle.fingerprint
        with closing(self._connect()) as conn, conn:
            inserted = 0
            if not require_pinned:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO pins (email, fp) VALUES (?, ?)",
                    (bundle.email, presented),
                ).rowcount
            row = conn.execute("SELECT fp FROM pins WHERE email = ?", (bundle.email,)).fetchone()
        pinned = None if row is None else row[0]
        if pinned != presented:
            raise UntrustedKey(bundle.email, pinned, presented)
        return bool(inserted)

    def trust(self, email: str, fingerprint: str) -> None:
        """Pin ``fingerprint`` for ``email``, replacing any earlier pin."""
        self.trust_all({email: fingerprint})

    def trust_all(self, fingerprints: Mapping[str, str]) -> None:
        """Pin each ``{email: fingerprint}``, replacing earlier pins, in one transaction."""
        pins = {
            validate_email(email): normalize_fingerprint(fp) for email, fp in fingerprints.items()
        }
        with closing(self._connect()) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO pins (email, fp) VALUES (?, ?)", pins.items())
        for email, fp in pins.items():
            logger.info("trusted identity key of %s: %s", email, fp)

    def pins(self) -> dict[str, str]:
        """Every pinned ``{email: fingerprint}``, by email."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT email, fp FROM pins ORDER BY email").fetchall()
        return dict(rows)

    def pinned(self, email: str) -> str | None:
        """The pinned fingerprint for ``email``, or None if we have not met them."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT fp FROM pins WHERE email = ?", (email,)).fetchone()
        return row[0] if row else None
