"""Layer 2: where message files live and how their arrival is noticed."""

from fedbox.store.base import DEFAULT_POLL_INTERVAL, Entry, Store, Watcher
from fedbox.store.local import LocalStore, WatchMode

__all__ = ["DEFAULT_POLL_INTERVAL", "Entry", "LocalStore", "Store", "WatchMode", "Watcher"]
