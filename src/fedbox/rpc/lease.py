"""One live server per identity and app (issue 11.12).

Two processes serving the same identity's app would both handle every request. Two
guards stop the second one from starting, and it raises RuntimeError saying who holds
the app and how to stop it:

- in one state dir, an OS lock (``flock``) on ``{state_dir}/serving-{app}.lock``, which
  the kernel releases when its process dies, however it dies;
- across state dirs (and machines), whose only shared thing is the store, a lease at
  ``datasites/{email}/.fedbox/serving/{app}.json``: a random instance id, host, pid and
  the time it was last renewed. It is a dot-folder, so no listing or watcher sees it,
  yet it is read and written by path like any file. A lease renewed less than
  :data:`LEASE_TTL` seconds ago by another instance refuses the start; one left by a
  dead process on this host is taken over at once, one from another host once it is
  that old.

Refusing is the safe side: a duplicate server handles requests twice, a refused one
handles nothing until its operator acts on a clear message. A server that finds its
lease taken by another instance while it runs (it was suspended longer than the TTL, or
both started at the same instant) logs an error and stops serving, leaving the app to
the other one. A store that cannot hold the lease (unwritable) is warned about and
does not stop serving: the lock still guards the state dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from fedbox.datasite.paths import datasite_dir
from fedbox.datasite.workspace import create_private
from fedbox.errors import FedboxError, NotFound
from fedbox.rpc.workers import Periodic, WorkerPool
from fedbox.store import Store

__all__ = [
    "LEASE_RENEWAL",
    "LEASE_TTL",
    "ServingLease",
    "lease_path",
    "lease_stands",
    "read_lease",
    "served_apps",
]

logger = logging.getLogger(__name__)

LEASE_TTL = 60.0
"""Seconds after its last renewal that a lease from another host is considered dead."""
LEASE_RENEWAL = 20.0
"""Seconds between renewals (and checks that the lease is still ours)."""
EXIT_GRACE = 2.0
"""Seconds a server on this host is given to exit before a new one is refused."""


def lease_path(email: str, app: str) -> str:
    """Where the lease of ``email``'s server for ``app`` lives in the store."""
    return str(datasite_dir(email) / ".fedbox" / "serving" / f"{app}.json")


