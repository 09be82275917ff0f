"""The hub's settings: one pydantic model, built by the CLI from flags and environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HubSettings", "SmtpSettings"]


class SmtpSettings(BaseModel):
    """Where login codes are mailed from when the hub is not in dev mode."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "fedbox-hub@localhost"
    starttls: bool = True


class HubSettings(BaseModel):
    """Everything a hub process needs; ``create_app`` takes exactly this.

    ``db_url`` and ``blobs`` default to ``DATA/hub.db`` (SQLite, WAL) and ``DATA/blobs``,
    so ``--data DIR`` alone gives a working hub with nothing else to install or start.
    """

    model_config = ConfigDict(frozen=True)

    data: Path
    db_url: str | None = None
    blobs: str | None = None
    blobs_options: dict[str, Any] = Field(default_factory=dict)
    """fsspec storage options of a ``blobs`` URL (endpoint, keys), as for remote stores."""
    dev: bool = False
    """Login codes are returned to the caller instead of mailed (local use and tests)."""
    secret: str | None = None
    """Key that signs access tokens; by default one is generated once and kept in the database."""
    access_ttl: float = Field(default=900.0, gt=0)
    refresh_ttl: float = Field(default=30 * 86400.0, gt=0)
    code_ttl: float = Field(default=600.0, gt=0)
    code_attempts: int = Field(default=5, ge=1)
    """Wrong codes tolerated before the code is void and a new one must be asked for."""
    login_window: float = Field(default=600.0, gt=0)
    login_per_email: int = Field(default=10, ge=1)
    login_per_address: int = Field(default=60, ge=1)
    quota_bytes: int | None = Field(default=None, ge=0)
    quota_files: int | None = Field(default=None, ge=0)
    upload_expiry: float = Field(default=86400.0, gt=0)
    """Seconds an unfinished resumable upload may receive nothing before it is removed."""
    smtp: SmtpSettings | None = None
    direct_downloads_above: int | None = Field(default=None, ge=0)
    """The blob store (S3) is reachable by clients: files of at least this many bytes are
    downloaded from it through a presigned URL (a 307 redirect) instead of through the
    hub. None (the default) keeps every download on the hub."""
    direct_url_expiry: int = Field(default=300, gt=0)
    """Seconds a presigned download URL stays valid (a client follows it at once)."""
    feed_check: float = Field(default=5.0, gt=0)
    """Seconds between looks at the change log's head for writes whose notification was
    missed (see :mod:`fedbox.hub.notify`): the most such a write waits to be pushed."""
    session_check: float = Field(default=1.0, gt=0)
    """Seconds a hub process trusts a login it found live without asking the database
    again. A revocation reaches every process at once by notification (PostgreSQL); this
    is the most one whose notification was missed (or, on SQLite, made by ``fedbox hub
    revoke``) takes to land."""

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data / 'hub.db'}"

    @property
    def blobs_location(self) -> str:
        return self.blobs or str(self.data / "blobs")
