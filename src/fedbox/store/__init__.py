"""Layer 2: where message files live and how their arrival is noticed.

A folder (:class:`LocalStore`, OS file events) or anything fsspec reaches
(:class:`RemoteStore`: S3, GCS, WebDAV, SFTP, Google Drive, memory; adaptive polling).
:func:`open_store` picks one from a path or URL, by the factory its scheme names in
:mod:`fedbox.store.registry`.
"""

from fedbox.store.base import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MIN_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RETRY_TIMEOUT,
    Entry,
    FolderFilter,
    Store,
    StoreCapabilities,
    Watcher,
    WatchMode,
)
from fedbox.store.local import LocalStore
from fedbox.store.registry import (
    ENV_STORAGE_OPTIONS,
    MissingBackend,
    StoreIdentity,
    open_store,
    redact_url,
)
from fedbox.store.remote import RemoteStore

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_MIN_POLL_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RETRY_TIMEOUT",
    "ENV_STORAGE_OPTIONS",
    "Entry",
    "FolderFilter",
    "LocalStore",
    "MissingBackend",
    "RemoteStore",
    "Store",
    "StoreCapabilities",
    "StoreIdentity",
    "WatchMode",
    "Watcher",
    "open_store",
    "redact_url",
]
