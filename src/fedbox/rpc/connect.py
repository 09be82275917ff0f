"""Joining a store as one identity: the one way to get a :class:`~fedbox.rpc.box.Box`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace
from fedbox.rpc.box import DEFAULT_CLEANUP_EXPIRY, Box
from fedbox.rpc.shared import SharedServing
from fedbox.store import StoreIdentity, WatchMode, open_store

__all__ = ["connect"]

logger = logging.getLogger(__name__)


def connect(
    root: str | os.PathLike[str],
    email: str,
    *,
    encrypt: bool = True,
    require_pinned: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    watch_mode: WatchMode = "auto",
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
    clock: Callable[[], float] = time.time,
    cleanup_expiry: float = DEFAULT_CLEANUP_EXPIRY,
    handler_threads: int = 8,
    storage_options: Mapping[str, Any] | None = None,
    fsync: bool = True,
    chunk_threshold: int | None = None,
    chunk_size: int | None = None,
    rescan_interval: float | None = None,
    shared: SharedServing | None = None,
) -> Box:
    """Join the store at ``root`` as ``email``. The box owns the store it opens here:
    ``box.close()`` (or leaving its ``with`` block) closes both.

    **Senders are authenticated by default.** ``encrypt=True`` creates this identity's
    keys on first use, publishes its public keys at ``datasites/{email}/public/did.json``,
    encrypts every body end to end, and refuses (403) any request that is not encrypted
    by the sender its folder names. So a peer must have connected once (or run
    ``fedbox keys init``) before anyone can send to it: until then ``send`` raises
    CryptoError naming the missing ``did.json``; nothing ever falls back to plaintext.
    A peer's key is pinned the first time it is met (trust on first use, logged as a
    WARNING with its fingerprint and how to check it); ``require_pinned=True`` refuses
    peers that nobody pinned with ``fedbox keys trust`` instead: their requests are
    answered 403 and sending to them raises UntrustedKey, both saying how to pin.

    ``encrypt=False`` is the **unauthenticated** mode, for tests and trusted single-user
    folders: the sender of a request is whatever folder it sits in, so anyone who can
    write the store can send as anyone, and bodies are readable by the store. It is
    logged as a WARNING once per box.

    ``root`` is a folder, or a URL (``s3://bucket/prefix``, ``webdav://host:port/path``,
    ``sftp://user@host/path``, ``memory://x``...) whose backend gets ``storage_options``
    (merged over ``$FEDBOX_STORAGE_OPTIONS``). ``poll_interval`` defaults per store kind:
    0.5 s for a polled folder, the adaptive minimum for a remote store, which backs off to
    ``max_poll_interval`` when idle. ``fsync=False`` trades crash durability of a folder's
    message files for speed (throwaway simulations; a killed process loses nothing either
    way); remote backends decide durability themselves.

    Private state (futures, audit log, private keys, pins) goes to ``state_dir``, by
    default ``$FEDBOX_HOME/{email}`` (``~/.fedbox/{email}``). A store that acts as
    someone (a ``hub://`` store uses the ``fedbox login`` saved there) is opened as this
    identity.

    Bodies above ``chunk_threshold`` bytes travel as resumable chunk blobs of
    ``chunk_size`` bytes (defaults: ``$FEDBOX_CHUNK_THRESHOLD`` / ``$FEDBOX_CHUNK_SIZE``,
    else 512 MiB / 64 MiB).

    A serving app lists its inboxes again every ``rescan_interval`` seconds (default
    ``$FEDBOX_RESCAN_INTERVAL``, else 30 s), so a request its watcher never reported, or
    whose handling failed before it was claimed, waits for no restart.

    ``shared`` (a :class:`~fedbox.rpc.shared.SharedServing` on the same store) gives the
    box that object's watcher and handler threads instead of its own: for many boxes in
    one process, such as ``fedbox simulate --inprocess``'s virtual clients.
    """
    if require_pinned and not encrypt:
        raise ValueError("require_pinned=True needs encrypt=True: pins are of encryption keys")
    workspace = Workspace.for_email(validate_email(email), state_dir)
    store = open_store(
        root,
        watch_mode=watch_mode,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        fsync=fsync,
        identity=StoreIdentity(workspace.email, workspace.state_dir),
        **(storage_options or {}),
    )
    try:
        box = Box(
            store,
            workspace,
            clock=clock,
            cleanup_expiry=cleanup_expiry,
            handler_threads=handler_threads,
            encrypt=encrypt,
            chunk_threshold=chunk_threshold,
            chunk_size=chunk_size,
            rescan_interval=rescan_interval,
            shared=shared,
        )
    except BaseException:
        store.close()
        raise
    if box.sealer is not None:
        box.sealer.require_pinned = require_pinned
    else:
        logger.warning(
            "%s connected without encryption: senders are not authenticated (anyone who "
            "can write to %s can send as anyone) and bodies are stored in the clear; "
            "connect with encrypt=True unless this is a test",
            box.email,
            store,
        )
    return box
