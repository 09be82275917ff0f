"""Many boxes in one process on one SharedServing: one watcher and one pool of handler
threads for all of them, each request still answered exactly once (issue 20)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

import fedbox
from fedbox.datasite.paths import inbox_reader, is_inbox_of, outbox_dir
from fedbox.rpc import Box, Request
from fedbox.rpc.shared import SharedServing
from fedbox.rpc.workers import Periodic, WorkerPool
from fedbox.store.registry import open_store


def _fedbox_threads() -> Counter[str]:
    """fedbox's threads (watchers, handlers, lease renewals, cleanups), by name without
    their number."""
    names = (t.name for t in threading.enumerate() if t.name.startswith("fedbox-"))
    return Counter(n.rstrip("0123456789") for n in names)


def _serve(box: Box, handled: Counter[str], lock: threading.Lock) -> None:
    app = box.app("echo")

    @app.on_request("say")
    def say(request: Request) -> bytes:
        with lock:
            handled[box.email] += 1
        return box.email.encode() + b":" + request.body

    app.start()


def test_fifty_boxes_share_one_watcher_and_answer_each_request_once(root: Path) -> None:
    shared = SharedServing(open_store(root, fsync=False), threads=3)
    handled: Counter[str] = Counter()
    lock = threading.Lock()
    emails = [f"site-{i}@x.org" for i in range(50)]
    boxes: list[Box] = []
    try:
        with fedbox.connect(root, "caller@x.org") as caller:
            boxes.append(fedbox.connect(root, emails[0], shared=shared))
            _serve(boxes[0], handled, lock)
            with_one = _fedbox_threads()
            for email in emails[1:]:
                boxes.append(fedbox.connect(root, email, shared=shared))
                _serve(boxes[-1], handled, lock)
            with_fifty = _fedbox_threads()
            assert with_fifty == with_one, "a box brings no thread of its own"
            assert with_one["fedbox-shared-watch"] == 1
            assert with_one["fedbox-shared-"] == 3  # the pool
            assert shared.attached == 50

            futures = caller.app("echo").broadcast(emails * 2, "say", b"hi")
            done, pending = caller.wait(futures, timeout=60)
            assert not pending
            bodies = Counter(f.result().body for f in done)
            assert bodies == Counter({f"{e}:hi".encode(): 2 for e in emails})
            assert handled == Counter({e: 2 for e in emails})

            # A file reported again (a rescan, a second event) is not handled again.
            first = futures[0]
            request = next(root.glob(f"*_to_{emails[0]}/echo/rpc/say/{first.id}.request"))
            boxes[0].dispatch(request.relative_to(root).as_posix())
            again = caller.app("echo").send(emails[0], "say", b"later").wait(timeout=60)
            assert again.body == f"{emails[0]}:later".encode()
            assert handled[emails[0]] == 3
    finally:
        for box in boxes:
            box.close()
        shared.close()
    assert shared.attached == 0
    assert not any(t.name.startswith("fedbox-shared") for t in threading.enumerate())


def test_a_periodic_job_runs_on_the_pool_until_cancelled() -> None:
    pool = WorkerPool(1, name="fedbox-test-pool")
    runs: list[int] = []
    third = threading.Event()

    def job() -> None:
        runs.append(threading.get_ident())
        if len(runs) == 3:
            third.set()
        if len(runs) == 2:
            raise OSError("a failing run is logged; the job runs again")

    job_runs = Periodic(pool, 0.01, job)
    try:
        assert third.wait(30)
        job_runs.cancel()
        after_cancel = len(runs)
        marker = threading.Event()
        Periodic(pool, 0.01, marker.set)  # a later job on the one thread: ours had its turn
        assert marker.wait(30)
        assert len(runs) == after_cancel
        assert set(runs) == {
            t.ident for t in threading.enumerate() if t.name.startswith("fedbox-test-pool")
        }
    finally:
        pool.close()


def test_an_inbox_names_its_reader() -> None:
    folder = outbox_dir("a@x.org", "c@y.org")
    assert inbox_reader(folder) == "c@y.org" and is_inbox_of(folder, "c@y.org")
    assert inbox_reader(outbox_dir("c@y.org", "a@x.org")) == "a@x.org"
    assert inbox_reader("datasites") is None


def test_given_its_readers_it_watches_their_inboxes_only(root: Path) -> None:
    """A box's own responses (in its outbox) are not watched, and a box of someone else
    cannot attach (its requests would go unseen); the readers' boxes are served."""
    shared = SharedServing(open_store(root, fsync=False), threads=1, readers=["site@x.org"])
    try:
        assert shared.watches(outbox_dir("caller@x.org", "site@x.org"))
        assert not shared.watches(outbox_dir("site@x.org", "caller@x.org"))
        assert not shared.watches(outbox_dir("caller@x.org", "other@x.org"))
        assert not shared.watches("datasites")
        with (
            fedbox.connect(root, "caller@x.org") as caller,
            fedbox.connect(root, "site@x.org", shared=shared) as site,
        ):
            _serve(site, Counter(), threading.Lock())
            reply = caller.app("echo").send("site@x.org", "say", b"hi").wait(timeout=60)
            assert reply.body == b"site@x.org:hi"
            with (
                fedbox.connect(root, "other@x.org") as other,
                pytest.raises(ValueError, match=r"other@x\.org is not among the readers"),
            ):
                shared.attach(other, lambda: True)
    finally:
        shared.close()
