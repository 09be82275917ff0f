"""Flower ``Context`` objects that survive a restart: one file per (run, node).

A ClientApp keeps its memory between rounds in ``context.state``; in Flower's
deployment engine the SuperNode holds it. Here the client runner saves it after
every message, with Flower's own protobuf, in the identity's private state dir
(never in the store: state is local by Flower's definition). Writes are atomic,
so a client killed mid-write restarts from the previous complete state.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from flwr.app import Context
from flwr.common.serde import context_from_proto, context_to_proto
from flwr.proto.message_pb2 import Context as ProtoContext

__all__ = ["ContextStore"]

logger = logging.getLogger(__name__)


class ContextStore:
    """Loads and saves Contexts under ``directory`` (created 0700 on first save)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self._lock = threading.Lock()

    def path(self, run_id: int, node_id: int) -> Path:
        return self.directory / f"context-{run_id}-{node_id}.pb"

    def load(self, run_id: int, node_id: int) -> Context | None:
        """The saved Context, or None if there is none (or it is unreadable: logged)."""
        path = self.path(run_id, node_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return context_from_proto(ProtoContext.FromString(data))
        except Exception:  # a damaged file must not stop the node; start afresh
            logger.exception("cannot read saved context %s; starting with an empty state", path)
            return None

    def save(self, context: Context) -> None:
        """Write atomically: temp file beside the target, fsync (unless disabled), rename.

        Without fsync a killed process still leaves a complete file (the rename is
        atomic); only a power cut could lose the last save. Simulations skip it.
        """
        path = self.path(context.run_id, context.node_id)
        data = context_to_proto(context).SerializeToString()
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        logger.debug("saved context %s (%d bytes)", path, len(data))
