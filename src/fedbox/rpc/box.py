"""A participant: one identity on one store, its private state, and the watch loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from fedbox.datasite.identity import validate_app_name
from fedbox.datasite.paths import (
    OUTBOX_PREFIX,
    Kind,
    MessagePath,
    parse_message_path,
    response_path,
)
from fedbox.datasite.workspace import Workspace
from fedbox.errors import CorruptMessage, CryptoError, DecryptError, InvalidIdentity, NotFound
from fedbox.rpc.audit import AuditLog
from fedbox.rpc.envelope import Header, read_header
from fedbox.rpc.futures import Future, FutureRecord, FutureStore
from fedbox.rpc.messages import Response
from fedbox.rpc.parts import default_chunk_size, default_chunk_threshold
from fedbox.rpc.payload import Payload, open_payload
from fedbox.rpc.quarantine import quarantine
from fedbox.rpc.sealing import Sealer
from fedbox.store import Store
from fedbox.store.polling import AdaptivePollWatcher

if TYPE_CHECKING:
    from fedbox.rpc.app import App

__all__ = ["DEFAULT_CLEANUP_EXPIRY", "DEFAULT_EXPIRY", "Box"]

logger = logging.getLogger(__name__)

DEFAULT_EXPIRY = 24 * 3600.0
"""Seconds a request stays valid unless the sender says otherwise."""
DEFAULT_CLEANUP_EXPIRY = 24 * 3600.0
"""Age after which the cleanup job removes message files (the audit rows stay)."""

Clock = Callable[[], float]
_SUFFIXES = (".request", ".response")


class Box:
    """One identity's connection to a store. Build it with :func:`connect`.

    A single watcher per box feeds both directions: requests go to the started app
    they name, responses wake whoever waits on their future. Nothing runs in the
    background until an app starts or someone waits.

    With ``encrypt=True`` every request and response body is end-to-end encrypted
    (``sealer`` holds the keys) and plaintext requests are refused with 403.

    Bodies larger than ``chunk_threshold`` bytes are stored as blobs of ``chunk_size``
    bytes (``fedbox.rpc.parts``; defaults from ``$FEDBOX_CHUNK_THRESHOLD`` and
    ``$FEDBOX_CHUNK_SIZE``, else 512 MiB and 64 MiB).
    """

    def __init__(
        self,
        store: Store,
        workspace: Workspace,
        *,
        clock: Clock = time.time,
        cleanup_expiry: float = DEFAULT_CLEANUP_EXPIRY,
        handler_threads: int = 8,
        encrypt: bool = False,
        chunk_threshold: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.store = store
        self.workspace = workspace.ensure()
        self.email = workspace.email
        # First: if the keys are unusable, fail before any database is opened.
        self.sealer = Sealer(store, self.workspace.state_dir, self.email) if encrypt else None
        self.clock = clock
        self.cleanup_expiry = cleanup_expiry
        self.handler_threads = handler_threads
        self.chunk_threshold = default_chunk_threshold(chunk_threshold)
        self.chunk_size = default_chunk_size(chunk_size)
        self.audit = AuditLog(workspace.audit_db)
        self.futures = FutureStore(workspace.futures_db)
        self._apps: dict[str, App] = {}
        self._arrived: set[str] = set()
        self._cond = threading.Condition()
        self._watch_lock = threading.Lock()
        self._watch_thread: threading.Thread | None = None
        self._watcher = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Box {self.email} on {self.store!r}>"

    @property
    def encrypt(self) -> bool:
        """Whether this box encrypts what it sends and refuses plaintext requests."""
        return self.sealer is not None

    def app(self, name: str) -> App:
        """The app ``name`` of this identity (one object per name, created on first use)."""
        from fedbox.rpc.app import App

        validate_app_name(name)
        if name not in self._apps:
            self._apps[name] = App(self, name)
        return self._apps[name]

    # -- the watch loop ------------------------------------------------------------

    def _ensure_watching(self) -> None:
        """Start the shared watcher once; callers list their backlog only after this."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        with self._watch_lock:
            if self._watch_thread is not None:
                return
            me = self.email
            self._watcher = self.store.watch(
                "",
                _SUFFIXES,
                folders=lambda name: name.startswith(OUTBOX_PREFIX) and name.endswith(f"_to_{me}"),
            )
            if isinstance(self._watcher, AdaptivePollWatcher):
                self._watcher.list_when(self._serving)
            self._watch_thread = threading.Thread(
                target=self._watch_loop, name=f"fedbox-watch-{self.email}", daemon=True
            )
            self._watch_thread.start()

    def _serving(self) -> bool:
        """Whether requests matter: only then must a polling watcher list our inboxes."""
        return any(app.running for app in list(self._apps.values()))

    def _watch_loop(self) -> None:
        """Dispatch arrivals until closed; one failing file never stops the loop."""
        assert self._watcher is not None
        for batch in self._watcher:
            for path in batch:
                try:
                    self._on_file(path)
                except Exception:
                    logger.exception("could not dispatch %s; continuing", path)

    def _on_file(self, path: str) -> None:
        top = path.split("/", 1)[0]
        if not (top.startswith(OUTBOX_PREFIX) and top.endswith(f"_to_{self.email}")):
            return
        try:
            mp = parse_message_path(path)
        except InvalidIdentity as exc:
            self._refuse_bad_path(path, str(exc))
            return
        if mp.kind is Kind.RESPONSE:
            self._notify_arrival([mp.id])
        elif mp.app in self._apps:
            self._apps[mp.app]._on_request_file(mp)

    def _refuse_bad_path(self, path: str, reason: str) -> None:
        """A file whose very name is a path trick: quarantine it, answer nobody."""
        logger.warning("quarantining %s: %s", path, reason)
        quarantine(self.store, path)
        self.audit.record_refused(
            id=PurePosixPath(path).name,
            peer="?",
            app="?",
            endpoint="?",
            status=400,
            at=self.clock(),
            note=f"bad path: {reason}",
        )

    def _notify_arrival(self, ids: Iterable[str]) -> None:
        with self._cond:
            self._arrived.update(ids)
            self._cond.notify_all()

    # -- responses -------------------------------------------------------------------

    def _response_path(self, record: FutureRecord) -> str:
        return str(
            response_path(self.email, record.recipient, record.app, record.endpoint, record.id)
        )

    def _response_arrived(self, record: FutureRecord) -> bool:
        if record.id in self._arrived:
            return True
        if self.store.exists(self._response_path(record)):
            self._notify_arrival([record.id])
            return True
        return False

    def _read_response(self, record: FutureRecord, *, stream: bool = False) -> Response | None:
        """Read, verify (decrypt) and log a response; None while it has not arrived.

        With ``stream=True`` a 200 response comes with its ``payload`` to read (verified
        as it is read; a damaged one is quarantined then) instead of its ``body``.
        Raises CorruptMessage or DecryptError (the file is then quarantined).
        """
        path = self._response_path(record)
        expected = MessagePath(
            record.recipient, self.email, record.app, record.endpoint, record.id, Kind.RESPONSE
        )
        try:
            f = self.store.open(path)
        except NotFound:
            return None
        try:
            header = read_header(f, path=path)
            problem = _header_mismatch(header, expected)
            if problem:
                raise CorruptMessage(f"response refused: {problem}", path, record.id)
            if header.status is None:
                raise CorruptMessage("response has no status", path, record.id)
            self._check_response_sealing(header, path)
            payload: Payload | None = open_payload(
                self.store,
                f,
                header,
                writer=record.recipient,
                reader=self.email,
                sealer=self.sealer,
                path=path,
                on_failure=lambda exc: self._damaged_response(record, path, exc),
            )
        except (CorruptMessage, CryptoError) as exc:
            f.close()
            self._damaged_response(record, path, exc)
            raise
        except BaseException:
            f.close()
            raise
        assert payload is not None
        body = b""
        if not stream or header.status != 200 or not payload.size:
            with payload:
                body = payload.read()  # a damaged body is quarantined by on_failure
            payload = None
        if record.status is None:
            now = self.clock()
            self.futures.resolve(record.id, header.status, now)
            self.audit.record_answer(
                id=record.id,
                direction="out",
                status=header.status,
                answered=now,
                response_size=header.body_len,
            )
        return Response(
            body=body,
            status=header.status,
            headers=dict(header.headers),
            id=header.id,
            sender=header.sender,
            created=header.created,
            payload=payload,
        )

    def _damaged_response(self, record: FutureRecord, path: str, exc: Exception) -> None:
        quarantine(self.store, path)
        self.audit.record_answer(
            id=record.id,
            direction="out",
            status=400,
            answered=self.clock(),
            note=f"response quarantined: {exc}",
        )

    def _check_response_sealing(self, header: Header, path: str) -> None:
        """An encrypting box takes a plaintext response only as a refusal (status >= 400:
        a reason, never data), as a peer answers a request it could not open; anything
        else in the clear could be forged by the carrier.
        """
        if header.enc is not None:
            if self.sealer is None:
                raise DecryptError(
                    f"the response is encrypted but {self.email} connected without "
                    "encryption; connect with encrypt=True to read it",
                    path,
                    header.id,
                )
            return
        if self.sealer is not None and header.status is not None and header.status < 400:
            raise DecryptError(
                f"plaintext response with status {header.status} refused: {self.email} "
                "requires encryption",
                path,
                header.id,
            )

    def future(self, id: str) -> Future:
        """Re-attach to a request sent earlier, by this or a previous process."""
        record = self.futures.get(id)
        if record is None:
            raise KeyError(f"no request with id {id!r} was sent by {self.email}")
        return Future(self, record)

    def wait(
        self, futures: Iterable[Future], timeout: float | None = None, *, return_when: str = "all"
    ) -> tuple[list[Future], list[Future]]:
        """Wait on many futures at once: ``(done, pending)`` when all (or, with
        ``return_when="any"``, the first) are done, or when ``timeout`` passes.

        Only the watcher reports arrivals, so no store I/O (network, on a remote store)
        runs under the lock. A polling watcher is told which responses are due: it finds
        them whether or not they landed before it started, by name while few are due.
        Event watchers report only what is new, so the store is asked once per future
        before waiting.
        """
        if return_when not in ("all", "any"):
            raise ValueError("return_when must be 'all' or 'any'")
        pending = list(futures)
        self._ensure_watching()
        watcher = self._watcher
        if not isinstance(watcher, AdaptivePollWatcher):
            for fut in pending:
                fut.done()  # responses that landed before the watcher started
            return self._wait_arrivals(pending, timeout, return_when)
        due = [self._response_path(f.record) for f in pending if f.id not in self._arrived]
        watcher.expect(due)
        try:
            return self._wait_arrivals(pending, timeout, return_when)
        finally:
            watcher.forget(due)

    def _wait_arrivals(
        self, pending: list[Future], timeout: float | None, return_when: str
    ) -> tuple[list[Future], list[Future]]:
        done: list[Future] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                still = []
                for fut in pending:
                    (done if fut.id in self._arrived else still).append(fut)
                pending = still
                if not pending or (return_when == "any" and done):
                    return done, pending
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return done, pending
                self._cond.wait(remaining)

    def close(self) -> None:
        """Stop every app, the watcher and the databases. Idempotent."""
        if self._closed:
            return
        for app in list(self._apps.values()):
            app.stop()
        self._closed = True
        if self._watcher is not None:
            self._watcher.close()
        if self._watch_thread is not None:
            self._watch_thread.join(timeout=5)
        self.audit.close()
        self.futures.close()
        self.store.close()

    def __enter__(self) -> Box:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _header_mismatch(header, expected: MessagePath) -> str | None:
    """Why a header disagrees with the path it was found at, or None.

    The path is the authority: on a hub only its writer can create files in an outbox,
    so a header claiming another sender or recipient is forged or misplaced.
    """
    if header.kind != expected.kind.value:
        return f"kind is {header.kind!r}, file is a {expected.kind.value}"
    if header.id != expected.id:
        return f"header id {header.id} differs from file name {expected.id}"
    if header.recipient != expected.reader:
        return f"addressed to {header.recipient}, not {expected.reader}"
    if header.sender != expected.writer:
        return f"claims sender {header.sender} but sits in {expected.writer}'s outbox"
    if header.app != expected.app or header.endpoint != expected.endpoint:
        return (
            f"header names {header.app}/{header.endpoint}, path {expected.app}/{expected.endpoint}"
        )
    return None
