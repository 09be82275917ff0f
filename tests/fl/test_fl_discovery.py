"""Which run a datasite serves when it is told only the aggregator and the project."""

from __future__ import annotations

import uuid
from pathlib import Path

from fedbox.fl.discovery import app_name_prefix, find_live_run
from fedbox.fl.joining import ENDPOINT
from fedbox.store import LocalStore
from fedbox.testing import write_request

AGG, ME = "agg@x.org", "me@x.org"


def test_the_newest_run_with_a_request_in_date_is_the_live_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    try:
        old, new = (f"{app_name_prefix(AGG, 'proj')}{t}" for t in (1_700_000_000, 1_700_000_100))
        write_request(store, AGG, ME, old, ENDPOINT, b"x", expires_in=600)
        assert find_live_run(store, AGG, ME, "proj") == old
        write_request(store, AGG, ME, new, ENDPOINT, b"x", expires_in=-1)  # its stop, expired
        assert find_live_run(store, AGG, ME, "proj") == old
        write_request(store, AGG, ME, new, ENDPOINT, b"x", expires_in=600)
        assert find_live_run(store, AGG, ME, "proj") == new
        assert find_live_run(store, AGG, ME, "other") is None
    finally:
        store.close()


def test_a_run_whose_only_unanswered_request_expired_is_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    try:
        run = f"{app_name_prefix(AGG, 'proj')}1700000000"
        write_request(store, AGG, ME, run, ENDPOINT, b"x", expires_in=-1)
        write_request(store, AGG, ME, run, "other-endpoint", b"x", expires_in=600)
        assert find_live_run(store, AGG, ME, "proj") is None
        folder = tmp_path / f"syft_outbox_inbox_{AGG}_to_{ME}/{run}/rpc/{ENDPOINT}"
        (folder / f"{uuid.uuid4()}.request").write_text("not a message")
        assert find_live_run(store, AGG, ME, "proj") is None
    finally:
        store.close()
