"""Trust on first use: pin each peer's signing key the first time it is seen.

Public keys arrive through the store, which fedbox does not trust. Pinning (as SSH does
with ``known_hosts``) turns a later key swap by the store, or by anyone who can write a
peer's ``did.json``, into a refusal instead of a silent man-in-the-middle. A human who
has checked the new fingerprint with the peer accepts it with ``fedbox keys trust``.

Pins live in SQLite at ``state_dir/trust.sqlite3``; each check is one transaction, so two
processes meeting a new peer at once pin the same key or one of them refuses.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from fedbox.crypto.keys import PublicBundle
from fedbox.datasite.identity import validate_email
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS pins (email TEXT PRIMARY KEY, fp TEXT NOT NULL)")
        return conn

    def check(self, bundle: PublicBundle) -> None:
        """Verify the bundle's signatures, pin it if the email is new, refuse a changed key.

        Raises CryptoError for bad signatures (nothing is pinned) and UntrustedKey for a
        key that differs from the pin.
        """
        bundle.verify()
        presented = bundle.fingerprint
        with closing(self._connect()) as conn, conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO pins (email, fp) VALUES (?, ?)", (bundle.email, presented)
            ).rowcount
            (pinned,) = conn.execute(
                "SELECT fp FROM pins WHERE email = ?", (bundle.email,)
            ).fetchone()
        if inserted:
            logger.info("pinned identity key of %s: %s", bundle.email, presented)
        elif pinned != presented:
            raise UntrustedKey(bundle.email, pinned, presented)

    def trust(self, email: str, fingerprint: str) -> None:
        """Pin ``fingerprint`` for ``email``, replacing any earlier pin."""
        email = validate_email(email)
        fp = normalize_fingerprint(fingerprint)
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT OR REPLACE INTO pins (email, fp) VALUES (?, ?)", (email, fp))
        logger.info("trusted identity key of %s: %s", email, fp)

    def pinned(self, email: str) -> str | None:
        """The pinned fingerprint for ``email``, or None if we have not met them."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT fp FROM pins WHERE email = ?", (email,)).fetchone()
        return row[0] if row else None
