"""A signal the kernel hands to another thread still reaches a main thread that waits:
``fedbox bridge serve`` once kept serving 20 minutes after its SIGTERM, its main thread
blocked in an untimed ``Event.wait()`` while the signal had landed on a worker thread."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import signal, sys, threading, time
from fedbox.interruptible import wait_interruptibly

def stop(*_):
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, stop)
worker = threading.Thread(target=time.sleep, args=(60,), daemon=True)
worker.start()
# The kernel's choice, made here on purpose: the signal lands on the worker thread.
threading.Timer(0.3, signal.pthread_kill, (worker.ident, signal.SIGTERM)).start()
try:
    WAIT(threading.Event())
except KeyboardInterrupt:
    print("stopped")
"""


def _run(wait: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("WAIT", wait)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_a_signal_landing_on_another_thread_stops_the_waiting_main_thread() -> None:
    """With ``threading.Event().wait()`` in its place, the script never ends."""
    done = _run("wait_interruptibly")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
