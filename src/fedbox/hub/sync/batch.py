"""Small uploads that workers ask for at the same time, sent as one request.

Each of the daemon's workers syncs one path and waits for its upload's answer, so the
paths of a burst (a thousand files written at once) reach the uploader together. The
first worker to arrive sends; those arriving while its request is out queue up, and the
next of them sends all that queued as one ``POST /api/v1/batch`` (group commit). Each
gets its own answer, exactly what its own PUT would have given: a version, or the
Stale/Refused/StoreError it acts on as before. A worker alone sends a plain PUT (no
batch overhead on a lone file's latency); requests and responses go first in a batch.
Larger files, and rule files (whose upload is followed by a re-announce), go alone.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fedbox.errors import FedboxError
from fedbox.hub.access import is_rules_path
from fedbox.hub.sync.reconcile import LocalFile, RemoteFile
from fedbox.hub.sync.remote import SmallUpload, SyncRemote
from fedbox.hub.sync.transfer import ChangedMeanwhile

__all__ = ["BATCH_FILE_MAX", "UploadBatcher"]

BATCH_FILE_MAX = 256 << 10
"""Files up to this size may share a request."""
_RPC_SUFFIXES = (".request", ".response")


@dataclass
class _Waiting:
    item: SmallUpload
    done: bool = False
    result: RemoteFile | BaseException | None = field(default=None)
    wake: threading.Event = field(default_factory=threading.Event)
    """Set once: when answered, or when handed the turn to send."""

    @property
    def urgent(self) -> bool:
        return self.item.path.endswith(_RPC_SUFFIXES)


class UploadBatcher:
    """One worker at a time holds the turn to send; the others wait, each on its own
    event, woken only when answered or handed the turn (a shared condition woke every
    waiting worker after each request, a herd of thread switches per batch)."""

    def __init__(self, remote: SyncRemote, max_files: int = 256, max_bytes: int = 4 << 20) -> None:
        self._remote = remote
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._sending = False

    def upload(self, path: str, source: Path, local: LocalFile, base: int | None) -> RemoteFile:
        """As :meth:`SyncRemote.upload`, batched with other workers' small files."""
        if local.size > BATCH_FILE_MAX or is_rules_path(path):
            return self._remote.upload(path, source, local, base)
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != local.sha256:
            raise ChangedMeanwhile(f"{path} changed while it was read for upload")
        waiting = _Waiting(SmallUpload(path, data, local.sha256, base))
        with self._lock:
            self._queue.append(waiting)
            turn = not self._sending
            self._sending = True
        if not turn:
            waiting.wake.wait()
        while not waiting.done:  # this worker holds the turn
            self._send_next(waiting)
        if isinstance(waiting.result, BaseException):
            raise waiting.result
        assert waiting.result is not None
        return waiting.result

    def _send_next(self, mine: _Waiting) -> None:
        """Send the next batch (the turn held by ``mine``'s worker), answer its waiting
        ones, and pass the turn on once ``mine`` is answered: to the first still queued,
        or to nobody."""
        with self._lock:
            batch = self._take()
        try:
            self._send(batch)
        finally:
            successor = None
            if mine.done:
                with self._lock:
                    successor = self._queue[0] if self._queue else None
                    self._sending = successor is not None
            for waiting in batch:
                if waiting is not mine:
                    waiting.wake.set()
            if successor is not None:
                successor.wake.set()

    def _take(self) -> list[_Waiting]:
        """The next batch (lock held): urgent ones first, then in arrival order, within
        the count and byte bounds (at least one)."""
        self._queue.sort(key=lambda w: not w.urgent)  # stable: arrival order otherwise
        batch: list[_Waiting] = []
        size = 0
        for waiting in self._queue:
            if batch and (
                len(batch) >= self._max_files or size + len(waiting.item.data) > self._max_bytes
            ):
                break
            batch.append(waiting)
            size += len(waiting.item.data)
        del self._queue[: len(batch)]
        return batch

    def _send(self, batch: list[_Waiting]) -> None:
        """Send without the lock; every waiting one in ``batch`` gets its answer."""
        try:
            if len(batch) == 1:
                item = batch[0].item
                results: list[RemoteFile | FedboxError] = [
                    self._remote.upload_small(item.path, item.data, item.sha256, item.base)
                ]
            else:
                results = self._remote.upload_batch([w.item for w in batch])
        except BaseException as exc:  # the request failed: every file in it did
            for waiting in batch:
                waiting.result, waiting.done = exc, True
            return
        for waiting, result in zip(batch, results, strict=True):
            waiting.result, waiting.done = result, True
