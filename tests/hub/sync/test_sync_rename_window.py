"""A worker that finds a synced file gone before the watcher has said so (the path was
queued for another reason just as it was renamed away) must not delete it on the hub at
once: the rename's other half, still in the watcher's queue, could no longer pair."""

from __future__ import annotations

import time

from fedbox.hub.sync.journal import Synced
from fedbox.hub.sync.renames import WINDOW, Renames

BASE = Synced(version=4, sha256="0" * 64, size=15, mtime_ns=1_796_461_503_184_637_278)


def test_a_removal_found_by_a_worker_first_still_pairs_with_its_new_name() -> None:
    renames = Renames()
    assert renames.wait_left("dir/f2.txt", BASE) == WINDOW  # not reported yet: wait
    renames.went("dir/f2.txt", BASE)  # the watcher catches up: still one record
    renames.came("moved/f2.txt", BASE.size, BASE.mtime_ns)
    assert renames.take("moved/f2.txt") == "dir/f2.txt"
    assert renames.is_source("dir/f2.txt")


def test_the_window_a_worker_starts_is_started_once() -> None:
    renames = Renames()
    assert renames.wait_left("gone.txt", BASE) == WINDOW
    assert 0 < renames.wait_left("gone.txt", BASE) <= WINDOW
    time.sleep(WINDOW)
    assert renames.wait_left("gone.txt", BASE) == 0  # then the delete goes, no new wait
    renames.settled("gone.txt")
    assert renames.wait_left("gone.txt", BASE) == WINDOW  # a later removal: its own window
