"""The box remembers response arrivals in bounded memory (issue 11.16): a participant that
lives for millions of round trips must not keep one id per response forever."""

from __future__ import annotations

from pathlib import Path

import pytest

import fedbox
from fedbox.rpc import box as box_module


def _serving(root: Path) -> fedbox.Box:
    b = fedbox.connect(root, "b@x.org", encrypt=False)
    server = b.app("t")
    server.on_request("echo")(lambda req: req.body)
    server.start()
    return b


def test_responses_read_are_forgotten(root: Path) -> None:
    with fedbox.connect(root, "a@x.org", encrypt=False) as a, _serving(root) as _:
        app = a.app("t")
        for i in range(300):
            assert app.send("b@x.org", "echo", b"%d" % i).wait(timeout=30).body == b"%d" % i
        futures = [app.send("b@x.org", "echo", b"x") for _ in range(50)]
        done, pending = a.wait(futures, timeout=30)
        assert not pending
        assert all(f.result().status == 200 for f in done)
        # Read responses are dropped (a file event that comes after the read may bring
        # back a few; the bound below catches those).
        assert a.arrivals_remembered <= 50


def test_unread_responses_are_remembered_up_to_a_bound(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(box_module, "RECENT_ARRIVALS", 20)
    with fedbox.connect(root, "a@x.org", encrypt=False) as a, _serving(root) as _:
        app = a.app("t")
        futures = [app.send("b@x.org", "echo", b"x") for _ in range(200)]
        _, pending = a.wait(futures, timeout=60)
        assert not pending  # awaited arrivals are never forgotten while awaited
        assert a.arrivals_remembered <= 20
        assert all(f.done() for f in futures)  # the store still answers
        last = app.send("b@x.org", "echo", b"y")
        assert last.wait(timeout=30).body == b"y"
        assert a.arrivals_remembered <= 20


def test_a_response_found_missing_is_seen_when_it_lands(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: a response looked for in vain is remembered as missing, so waiting again
    asks the watcher, not the disk; when it lands the watcher says so. The bound on what
    is remembered only costs looks at the disk."""
    monkeypatch.setattr(box_module, "RECENT_ABSENCES", 3)
    with fedbox.connect(root, "a@x.org", encrypt=False) as a:
        app = a.app("t")
        futures = [app.send("b@x.org", "echo", b"%d" % i) for i in range(5)]
        done, pending = a.wait(futures, timeout=0.2, return_when="any")  # nobody serves yet
        assert not done and len(pending) == 5
        assert not any(f.done() for f in futures)
        with _serving(root):
            done, pending = a.wait(futures, timeout=60)
            assert not pending
            assert [f.result().body for f in futures] == [b"%d" % i for i in range(5)]


def test_waiting_again_on_read_and_forgotten_responses_finds_them(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests sent while the watcher runs are waited on without a look in the store,
    but only until their reply arrived: once read or forgotten, waiting looks again."""
    monkeypatch.setattr(box_module, "RECENT_ARRIVALS", 5)
    with fedbox.connect(root, "a@x.org", encrypt=False) as a, _serving(root) as _:
        app = a.app("t")
        app.send("b@x.org", "echo", b"start the watcher").wait(timeout=30)
        futures = [app.send("b@x.org", "echo", b"%d" % i) for i in range(30)]
        _, pending = a.wait(futures, timeout=60)
        assert not pending
        assert [f.result().body for f in futures] == [b"%d" % i for i in range(30)]
        _, pending = a.wait(futures, timeout=10)
        assert not pending


def test_requests_awaiting_a_report_are_remembered_up_to_a_bound(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(box_module, "UNREPORTED_LIMIT", 10)
    with fedbox.connect(root, "a@x.org", encrypt=False) as a:
        app = a.app("t")
        a.start_watching()
        futures = [app.send("b@x.org", "echo", b"x") for _ in range(40)]  # b is not serving
        with _serving(root) as _:
            _, pending = a.wait(futures, timeout=60)  # the forgotten ones are looked for
        assert not pending


def test_awaiting_hands_over_each_response_as_it_lands(root: Path) -> None:
    """Issue 20: an aggregator waits on a thousand replies and wakes for every few.
    ``awaiting`` hands over what landed since the last take (those that landed before
    it started at the first), so a wake costs what landed, not what is still awaited;
    a take that finds nothing waits, then gives up with an empty list."""
    with fedbox.connect(root, "a@x.org", encrypt=False) as a, _serving(root) as _:
        app = a.app("t")
        early = app.send("b@x.org", "echo", b"early")
        early.wait(timeout=30)
        with a.awaiting([early]) as arrivals:
            assert arrivals.take(0) == [early]  # landed before: the first take has it
            assert arrivals.take(0.05) == []  # nothing more: waited, then gave up
        futures = [app.send("b@x.org", "echo", b"%d" % i) for i in range(40)]
        taken: list[fedbox.Future] = []
        with a.awaiting(futures) as arrivals:
            while len(taken) < len(futures):
                landed = arrivals.take(30)
                assert landed, "every response lands within the wait"
                assert not set(landed) & set(taken), "each is handed over once"
                taken += landed
            assert arrivals.take(0) == []
        assert sorted(f.result().body for f in taken) == sorted(b"%d" % i for i in range(40))


def test_a_response_set_aside_after_it_landed_is_not_handed_over(root: Path) -> None:
    """A response reported and then set aside unread (a planted file) is pending again:
    a take that comes after does not count it as done."""
    with fedbox.connect(root, "a@x.org", encrypt=False) as a, _serving(root) as _:
        app = a.app("t")
        future = app.send("b@x.org", "echo", b"x")
        with a.awaiting([future]) as arrivals:
            future.wait(timeout=30)
            a.forget_arrival(future.id)
            assert arrivals.take(0) == []


def test_awaiting_anything_but_futures_is_a_type_error(root: Path) -> None:
    with fedbox.connect(root, "a@x.org", encrypt=False) as a:
        with pytest.raises(TypeError, match="not str"), a.awaiting(["an id"]):  # type: ignore[list-item]
            pass
        with pytest.raises(TypeError, match="not str"):
            a.wait(["an id"])  # type: ignore[list-item]
