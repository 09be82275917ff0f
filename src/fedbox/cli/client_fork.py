"""Client processes forked from ``fedbox simulate``, their imports already done (issue 20).

A client process started as ``python -m fedbox.cli.fl_commands run ...`` spends most of a
second importing fedbox's store and crypto, Flower and NumPy before it can answer the
run's invitation, and the aggregator imports the same modules. On a small machine those
imports, three or four times over, were most of the time before the first round. So
``simulate`` imports them once (:func:`preload`) and forks each client from itself: the
child shares the parent's imported modules and runs the same command line, through the
same Typer app, as the process it replaces would have. It remains a process of its own,
with its own session, environment, state dir and log, and is reaped like one
(:class:`ForkedProcess` answers what ``simulate`` asks of a :class:`subprocess.Popen`).

Forking is safe only while this process runs a single thread (a lock another thread
held at the fork stays held in the child forever): :func:`can_fork` says when it is,
and ``simulate`` starts its clients with ``subprocess`` otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import importlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from fedbox.cli.consoles import look_again
from fedbox.cli.lifeline import Lifeline
from fedbox.fl.threads import limit_loaded_blas

__all__ = ["CLIENT_PRELOAD", "ForkedProcess", "can_fork", "fork_child", "fork_client", "preload"]

CLIENT_PRELOAD = ("fedbox.fl.client", "fedbox.fl.joining", "fedbox.fl.node_config")
"""What a client process imports before it serves (the store, crypto and RPC come with
them, and Flower and NumPy with :mod:`fedbox.fl.client`); the aggregator needs most of
it too."""

_EXIT_CRASHED = 1


def can_fork() -> bool:
    """On Linux, with no thread but this one running: forking cannot then copy a lock
    that some other thread holds. (Elsewhere ``fork`` is unsafe or missing: macOS's
    system libraries do not survive it.)"""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def preload() -> None:
    """Import :data:`CLIENT_PRELOAD` and build the clients' Click command here, once, for
    every client forked after."""
    for name in CLIENT_PRELOAD:
        importlib.import_module(name)
    from fedbox.cli import fl_commands

    fl_commands.fl_command()


class ForkedProcess:
    """A forked child as ``simulate`` handles a :class:`subprocess.Popen`: ``wait`` (with
    ``subprocess.TimeoutExpired``), ``terminate``, ``kill`` and ``returncode`` (negative:
    the signal that ended it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            remaining = 0.05 if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(delay, remaining, 0.05)))
            delay *= 2
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_client(
    args: Sequence[str], env: Mapping[str, str], log: Path, lifeline: Lifeline
) -> ForkedProcess:
    """A child running ``python -m fedbox.cli.fl_commands ARGS``'s command in a session of
    its own, with ``env`` as its environment, its output appended to ``log`` and stdin
    closed, as :func:`subprocess.Popen` would start it. Call :func:`can_fork` first."""
    return fork_child(functools.partial(_run_command, args), log, lifeline, env=env)


def fork_child(
    main: Callable[[], object],
    log: Path,
    lifeline: Lifeline,
    *,
    env: Mapping[str, str] | None = None,
) -> ForkedProcess:
    """A child that runs ``main()`` and exits: 0 when it returns, the code of a
    ``SystemExit`` it raises, 1 (traceback in ``log``) for any other exception. It runs
    in a session of its own, with its output appended to ``log``, stdin closed, and
    ``env`` as its environment if given. Call :func:`can_fork` first."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child writes the parent's buffered output again
    gc.freeze()  # the child's collections then skip what it inherited, leaving it shared
    pid = os.fork()
    if pid == 0:
        _run_child(main, log, lifeline, env)
    gc.unfreeze()
    return ForkedProcess(pid)


def _run_child(
    main: Callable[[], object],
    log: Path,
    lifeline: Lifeline,
    env: Mapping[str, str] | None,
) -> NoReturn:
    """The child's whole life: it never returns into the parent's code, and leaves with
    ``os._exit`` once it ran its own exit handlers (an app's, as a new interpreter would),
    never the parent's (a temporary folder's removal, its database's)."""
    code = _EXIT_CRASHED
    try:
        os.setsid()  # a terminal's Ctrl-C reaches the aggregator only
        lifeline.forked()
        _redirect(log)
        _let_go_of_inherited_files(keep=(lifeline.child_fd,))
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        _fresh_process_state()
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _run_command(args: Sequence[str]) -> None:
    """The clients' Click command on ``args``, as ``python -m fedbox.cli.fl_commands``
    would run it (it always ends in ``SystemExit``)."""
    from fedbox.cli import fl_commands

    sys.argv = [fl_commands.__file__, *args]
    command = fl_commands.fl_command()
    command.main(args=list(args), prog_name=f"python -m {fl_commands.__name__}")


def _redirect(log: Path) -> None:
    """Output appended to ``log``, line by line as ``PYTHONUNBUFFERED`` had it; no stdin.
    Python's streams are made anew on those descriptors, as a new interpreter's are: the
    parent's may be something else (a test runner's capture, say)."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    sys.stdout = _line_writer(1, errors="strict")
    sys.stderr = _line_writer(2, errors="backslashreplace")


def _line_writer(fd: int, errors: str) -> io.TextIOWrapper:
    """A text stream on ``fd`` that writes each line as it ends."""
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw), errors=errors, line_buffering=True)


def _let_go_of_inherited_files(keep: tuple[int, ...]) -> None:
    """Every file the parent had open, but standard streams and ``keep``, turned into
    ``/dev/null`` here, as ``subprocess`` closes them for a new process: a lock the parent
    holds (its run record's ``flock``) must end with the parent, not with the last client.
    Replaced rather than closed, so no number the parent's objects still name is reused
    by a file of the child's."""
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != null and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, gone now
                os.fstat(fd)
                os.dup2(null, fd)
    os.close(null)


def _fresh_process_state() -> None:
    """What a new interpreter would start with and a fork copies instead: no exit
    handlers yet, logging not yet configured (the command configures it for a log
    file, not the parent's terminal), consoles that look at the log, the client's share
    of BLAS threads (the parent loaded NumPy before that share was in the environment),
    and NumPy's global generator seeded afresh if the parent had made it (a fork copies
    its state, so every client would draw the same numbers; Python's ``random`` reseeds
    itself in a forked child)."""
    atexit._clear()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    look_again()
    limit_loaded_blas()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:  # NumPy makes the generator when this is first imported
        numpy_random.seed()
