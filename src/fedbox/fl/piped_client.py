"""An FL job's client role inside the owner's sandbox: ``python -m fedbox.fl.piped_client
APP_DIR``.

The owner's daemon (:mod:`fedbox.rds.fl_jobs`) holds the keys and talks to the store;
this process has neither. It reads Flower messages as frames on stdin, runs the app's
ClientApp on them with :class:`~fedbox.fl.runner.NodeRunner` (Flower's own serde, one
Context per run kept in the job's state folder), and writes each reply as a frame on
stdout. Whatever the app prints goes to stderr, the job's log. It exits after
answering the aggregator's stop message, or when its stdin ends.

Who it plays comes from the daemon (``$FEDBOX_DATASITE``, the owner) and from the
package (:data:`RUN_FILE`: the run's datasites, in partition order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import IO

from fedbox.fl.client import DATA_DIR_ENV, client_app_loader, node_config_for
from fedbox.fl.config import load_app_config, node_id_for
from fedbox.fl.contexts import ContextStore
from fedbox.fl.runner import NodeRunner
from fedbox.fl.syft_compat import provide_syft_flwr
from fedbox.rds.fl_jobs import DATASITE_ENV
from fedbox.rds.pipes import REPLY_OK, REPLY_REFUSED, read_frame, write_frame
from fedbox.rds.sandbox import STATE_DIR_ENV

__all__ = ["ENTRY", "RUN_FILE", "main", "serve_pipes"]

RUN_FILE = "fedbox-fl.json"
"""Written into the package by ``fedbox job submit-fl``: ``{"datasites": [...]}``."""
ENTRY = "python -m fedbox.fl.piped_client ."
"""The entry command of an FL job's package (its code dir is the app dir)."""


def serve_pipes(runner: NodeRunner, requests: IO[bytes], replies: IO[bytes]) -> int:
    """Answer frames until the stop message or the end of ``requests``; 0."""
    while (body := read_frame(requests)) is not None:
        try:
            outcome = runner.handle(body)
        except Exception as exc:  # the ClientApp's own errors are Error replies already:
            # this is a body that is no Flower message; refuse it, keep serving the run
            why = f"not a Flower message: {type(exc).__name__}: {exc}"
            write_frame(replies, REPLY_REFUSED + why.encode())
            continue
        write_frame(replies, REPLY_OK + bytes(outcome.body))
        if outcome.stop:
            break
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedbox.fl.piped_client")
    parser.add_argument("app_dir", type=Path)
    args = parser.parse_args(argv)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the app's prints must not corrupt the frames
    sys.stdout = sys.stderr
    email = os.environ[DATASITE_ENV]
    datasites = json.loads((args.app_dir / RUN_FILE).read_text())["datasites"]
    if email not in datasites:
        print(f"{email} is not among this run's datasites {datasites}", file=sys.stderr)
        return 2
    provide_syft_flwr()
    app = load_app_config(args.app_dir)
    data_dir = os.environ[DATA_DIR_ENV]
    runner = NodeRunner(
        client_app_loader(app),
        node_id_for(email),
        node_config_for(datasites.index(email), len(datasites), data_dir),
        ContextStore(os.environ[STATE_DIR_ENV]),
        app.run_config,
    )
    print(f"[fedbox] FL client of {app.fab_id} for {email}", file=sys.stderr, flush=True)
    return serve_pipes(runner, sys.stdin.buffer, replies)


if __name__ == "__main__":
    sys.exit(main())
