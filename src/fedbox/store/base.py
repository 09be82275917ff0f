"""The store contract: a handful of primitives every backend implements.

Everything above (envelopes, quarantine, RPC) is written once on these. Paths are
store-relative POSIX strings; dot-files (temporaries, ``.quarantine``) are invisible to
``list`` and ``watch``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_MIN_POLL_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RETRY_TIMEOUT",
    "Entry",
    "FolderFilter",
    "Store",
    "StoreCapabilities",
    "WatchMode",
    "Watcher",
]

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between listings of a local folder in ``poll`` mode (NFS, SMB)."""
DEFAULT_MIN_POLL_INTERVAL = 0.05
"""Remote stores: seconds between listings while files keep arriving."""
DEFAULT_MAX_POLL_INTERVAL = 2.0
"""Remote stores: the ceiling the listing interval backs off to when idle or unreachable."""
DEFAULT_RETRY_TIMEOUT = 60.0
"""Remote stores: seconds an operation keeps retrying an unreachable store before failing."""

WatchMode = Literal["auto", "events", "poll"]
"""How a store finds new files: by change events only, by listing only, or ``"auto"``
(events where the store has them)."""

FolderFilter = str | Callable[[str], bool]
"""Which immediate sub-folders of a watched prefix to look into: a glob (``fnmatch``,
case-sensitive) or a predicate on the folder name. Polling stores list only those."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One file as listed: the keys every backend must fill the same way."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a store's callers may rely on, so that they never branch on its class
    (issue 21.2): a new store declares these and gets the matching behaviour."""

    events: bool
    """Its watchers report changes as they happen (OS events, a pushed feed); False:
    they find them by listing (``watch_mode="events"`` is refused then)."""
    cheap_exists: bool
    """``exists`` and a look at one file are local calls; False: each is a round trip,
    so callers run them beside other work and let the watcher look for the files they
    expect (:meth:`Watcher.expect`) instead of checking each one themselves."""


@runtime_checkable
class Watcher(Protocol):
    """New files under a prefix, in batches, from the moment the watcher was created.

    Creating the watcher before listing a folder means no file can fall between the
    listing and the first event; a file may then be reported by both, so consumers
    must be idempotent (RPC is: it deduplicates by message id).
    """

    def next_batch(self, timeout: float | None = None) -> set[str]:
        """Block until new files appear (returned) or ``timeout`` passes (empty set)."""
        ...

    def expect(self, paths: Iterable[str]) -> None:
        """These files are due (replies to requests just written). On a store without
        ``cheap_exists`` the watcher reports each once it exists, even one that was there
        before the watcher started; elsewhere a no-op (the caller looks itself)."""
        ...

    def forget(self, paths: Iterable[str]) -> None:
        """Undo one :meth:`expect` of each path (a caller stopped waiting)."""
        ...

    def list_when(self, needed: Callable[[], bool]) -> None:
        """``needed()`` says whether files nobody expects still matter (someone serves
        requests); a watcher that pays for each listing may skip listings while it is
        False. A no-op for watchers whose changes cost nothing to follow."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Watcher: ...

    def __exit__(self, *exc: object) -> None: ...

    def __iter__(self) -> Iterator[set[str]]: ...


@runtime_checkable
class Store(Protocol):
    """Where message files live. ``put`` is atomic: readers see the whole file or nothing.

    Stores are made by :func:`fedbox.store.open_store` from a URL whose scheme names a
    factory in :mod:`fedbox.store.registry`.
    """

    @property
    def capabilities(self) -> StoreCapabilities: ...

    def put(self, path: str, data: bytes | BinaryIO) -> None: ...

    def writer(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A seekable file that appears at ``path`` whole when the block exits cleanly."""
        ...

    def open(self, path: str) -> BufferedIOBase:
        """A readable binary file (bodies are read with ``readinto``, so a buffered one);
        :class:`fedbox.errors.NotFound` if absent."""
        ...

    def read(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def list(self, prefix: str = "", suffix: str = "") -> builtins.list[Entry]:
        """Files under ``prefix`` (recursively) whose names end in ``suffix``, no dot-files."""
        ...

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """Immediate sub-folder names of ``prefix`` (no dot-folders)."""
        ...

    def list_temps(self, prefix: str = "") -> builtins.list[Entry]:
        """Writers' temporary files under ``prefix`` (``.{name}.tmp-{random}``, not in
        dot-folders): what a writer killed mid-write leaves behind, for the cleanup job."""
        ...

    def delete(self, path: str) -> None: ...

    def remove_folder(self, path: str) -> bool:
        """Remove the folder ``path`` if it is empty (True); False if it holds anything,
        is absent, or the store has no folders of its own (object stores)."""
        ...

    def move(self, src: str, dst: str) -> None: ...

    def link(self, src: str, dst: str) -> None:
        """Make ``dst`` a whole copy of the file ``src``, of its own, without sending its
        bytes again where the store can: a reflink or in-kernel copy on a folder, a
        server-side copy on a remote store. ``dst`` appears atomically and replaces any
        file there; NotFound if ``src`` is absent. Used for blobs that several messages
        share (issue 6).

        Never a hard link: each recipient of a broadcast gets a copy, so one that can
        write its own (a co-recipient, on a shared disk) cannot change what another reads
        (issue 11.11).
        """
        ...

    def watch(
        self,
        prefix: str = "",
        suffixes: tuple[str, ...] = (),
        *,
        folders: FolderFilter | None = None,
    ) -> Watcher:
        """New files under ``prefix`` ending in one of ``suffixes`` (any if empty).

        ``folders`` restricts the watch to the sub-folders of ``prefix`` it accepts; on a
        polling store it is what keeps each listing proportional to the folders that
        concern the caller (its own inboxes) rather than to the whole store.
        """
        ...

    def local_path(self, path: str) -> Path | None:
        """The OS path of a file when the store is a local folder, else None (for mmap)."""
        ...

    def close(self) -> None: ...
