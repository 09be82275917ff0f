"""``fedbox sync``: a plain folder kept in step with a hub (SyftBox's client daemon).

A :class:`SyncDaemon` mirrors ``DIR`` through a hub: a SQLite journal remembers the last
synced version and hash of every path, so a restart reconciles three ways (folder, hub,
journal) and moves only what changed; then OS file events and the hub's pushed change
feed keep both sides in step. See :mod:`fedbox.hub.sync.daemon`.
"""

from fedbox.hub.sync.daemon import SyncDaemon, SyncOptions
from fedbox.hub.sync.status import SyncStatus, read_status

__all__ = ["SyncDaemon", "SyncOptions", "SyncStatus", "read_status"]
