"""The serving half of an app: handlers, and for each request file the claim, the handler
run and the reply.

Handling is exactly-once per request, named by (sender, id): a request is claimed in the
audit log before its handler runs and recorded answered once its response is written, so
a backlog replayed after a restart or a file reported twice by the watcher never runs
twice, and a request claimed but never answered (the process died) is answered at the
next start. "Already answered" is read from our own log only, never from the presence of
a response file, which anyone who can write the folder could have planted.
"""

from __future__ import annotations

import io
import logging
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from fedbox.crypto import Identity, PublicBundle, UntrustedKey
from fedbox.datasite.identity import validate_endpoint
from fedbox.datasite.paths import Kind, MessagePath, outbox_dir, response_path
from fedbox.errors import CorruptMessage, CryptoError, DecryptError, NotFound, StoreError
from fedbox.interruptible import wait_interruptibly
from fedbox.rpc.backlog import Backlog, default_queue_depth
from fedbox.rpc.body import Body
from fedbox.rpc.cleanup import cleanup
from fedbox.rpc.envelope import Header, header_mismatch, read_header
from fedbox.rpc.lease import ServingLease
from fedbox.rpc.messages import Request, Response
from fedbox.rpc.outgoing import Batch, write_message
from fedbox.rpc.payload import Payload, open_payload
from fedbox.rpc.quarantine import quarantine
from fedbox.rpc.signing import sign_refusal
from fedbox.rpc.status import Status
from fedbox.rpc.workers import Periodic, WorkerPool

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["Handler", "Serving"]

logger = logging.getLogger(__name__)

Handler = Callable[[Request], "bytes | Body | Response | None"]


_RETRY_FIRST = 0.1
_RETRY_MAX = 30.0
"""Seconds between attempts to write a response that failed: doubling, up to this."""


