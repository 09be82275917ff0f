"""Running tests/rpc/peer.py as a one-shot process (importable: conftest modules are not,
since pytest may resolve ``import conftest`` to any of the suite's conftest files)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

PEER = Path(__file__).parent / "rpc" / "peer.py"
P = ParamSpec("P")


def run_peer(*args: str, timeout: float = 180) -> object:
    """Run a one-shot peer command in its own process and return its JSON output."""
    out = subprocess.run(
        [sys.executable, str(PEER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


class Child(Protocol):
    """What :func:`killed_at_exit` needs of a started process's handle."""

    proc: subprocess.Popen[str]

    def kill(self) -> None: ...


C = TypeVar("C", bound=Child)


@contextlib.contextmanager
def killed_at_exit(start: Callable[P, C]) -> Iterator[Callable[P, C]]:
    """``start``, as a fixture hands it to a test: every process it started and that
    still runs when the block exits is killed, so a failing test leaves none behind."""
    started: list[C] = []

    def start_and_remember(*args: P.args, **kwargs: P.kwargs) -> C:
        child = start(*args, **kwargs)
        started.append(child)
        return child

    try:
        yield start_and_remember
    finally:
        for child in started:
            if child.proc.poll() is None:
                child.kill()