class ServingLease:
    """Held while an app serves: :meth:`acquire` at start, :meth:`release` at stop.

    ``on_lost`` is called (from the renewal thread) when another instance took the lease.
    With a ``pool``, renewals run on its threads instead of one of the lease's own.
    """

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        email: str,
        app: str,
        on_lost: Callable[[], None],
        pool: WorkerPool | None = None,
    ) -> None:
        self._store = store
        self._workers = pool
        self._renewal: Periodic | None = None
        self._lock_path = state_dir / f"serving-{app}.lock"
        self._email = email
        self._app = app
        self._path = lease_path(email, app)
        self._on_lost = on_lost
        self._instance = secrets.token_hex(8)
        self._started = time.time()
        self._lock_file: IO[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<ServingLease {self._app!r} of {self._email} instance {self._instance}>"

    @property
    def instance(self) -> str:
        """This server's random id: the claims it makes in the audit log carry it."""
        return self._instance

    def acquire(self) -> None:
        """Take the lock and the lease, or raise RuntimeError naming who holds them."""
        self._lock()
        try:
            other = self._holder()
            if other is not None and self._alive(other) and not self._goes_soon(other):
                raise RuntimeError(
                    f"{self._email} already serves app {self._app!r} from another process: "
                    f"{_describe(other)}. Stop that process (its lease at {self._path} "
                    f"then goes at once), or wait until it is {LEASE_TTL:.0f} s old if "
                    "that process is gone; running both would handle every request twice"
                )
            if other is not None:
                logger.warning("taking over the lease of a dead server: %s", _describe(other))
            self._write()
        except BaseException:
            self._unlock()
            raise
        self._stop.clear()
        if self._workers is not None:
            self._renewal = Periodic(self._workers, LEASE_RENEWAL, self._renew)
            return
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"fedbox-lease-{self._app}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Give up the lease (if still ours) and the lock. Idempotent."""
        self._stop.set()
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            renewal.cancel()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._lock_file is None:
            return
        with contextlib.suppress(FedboxError, OSError):
            holder = self._holder()
            if holder is not None and holder.get("instance") == self._instance:
                self._store.delete(self._path)
        self._unlock()

    # -- the local lock --------------------------------------------------------------

    def _lock(self) -> None:
        f = open(create_private(self._lock_path), "ab")  # noqa: SIM115  # held open while serving
        if not _flock_within(f, EXIT_GRACE):  # a predecessor killed a moment ago lets go
            f.close()
            raise RuntimeError(
                f"{self._email} already serves app {self._app!r} with the state dir "
                f"{self._lock_path.parent} (it holds {self._lock_path}); stop that "
                "process first: running both would handle every request twice"
            )
        self._lock_file = f

    def _unlock(self) -> None:
        f, self._lock_file = self._lock_file, None
        if f is not None:
            f.close()  # closing releases the flock

    # -- the lease in the store ------------------------------------------------------

    def _holder(self) -> dict[str, Any] | None:
        """The lease as another instance (or we) last wrote it; None if there is none."""
        return read_lease(self._store, self._email, self._app)

    def _goes_soon(self, lease: dict[str, Any]) -> bool:
        """Whether a holder on this host exits within :data:`EXIT_GRACE` s: a server
        restarted right after a kill -9 of its parent (``simulate``) meets its
        predecessor, which dies with that parent a moment later."""
        if lease.get("host") != socket.gethostname():
            return False
        deadline = time.monotonic() + EXIT_GRACE
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if not self._alive(lease):
                return True
        return False

    def _alive(self, lease: dict[str, Any]) -> bool:
        """Whether another instance's lease still stands."""
        return lease.get("instance") != self._instance and lease_stands(lease)

    def _write(self) -> None:
        lease = {
            "instance": self._instance,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started,
            "renewed": time.time(),
        }
        try:
            self._store.put(self._path, json.dumps(lease).encode())
        except (FedboxError, OSError) as exc:
            logger.warning(
                "cannot write the serving lease %s (%s): a second server for %s with "
                "another state dir would not be detected",
                self._path,
                exc,
                self._email,
            )

    def _renew_loop(self) -> None:
        while not self._stop.wait(LEASE_RENEWAL):
            self._renew()

    def _renew(self) -> None:
        """Write the lease again if it is still ours; stop serving if it is not."""
        if self._stop.is_set():
            return
        try:
            holder = self._holder()
        except (FedboxError, OSError) as exc:
            logger.warning("cannot read the serving lease %s: %s", self._path, exc)
            return
        if holder is not None and holder.get("instance") != self._instance:
            logger.error(
                "another server took app %r of %s: %s; this one (pid %d) stops serving",
                self._app,
                self._email,
                _describe(holder),
                os.getpid(),
            )
            self._stop.set()
            self._on_lost()
            return
        self._write()


def served_apps(state_dir: Path) -> list[str]:
    """The apps a server has run for from ``state_dir`` (it keeps their lock files)."""
    prefix, suffix = "serving-", ".lock"
    return sorted(p.name[len(prefix) : -len(suffix)] for p in state_dir.glob(f"{prefix}*{suffix}"))


def lease_stands(lease: dict[str, Any]) -> bool:
    """Whether a lease's server looks alive: renewed within :data:`LEASE_TTL`, and, on
    this host, its process still running."""
    renewed = lease.get("renewed")
    if not isinstance(renewed, int | float) or time.time() - renewed > LEASE_TTL:
        return False
    pid = lease.get("pid")
    if lease.get("host") == socket.gethostname() and isinstance(pid, int):
        return _pid_alive(pid)
    return True


def read_lease(store: Store, email: str, app: str) -> dict[str, Any] | None:
    """The lease of ``email``'s server for ``app`` as last written; None if there is
    none or it is unreadable."""
    try:
        data = json.loads(store.read(lease_path(email, app)))
    except NotFound:
        return None
    except ValueError:
        logger.warning("ignoring an unreadable serving lease at %s", lease_path(email, app))
        return None
    return data if isinstance(data, dict) else None


def _describe(lease: dict[str, Any]) -> str:
    renewed = lease.get("renewed")
    age = f"{time.time() - renewed:.0f} s ago" if isinstance(renewed, int | float) else "?"
    return (
        f"instance {lease.get('instance')} (pid {lease.get('pid')} on host "
        f"{lease.get('host')}, lease renewed {age})"
    )


def _flock_within(f: IO[bytes], seconds: float) -> bool:
    """Take an exclusive flock on ``f``, trying for ``seconds``; False if still held."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (killed, not yet reaped, as the clients of a
    killed ``simulate`` briefly are) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: kill(0) is all we know
    return state not in ("Z", "X")
