"""A store in memory, private to its object unless shared on purpose."""

from __future__ import annotations

import uuid

from fedbox.store import RemoteStore

__all__ = ["MemoryStore"]


class MemoryStore(RemoteStore):
    """An empty store in this process's memory (fsspec's memory filesystem, needs the
    ``remote`` extra), polled every ``poll_interval`` seconds.

    fsspec's own ``MemoryFileSystem`` keeps every instance's files in one class-level
    dict, so unrelated tests would see each other's files; each MemoryStore starts empty
    and stays private. Participants that must see each other's files share one:
    ``MemoryStore(shared_with=first)``.
    """

    def __init__(
        self,
        *,
        shared_with: MemoryStore | None = None,
        poll_interval: float = 0.01,
        max_poll_interval: float = 0.1,
    ) -> None:
        super().__init__(
            f"memory://fedbox-{uuid.uuid4().hex[:12]}" if shared_with is None else shared_with.url,
            fs=None if shared_with is None else shared_with.fs,
            min_poll_interval=poll_interval,
            max_poll_interval=max(poll_interval, max_poll_interval),
            retry_timeout=0,
        )
