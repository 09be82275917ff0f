"""Layer 5: the hub, fedbox's own sync server (``fedbox hub serve``).

Participants reach it by URL; it keeps every file's version, size, digest and writer,
enforces who may read and write each path, and pushes changes over a websocket. It never
sees message bodies in the clear: the RPC layer encrypts them end to end.
"""

from fedbox.hub.app import build_hub, create_app
from fedbox.hub.settings import HubSettings, SmtpSettings

__all__ = ["HubSettings", "SmtpSettings", "build_hub", "create_app"]
