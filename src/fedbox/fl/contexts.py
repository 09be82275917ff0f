"""Flower ``Context`` objects that survive a restart: one file per (run, node).

A ClientApp keeps its memory between rounds in ``context.state``; in Flower's
deployment engine the SuperNode holds it. Here the client runner saves it after
every message, with Flower's own protobuf, in the identity's private state dir
(never in the store: state is local by Flower's definition). Writes are atomic,
so a client killed mid-write restarts from the previous complete state.

Each save records the id of the message it reflects and keeps the save before it.
A client killed after saving but before its reply was written gets that message
again when it restarts (no reply exists, so the message is still due); it then runs
from the state before the message, not after it, and the state moves on once.

A message that left the Context as the last save has it is not saved at all (most
ClientApps never touch ``context.state``): the file then still reflects an earlier
message, whose state is also the state before and after this one, so a restart
resumes from the right state either way. Writing a file per message was a fifth of a
thousand virtual clients' time (issue 20).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

from flwr.app import Context
from flwr.common.serde import context_from_proto, context_to_proto
from flwr.proto.message_pb2 import Context as ProtoContext

from fedbox.datasite.workspace import create_private

__all__ = ["ContextStore"]

logger = logging.getLogger(__name__)

_MAGIC = b"FBXCTX1 "
"""Then the id of the message the state reflects, a newline, and Flower's protobuf."""


class ContextStore:
    """Loads and saves Contexts under ``directory`` (made 0700, with any missing parent, on
    first save)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._saved: dict[Path, bytes] = {}
        """Digest of the Context last saved at each path by this store."""

    def path(self, run_id: int, node_id: int) -> Path:
        return self.directory / f"context-{run_id}-{node_id}.pb"

    def _previous(self, run_id: int, node_id: int) -> Path:
        return self.directory / f"context-{run_id}-{node_id}.prev.pb"

    def load(self, run_id: int, node_id: int, *, before: str | None = None) -> Context | None:
        """The saved Context, or None if there is none (or it is unreadable: logged).

        If the saved one already reflects message ``before``, the one saved before it:
        that message is being handled again after a crash that lost its reply.
        """
        found = self._read(self.path(run_id, node_id))
        if found is None:  # none yet, or a crash between the two renames of a save
            found = self._read(self._previous(run_id, node_id))
        elif before is not None and found[0] == before:
            logger.info("message %s is handled again: resuming the state from before it", before)
            found = self._read(self._previous(run_id, node_id))
        return None if found is None else found[1]

    def _read(self, path: Path) -> tuple[str | None, Context | None] | None:
        """``(id of the message it reflects, context)``; None if there is no such file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        applied = None
        if data.startswith(_MAGIC):
            line_end = data.find(b"\n", len(_MAGIC))
            applied = data[len(_MAGIC) : line_end].decode("utf-8", "replace")
            data = data[line_end + 1 :]
        try:
            return applied, context_from_proto(ProtoContext.FromString(data))
        except Exception:  # a damaged file must not stop the node; start afresh
            logger.exception("cannot read saved context %s; starting with an empty state", path)
            return applied, None

    def save(self, context: Context, applied: str = "") -> None:
        """Save ``context`` as the state after message ``applied``; keep the last save.

        Atomic: temp file beside the target, fsync (unless disabled), rename. Without
        fsync a killed process still leaves a complete file (the rename is atomic);
        only a power cut could lose the last save. Simulations skip it.
        """
        if "\n" in applied:
            raise ValueError("a message id has no line breaks")
        path = self.path(context.run_id, context.node_id)
        proto = context_to_proto(context).SerializeToString()
        digest = hashlib.sha256(proto).digest()
        data = _MAGIC + applied.encode() + b"\n" + proto
        with self._lock:
            if self._saved.get(path) == digest:
                return
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
            with open(create_private(tmp), "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            with contextlib.suppress(FileNotFoundError):  # the first save of a run
                os.replace(path, self._previous(context.run_id, context.node_id))
            os.replace(tmp, path)
            self._saved[path] = digest
        logger.debug("saved context %s (%d bytes)", path, len(data))
