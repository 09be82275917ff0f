"""Finding the run a datasite should serve when ``[tool.fedbox]`` names no app.

The aggregator names each run ``{aggregator}_{project}_{unix_time}``, which a
datasite cannot know in advance. It can see it, though: the run's requests sit in
``syft_outbox_inbox_{aggregator}_to_{me}/{app_name}/``. A run is live for us when
it holds a request we have not answered and that has not expired (an old run whose
last message went unanswered is over); the newest live run wins.
"""

from __future__ import annotations

import logging
import time

from fedbox.datasite.paths import Kind, outbox_dir, parse_message_path, response_path
from fedbox.errors import FedboxError, InvalidIdentity
from fedbox.fl.joining import ENDPOINT
from fedbox.rpc.envelope import read_header
from fedbox.store import Store

__all__ = ["app_name_prefix", "find_live_run", "wait_for_run"]

logger = logging.getLogger(__name__)


def app_name_prefix(aggregator: str, project: str) -> str:
    return f"{aggregator}_{project}_"


def _started_at(name: str, prefix: str) -> int | None:
    tail = name[len(prefix) :]
    return int(tail) if name.startswith(prefix) and tail.isdigit() else None


def find_live_run(store: Store, aggregator: str, me: str, project: str) -> str | None:
    """The newest run of ``project`` by ``aggregator`` with a request ``me`` has not
    answered and that is still in date."""
    inbox = outbox_dir(aggregator, me)
    prefix = app_name_prefix(aggregator, project)
    runs = [(t, n) for n in store.list_dirs(inbox) if (t := _started_at(n, prefix)) is not None]
    now = time.time()
    for _, name in sorted(runs, reverse=True):
        if any(
            _pending(store, entry.path, now) for entry in store.list(f"{inbox}/{name}", ".request")
        ):
            return name
    return None


def _pending(store: Store, path: str, now: float) -> bool:
    """A Flower request at ``path`` without a response and not expired; False for any
    other file (a malformed or unreadable one is the box's to quarantine, not a sign of
    a run)."""
    try:
        mp = parse_message_path(path)
    except InvalidIdentity:
        return False
    if mp.kind is not Kind.REQUEST or mp.endpoint != ENDPOINT:
        return False
    if store.exists(str(response_path(mp.writer, mp.reader, mp.app, mp.endpoint, mp.id))):
        return False
    try:
        with store.open(path) as f:
            return read_header(f, path=path).expires > now
    except FedboxError:
        return False


def wait_for_run(
    store: Store, aggregator: str, me: str, project: str, timeout: float | None = None
) -> str | None:
    """Block until a live run appears (woken by file events); None after ``timeout``."""
    inbox = outbox_dir(aggregator, me)
    deadline = None if timeout is None else time.monotonic() + timeout
    with store.watch(inbox, (".request",)) as watcher:
        while True:
            name = find_live_run(store, aggregator, me, project)
            if name is not None:
                logger.info("found run %s", name)
                return name
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            watcher.next_batch(remaining)
