"""The calling half of an app: ``send``, ``broadcast``, batches and re-attaching to futures."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedbox.datasite.identity import (
    new_message_id,
    validate_email,
    validate_endpoint,
    validate_message_id,
)
from fedbox.datasite.paths import Kind, request_path
from fedbox.errors import StoreError
from fedbox.rpc.body import Body
from fedbox.rpc.defaults import DEFAULT_EXPIRY
from fedbox.rpc.envelope import Header, write_header
from fedbox.rpc.futures import Future, FutureRecord
from fedbox.rpc.outgoing import Batch, write_message
from fedbox.rpc.parts import MAGIC, MIN_SHARED_BLOB, BlobSource, PartKind, PartRef

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["Calling"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A request about to be written: its header, its future's record, its path."""

    header: Header
    record: FutureRecord
    path: str


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """Report a failed write (a full disk, a folder in the way) as StoreError naming the
    request's path (issue 11.15); the store's own errors pass as they are."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot write request {path}: {exc}", path) from exc


class Calling:
    """Requests this app sends; mixed into :class:`~fedbox.rpc.app.App`."""

    box: Box
    name: str

    def batch(self) -> Batch:
        """A batch for several :meth:`send` calls whose bodies share Shared pieces."""
        return Batch(self.box, self.name)

    def send(
        self,
        recipient: str,
        endpoint: str,
        body: bytes | io.BufferedIOBase | Body = b"",
        *,
        headers: Mapping[str, str] | None = None,
        expires_in: float = DEFAULT_EXPIRY,
        batch: Batch | None = None,
        id: str | None = None,
    ) -> Future:
        """Write a request for ``recipient`` and return its future at once.

        The recipient need not be running: it handles the request when it starts, unless
        ``expires_in`` seconds have passed by then (it answers 419 instead). ``body`` may
        be an open binary file, streamed in one pass, or a :class:`Body` whose buffers go
        to the file as they are; the Shared pieces of bodies sent with one ``batch`` are
        stored once. A body above the chunking threshold is stored as chunk blobs, and
        chunks the recipient already has are not written again (resending after an
        interruption resumes). On an encrypting box the body is encrypted for the
        recipient (and us); if the recipient has published no keys or its key is not the
        pinned one, CryptoError is raised and nothing is written.

        ``id`` (a UUID4, lowercase with dashes) names the request instead of a fresh id:
        a caller that recorded the id before sending can re-attach to it after a crash.
        """
        recipient = validate_email(recipient)
        validate_endpoint(endpoint)
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        sealer = self.box.sealer
        bundle = sealer.bundle(recipient) if sealer is not None else None
        out = self._outgoing(recipient, endpoint, headers, expires_in, id)
        watched = self.box.watching()
        with _writing(out.path):
            final = write_message(
                self.box, out.path, out.header, body, recipient, bundle, batch or self.batch()
            )
        self._remember(out)
        return self._sent(out, final, watched)

    def _remember(self, out: _Outgoing) -> None:
        """Record the future of a request just written; if that fails, take the request
        back, so a failed ``send`` never leaves a request nobody will read the answer to.

        Recording after the write cannot miss a fast response: nobody holds the future
        (or can re-attach to it) before this returns, and the response file waits.
        """
        try:
            self.box.futures.add(out.record)
        except BaseException:
            with contextlib.suppress(StoreError, OSError):
                self.box.store.delete(out.path)
            raise

    def _outgoing(
        self,
        recipient: str,
        endpoint: str,
        headers: Mapping[str, str] | None,
        expires_in: float,
        id: str | None = None,
    ) -> _Outgoing:
        now = self.box.clock()
        msg_id = new_message_id() if id is None else validate_message_id(id)
        header = Header(
            id=msg_id,
            kind=Kind.REQUEST.value,
            sender=self.box.email,
            recipient=recipient,
            app=self.name,
            endpoint=endpoint,
            created=now,
            expires=now + expires_in,
            headers=dict(headers or {}),
        )
        record = FutureRecord(
            id=msg_id,
            app=self.name,
            endpoint=endpoint,
            recipient=recipient,
            created=now,
            expires=header.expires,
        )
        path = str(request_path(self.box.email, recipient, self.name, endpoint, msg_id))
        return _Outgoing(header, record, path)

    def _sent(self, out: _Outgoing, final: Header, watched: bool) -> Future:
        """Log the request just written and return its future; ``watched``: the box's
        watcher ran before the write, so it will report the reply."""
        if watched:
            self.box.reply_will_be_reported(out.record.id)
        self.box.audit.record_sent(
            id=out.record.id,
            peer=out.record.recipient,
            app=self.name,
            endpoint=out.record.endpoint,
            size=final.body_len,
            sha256=final.body_sha256,
            created=out.record.created,
        )
        logger.debug(
            "sent %s to %s (%s/%s)%s",
            out.record.id,
            out.record.recipient,
            self.name,
            out.record.endpoint,
            " encrypted" if final.enc is not None else "",
        )
        return Future(self.box, out.record)

    def broadcast(
        self,
        recipients: Iterable[str],
        endpoint: str,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        expires_in: float = DEFAULT_EXPIRY,
    ) -> list[Future]:
        """The same request to each recipient; one future each, in the given order.

        The body is written once, as a blob each recipient's message refers to
        (``body_ref``), and given to each recipient as a copy of its own (a reflink or an
        in-kernel copy on a folder, a server-side copy on a remote store: see
        ``Store.link``); each message keeps its own header. Encrypted, the body is
        encrypted once under one content key, wrapped for each recipient in its own
        header; every recipient's keys are checked before anything is written. Bodies
        under 64 KiB are simply copied.
        """
        recipients = [validate_email(r) for r in recipients]
        validate_endpoint(endpoint)
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        sealer = self.box.sealer
        bundles = [sealer.bundle(r) for r in recipients] if sealer is not None else []
        shared = (
            len(set(recipients)) > 1
            and len(body) >= MIN_SHARED_BLOB
            and bytes(body[: len(MAGIC)]) != MAGIC
        )
        if not shared:
            return [
                self.send(r, endpoint, body, headers=headers, expires_in=expires_in)
                for r in recipients
            ]
        key = None
        stored: bytes | bytearray = body
        if sealer is not None:
            stored, key = sealer.encrypt_shared(body)
        name = hashlib.sha256(stored).hexdigest()
        blob = BlobSource([memoryview(body)], len(body))
        kind = PartKind.BLOB if sealer is None else PartKind.SEALED_BLOB
        blob.stored[sealer is not None] = PartRef(kind, len(body), len(stored), name)
        blob.cipher = stored if isinstance(stored, bytearray) else None
        storer = self.batch().blobs
        futures: list[Future] = []
        for i, recipient in enumerate(recipients):
            out = self._outgoing(recipient, endpoint, headers, expires_in)
            watched = self.box.watching()
            fields = {"body_len": len(stored), "body_sha256": name, "body_ref": name}
            header = out.header.model_copy(update=fields)
            if sealer is not None and key is not None:
                header = header.model_copy(update={"enc": sealer.wrap_for(header, key, bundles[i])})
            with _writing(out.path):
                storer.put(recipient, blob, sealed=sealer is not None)
                with self.box.store.writer(out.path) as f:
                    final = write_header(f, header)
            self._remember(out)
            futures.append(self._sent(out, final, watched))
        del key
        return futures

    def future(self, id: str) -> Future:
        """Re-attach to a request this identity sent, e.g. after a restart."""
        fut = self.box.future(id)
        if fut.record.app != self.name:
            raise KeyError(f"request {id} belongs to app {fut.record.app!r}, not {self.name!r}")
        return fut
