"""The sync daemon's queue: a path queued while another thread ticks (retries) or waits
for idleness must still wake a worker. A single wake-up taken by the ticker left a
queued upload waiting forever once workers stopped waking each other after every path."""

from __future__ import annotations

import threading

from waiting import wait_until

from fedbox.hub.sync.worklist import WorkList


def test_every_queued_path_reaches_a_worker_while_others_tick_and_wait_for_idle() -> None:
    work = WorkList(on_cursor=lambda cursor: None)
    taken: list[str] = []

    def worker() -> None:
        while (item := work.take()) is not None:
            rel, hint = item
            taken.append(rel)
            work.done(rel, hint, settled=True)

    def ticker() -> None:
        while work.tick():
            pass

    def idler() -> None:
        while not stop.is_set():
            work.wait_idle(timeout=0.01)

    stop = threading.Event()
    threads = [threading.Thread(target=f, daemon=True) for f in (ticker, ticker, idler, worker)]
    for thread in threads:
        thread.start()
    try:
        for i in range(200):
            work.add(f"datasites/a@x.org/file-{i}")
            wait_until(lambda i=i: len(taken) == i + 1, f"path {i} to be taken", timeout=10)
    finally:
        stop.set()
        work.stop()
        for thread in threads:
            thread.join(timeout=10)
    assert taken == [f"datasites/a@x.org/file-{i}" for i in range(200)]