class _Refused(Exception):
    """A request that will never reach a handler: answered ``status``, quarantined."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REFUSALS: tuple[tuple[type[Exception], Status, str], ...] = (
    (CorruptMessage, Status.BAD_REQUEST, "unreadable request"),
    (DecryptError, Status.BAD_REQUEST, "undecryptable request"),
    (UntrustedKey, Status.FORBIDDEN, "untrusted sender key"),
    (CryptoError, Status.FORBIDDEN, "unusable sender keys"),
)
"""The one map from what went wrong opening a request to its answer: most specific first
(DecryptError and UntrustedKey are CryptoErrors)."""


def _refusal(exc: BaseException) -> _Refused | None:
    """The refusal a failure to open or read a request stands for; None if it is not one."""
    for kind, status, what in _REFUSALS:
        if isinstance(exc, kind):
            return _Refused(status, f"{what}: {exc}")
    return None


class Serving:
    """Handlers of one app name and the threads that run them; mixed into
    :class:`~fedbox.rpc.app.App`."""

    def __init__(self, box: Box, name: str) -> None:
        self.box = box
        self.name = name
        self._handlers: dict[str, Handler] = {}
        self._streaming: set[str] = set()
        self._rerun: set[str] = set()
        self._signer: Identity | None = None
        self._backlog: Backlog | None = None
        self._lease: ServingLease | None = None
        self._stopped = threading.Event()
        self._cleanup_thread: threading.Thread | None = None
        self._cleanup_job: Periodic | None = None

    # -- registration ---------------------------------------------------------------

    def on_request(
        self, endpoint: str, *, stream: bool = False, rerun: bool = False
    ) -> Callable[[Handler], Handler]:
        """Register ``handler(request) -> bytes | Body | Response | None`` for ``endpoint``.

        ``bytes``, a :class:`~fedbox.rpc.body.Body` and ``None`` mean 200 with that body
        (empty for None); return a :class:`Response` to choose the status or headers.
        Raising answers 500 with the exception as the reason. With ``stream=True`` the
        handler reads ``request.payload`` instead of ``request.body``; if the payload
        turns out damaged while it reads, the request is answered 400 and quarantined.

        Every request gets exactly one response, even if this process dies while the
        handler runs. Such a request is claimed but unanswered when the app next starts:
        with ``rerun=True`` the handler runs again (say so when running twice does no
        harm, e.g. its effects are undone or repeated identically); by default it is
        answered 500 "interrupted" instead, so a handler never runs twice.
        """
        validate_endpoint(endpoint)
        if endpoint in self._handlers:
            raise ValueError(
                f"endpoint {endpoint!r} of app {self.name!r} already has a handler "
                f"({self._handlers[endpoint].__name__}); register each endpoint once"
            )

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError("use @app.on_request('endpoint') above a function taking a Request")
            self._handlers[endpoint] = handler
            if stream:
                self._streaming.add(endpoint)
            if rerun:
                self._rerun.add(endpoint)
            return handler

        return register

    # -- running ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._backlog is not None and not self._stopped.is_set()

    @property
    def backlog_peak(self) -> int:
        """The most request files this app has held in memory at once since it started
        (bounded by the queue depth per sender folder; for tests)."""
        return 0 if self._backlog is None else self._backlog.peak

    def start(self) -> None:
        """Serve in background threads: first the backlog, then new requests as they land.

        RuntimeError if another process already serves this app as this identity, with
        this state dir or another one (``fedbox.rpc.lease``).
        """
        if self.running:
            return
        self.stop()  # what a lost lease left behind, if anything
        lease = ServingLease(
            self.box.store,
            self.box.workspace.state_dir,
            self.box.email,
            self.name,
            on_lost=self._lease_lost,
            pool=self._shared_pool(),
        )
        lease.acquire()  # RuntimeError if another process serves this app as us
        self._lease = lease
        self._stopped.clear()
        self._start_backlog()
        pool = self._shared_pool()
        if pool is not None:
            self._cleanup_job = Periodic(pool, self._cleanup_interval(), self._cleanup)
        else:
            self._cleanup_thread = threading.Thread(
                target=self._cleanup_loop, name=f"fedbox-cleanup-{self.name}", daemon=True
            )
            self._cleanup_thread.start()
        logger.info("%s serving %s", self, sorted(self._handlers))

    def serve_forever(self) -> None:
        """Start and block until :meth:`stop` (from another thread) or Ctrl-C."""
        self.start()
        try:
            wait_interruptibly(self._stopped)
        except KeyboardInterrupt:
            logger.info("%s interrupted", self)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop taking requests; handlers already running finish first. Idempotent."""
        self._stopped.set()
        self.box.stop_routing(self.name)
        backlog, self._backlog = self._backlog, None
        if backlog is not None:
            backlog.close()
        job, self._cleanup_job = self._cleanup_job, None
        if job is not None:
            job.cancel()
        if self._cleanup_thread is not None:
            self._cleanup_thread.join(timeout=5)
            self._cleanup_thread = None
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    def _lease_lost(self) -> None:
        """Another server took this app's lease: stop taking requests (see
        ``fedbox.rpc.lease``); :meth:`stop` or :meth:`start` tidies up the rest."""
        self._stopped.set()
        self.box.stop_routing(self.name)
        backlog = self._backlog
        if backlog is not None:
            backlog.close()

    def _shared_pool(self) -> WorkerPool | None:
        """The threads this app shares with other boxes' apps, if its box shares any."""
        return None if self.box.shared is None else self.box.shared.pool

    def _cleanup_interval(self) -> float:
        return min(max(self.box.cleanup_expiry / 4, 1.0), 3600.0)

    def _cleanup_loop(self) -> None:
        while not self._stopped.wait(self._cleanup_interval()):
            self._cleanup()

    def _cleanup(self) -> None:
        try:
            cleanup(self.box.store, self.box.email, self.box.cleanup_expiry, self.box.clock())
        except OSError:
            logger.exception("cleanup failed; will retry in %.0f s", self._cleanup_interval())

    def _start_backlog(self) -> None:
        """Handler threads fed by the box's watcher and by listings of the inboxes: at
        start (the backlog), every ``rescan_interval`` and when a flood overflows a
        sender's queue (``fedbox.rpc.backlog``)."""
        box = self.box
        backlog = Backlog(
            handle=self._handle,
            folders=box.inboxes,
            listing=lambda inbox: box.request_files(inbox, self.name),
            parse=box.message_path,
            settled=self._settled,
            folder_of=lambda mp: outbox_dir(mp.writer, mp.reader),
            threads=box.handler_threads,
            depth=default_queue_depth(),
            rescan_interval=box.rescan_interval,
            name=f"fedbox-{self.name}",
            pool=self._shared_pool(),
        )
        self._backlog = backlog
        box.route_requests(self.name, backlog.offer)
        backlog.start()

    def _settled(self, mp: MessagePath) -> bool:
        """Whether a listed request was answered already: skipped without opening it.
        A claimed, unanswered one is not settled: its process stopped (ours are still
        on a thread, which the backlog knows), so :meth:`_handle` takes it over."""
        record = self.box.audit.incoming(mp.writer, mp.id)
        return record is not None and record.status is not None

    # -- one request -----------------------------------------------------------------

    def _handle(self, mp: MessagePath) -> None:
        box = self.box
        claimed = box.audit.incoming(mp.writer, mp.id)
        if claimed is not None and claimed.status is not None:
            return  # answered
        # Claimed but unanswered, and not on a thread of ours: the process that claimed
        # it stopped (killed, crashed) before the response was written. Whether a
        # response file exists says nothing: anyone who can write the folder can put one
        # there (issue 11.9); only our own log says what we answered.
        resumed = claimed is not None
        lease = self._lease
        if lease is None:
            return
        if claimed is not None and not self._take_over(mp, claimed.owner, lease):
            return
        if claimed is not None and self._written_before(mp, claimed.answered):
            return
        try:
            header, payload = self._read_request(mp)
        except NotFound:
            return
        except _Refused as refused:
            self._refuse(mp, refused.status, refused.reason, quarantined=True)
            return
        with payload:
            if resumed and not self._reruns(mp.endpoint):
                reason = (
                    f"interrupted: {box.email} stopped while handling this request; "
                    f"{mp.endpoint!r} is not re-run (registered with rerun=False)"
                )
                response = Response(body=reason.encode(), status=Status.INTERNAL_ERROR)
                self._reply(mp, header.expires, response, encrypted=header.enc is not None)
                return
            try:
                body = b"" if mp.endpoint in self._streaming else self._whole(payload)
            except _Refused as refused:
                self._refuse(mp, refused.status, refused.reason, quarantined=True)
                return
            if not resumed and not box.audit.claim(
                id=mp.id,
                peer=mp.writer,
                app=mp.app,
                endpoint=mp.endpoint,
                size=header.body_len,
                sha256=header.body_sha256,
                created=header.created,
                owner=lease.instance,
            ):
                return
            if resumed:
                logger.info("%s: running %s again after an interruption", self, mp.path)
            request = Request(
                id=header.id,
                sender=header.sender,
                recipient=header.recipient,
                app=header.app,
                endpoint=header.endpoint,
                headers=dict(header.headers),
                body=body,
                created=header.created,
                expires=header.expires,
                payload=payload if not body and payload.size else None,
            )
            response = self._run_handler(request)
        if payload.failure is not None:  # the handler met a damaged body while reading it
            reason = f"unreadable request: {payload.failure}"
            self._refuse(mp, Status.BAD_REQUEST, reason, quarantined=True)
            return
        self._reply(mp, request.expires, response, encrypted=header.enc is not None)

    def _take_over(self, mp: MessagePath, owner: str | None, lease: ServingLease) -> bool:
        """Whether an unanswered claim is ours to answer now. No other process serves
        this app from this state dir (the serving lease) and our own claims in progress
        never reach here twice (the backlog), so its process stopped; the swap in the log
        lets exactly one caller take it."""
        return self.box.audit.take_over(
            id=mp.id, peer=mp.writer, owner=lease.instance, previous=owner
        )

    def _written_before(self, mp: MessagePath, at: float | None) -> bool:
        """Whether the process that claimed the request died just after writing its
        response, before logging it: then the file at our path has the ``created`` it
        logged when it began writing (which nobody else could know before the file
        existed). The answer is logged now, and not given twice."""
        if at is None:
            return False
        path = str(response_path(mp.writer, mp.reader, mp.app, mp.endpoint, mp.id))
        try:
            with self.box.store.open(path) as f:
                header = read_header(f, path=path)
        except (CorruptMessage, StoreError):
            return False
        if header.created != at or header.sender != mp.reader or header.status is None:
            return False
        self.box.audit.record_answer(
            id=mp.id,
            direction="in",
            peer=mp.writer,
            status=header.status,
            answered=at,
            response_size=header.body_len,
        )
        return True

    def _reruns(self, endpoint: str) -> bool:
        """Whether an interrupted request to ``endpoint`` may run again: its handler said
        so, or there is none (the answer, 404, is the same however often it is given)."""
        return endpoint in self._rerun or endpoint not in self._handlers

    @staticmethod
    def _whole(payload: Payload) -> bytes:
        try:
            return payload.read()
        except Exception as exc:
            refused = _refusal(exc)
            if refused is None:
                raise
            raise refused from exc

    def _read_request(self, mp: MessagePath) -> tuple[Header, Payload]:
        """The verified header and the body (to read, verified as it is read), or
        _Refused saying why not.

        Encryption is all or nothing: an encrypting box refuses plaintext (403), one
        without encryption refuses ciphertext (400); an untrusted or unpublished sender key
        is 403, anything that does not decrypt is 400.
        """
        path = str(mp.path)
        sealer = self.box.sealer
        f: io.BufferedIOBase | None = None
        try:
            f = self.box.store.open(path)  # a FIFO or a link is UnsafeFile, refused unread
            header = read_header(f, path=path)
            problem = header_mismatch(header, mp)
            if problem:
                forged = header.recipient != mp.reader or header.sender != mp.writer
                status = Status.FORBIDDEN if forged else Status.BAD_REQUEST
                raise _Refused(status, f"request refused: {problem}")
            if header.enc is None and sealer is not None:
                raise _Refused(
                    Status.FORBIDDEN,
                    f"encryption required: {self.box.email} accepts only encrypted "
                    "requests (connect with encrypt=True)",
                )
            if header.enc is not None and sealer is None:
                raise _Refused(
                    Status.BAD_REQUEST,
                    f"the request is encrypted but {self.box.email} runs without "
                    "encryption (connect with encrypt=True)",
                )
            payload = open_payload(
                self.box.store,
                f,
                header,
                writer=mp.writer,
                reader=mp.reader,
                sealer=sealer,
                path=path,
                on_failure=lambda exc: logger.warning("%s: damaged body: %s", path, exc),
            )
            return header, payload
        except BaseException as exc:
            if f is not None:
                f.close()
            refused = _refusal(exc)
            if refused is None:
                raise
            raise refused from exc

    def _run_handler(self, request: Request) -> Response:
        if self.box.clock() > request.expires:
            return Response(body=b"request expired before it was handled", status=Status.EXPIRED)
        handler = self._handlers.get(request.endpoint)
        if handler is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            return Response(
                body=f"no handler for endpoint {request.endpoint!r} (known: {known})".encode(),
                status=Status.NOT_FOUND,
            )
        try:
            result = handler(request)
        except Exception as exc:
            if request.payload is not None and request.payload.failure is not None:
                return Response(body=str(exc).encode(), status=Status.BAD_REQUEST)
            logger.warning(
                "handler %s failed on %s:\n%s",
                request.endpoint,
                request.id,
                traceback.format_exc(),
            )
            return Response(
                body=f"{type(exc).__name__}: {exc}".encode(), status=Status.INTERNAL_ERROR
            )
        if result is None:
            return Response()
        if isinstance(result, Response):
            return result
        if isinstance(result, Body):
            return Response(body=result)  # written piece by piece
        if isinstance(result, bytes):
            return Response(body=result)  # as it is: a large echoed body is not copied
        if isinstance(result, bytearray | memoryview):
            return Response(body=bytes(result))
        return Response(
            body=f"handler returned {type(result).__name__}, expected bytes or Response".encode(),
            status=Status.INTERNAL_ERROR,
        )

    # -- answering -------------------------------------------------------------------

    def _refuse(self, mp: MessagePath, status: Status, reason: str, *, quarantined: bool) -> None:
        """Answer a request that will never reach a handler, and keep it out of the way.

        The answer is plaintext even on an encrypting box: it carries only the reason,
        and the sender's keys may be exactly what is wrong; it is signed instead
        (``fedbox.rpc.signing``). It is written before the
        request is moved aside: a crash in between answers again on the next start
        (the same refusal) instead of never.
        """
        logger.warning("%s: %s", mp.path, reason)
        final = self._write_until_done(mp, Response(body=reason.encode(), status=status), None)
        if final is None:
            return
        self.box.audit.record_refused(
            id=mp.id,
            peer=mp.writer,
            app=mp.app,
            endpoint=mp.endpoint,
            status=int(status),
            at=final.created,
            note=reason,
        )
        if quarantined:
            quarantine(self.box.store, str(mp.path))

    def _reply(
        self, mp: MessagePath, expires: float, response: Response, *, encrypted: bool
    ) -> None:
        """Write the handler's response, encrypted to the requester if the request was,
        then record it answered."""
        sealer = self.box.sealer
        try:
            seal_for = sealer.bundle(mp.writer) if encrypted and sealer is not None else None
        except CryptoError as exc:
            # The requester's keys changed or vanished since its request opened: answer
            # with the reason only, never with the handler's output in the clear.
            seal_for = None
            response = Response(
                body=f"cannot encrypt the response: {exc}".encode(),
                status=Status.INTERNAL_ERROR,
            )
        final = self._write_until_done(mp, response, expires, seal_for)
        if final is None:
            return
        self.box.audit.record_answer(
            id=mp.id,
            direction="in",
            peer=mp.writer,
            status=int(response.status),
            answered=final.created,
            response_size=final.body_len,
            note=response.text[:200] if response.status != Status.OK else None,
        )

    def _identity(self) -> Identity | None:
        """The keys that sign what we answer in the clear: an encrypting box's own, or
        those a box without encryption has on disk from an earlier encrypted run (so an
        encrypting sender can still tell its refusal from a forgery); None if it has none.
        """
        if self.box.sealer is not None:
            return self.box.sealer.identity
        state_dir = self.box.workspace.state_dir
        if self._signer is None and (state_dir / "keys" / "identity.json").is_file():
            try:
                self._signer = Identity.load_or_create(state_dir, self.box.email)
            except CryptoError as exc:
                logger.warning("refusals go unsigned: cannot load %s's keys: %s", self, exc)
        return self._signer

    def _write_until_done(
        self,
        mp: MessagePath,
        response: Response,
        expires: float | None,
        seal_for: PublicBundle | None = None,
    ) -> Header | None:
        """Write the response, retrying (backoff up to ``_RETRY_MAX`` s) whatever stops it
        (a full disk, a store error) until it is written; None if the app stops first:
        the request is then still claimed and unanswered, and answered on the next start.
        """
        delay = _RETRY_FIRST
        while True:
            try:
                return self._write_response(mp, response, expires=expires, seal_for=seal_for)
            except Exception as exc:
                logger.warning(
                    "%s: could not write the response (%s: %s); retrying in %.1f s",
                    mp.path,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            if self._stopped.wait(delay):
                return None
            delay = min(delay * 2, _RETRY_MAX)

    def _write_response(
        self,
        mp: MessagePath,
        response: Response,
        *,
        expires: float | None,
        seal_for: PublicBundle | None = None,
    ) -> Header:
        now = self.box.clock()
        header = Header(
            id=mp.id,
            kind=Kind.RESPONSE.value,
            sender=mp.reader,
            recipient=mp.writer,
            app=mp.app,
            endpoint=mp.endpoint,
            created=now,
            expires=max(expires or 0.0, now + 60.0),
            headers=dict(response.headers),
            status=int(response.status),
        )
        self.box.audit.replying(id=mp.id, peer=mp.writer, at=now)
        if seal_for is None and response.status >= 400 and isinstance(response.body, bytes):
            identity = self._identity()
            if identity is not None:
                header = sign_refusal(identity, header, response.body)
        path = str(response_path(mp.writer, mp.reader, mp.app, mp.endpoint, mp.id))
        batch = Batch(self.box, self.name)
        return write_message(self.box, path, header, response.body, mp.writer, seal_for, batch)
