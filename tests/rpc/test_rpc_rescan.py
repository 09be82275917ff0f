"""Nothing waits for a restart (issue 11.2): a serving app lists its inboxes again every
``rescan_interval``, so a file no event reported and a request whose handling failed
before its claim are answered while the app keeps running."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from echo_app import serve_echo
from small_disk import fill, small_tmpfs
from waiting import wait_until

import fedbox


@pytest.fixture(autouse=True)
def quick_rescans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDBOX_RESCAN_INTERVAL", "0.2")


def test_a_request_linked_into_the_inbox_is_answered_without_a_restart(
    root: Path, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"  # same filesystem, outside the store
    with fedbox.connect(staging, "a@x.org", encrypt=False) as a:
        fut = a.app("t").send("b@x.org", "echo", b"linked")
    rel = next(p.relative_to(staging) for p in staging.rglob("*.request"))
    (root / rel).parent.mkdir(parents=True)  # before b watches: no folder event
    with fedbox.connect(root, "b@x.org", encrypt=False) as b:
        serve_echo(b)
        os.link(staging / rel, root / rel)  # inotify reports IN_CREATE only
        os.unlink(staging / rel)  # one link again, like any request
        with fedbox.connect(root, "a@x.org", encrypt=False) as a:
            response = a.app("t").future(fut.id).wait(timeout=30)
    assert (response.status, response.body) == (200, b"linked")


def test_a_request_that_failed_before_its_claim_is_answered_once_the_cause_is_gone(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with (
        small_tmpfs(tmp_path / "disk") as disk,
        fedbox.connect(root, "b@x.org", state_dir=disk / "b", encrypt=False) as b,
        fedbox.connect(root, "a@x.org", encrypt=False) as a,
    ):
        serve_echo(b)
        filler = fill(disk)  # b's audit log cannot take the claim
        fut = a.app("t").send("b@x.org", "echo", b"after the disk was full")
        wait_until(lambda: "database or disk is full" in caplog.text, "a full disk", 30)
        assert not fut.done()
        filler.unlink()
        response = fut.wait(timeout=30)
    assert (response.status, response.body) == (200, b"after the disk was full")
