"""``FileGrid``: Flower's ``Grid`` on fedbox RPC, so a ServerApp runs unchanged over files.

Each Flower message is one request on endpoint ``messages`` of the run's app
(body: Flower's protobuf of the ``Message``, ending with the run config, which so is
encrypted with the body: :func:`~fedbox.fl.codec.run_config_trailer`); the reply is
that request's response. The messages of one ``push_messages`` call are one RPC batch: a content
object sent to several nodes (FedAvg's model) is serialised and stored once, and
each node's request refers to it (issue 6). Two durations stay distinct, as in
Flower: ``timeout`` is how long ``send_and_receive`` waits, the message TTL is how
long a request stays valid (it becomes the request's ``expires``).

A datasite takes part once it has *joined*: the grid sends each configured datasite
a join message (:func:`~fedbox.fl.runner.make_join_message`) and the datasite's
runner answers it when it starts serving the run. ``get_node_ids`` lists the joined
ones only, so Flower's ``min_available_nodes`` holds a run back as it does on a
SuperLink, and :meth:`FileGrid.wait_for_datasites` waits for K of them (issue 12).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from flwr.app import ConfigRecord, Error, Message, RecordDict, UserConfig
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from google.protobuf.message import DecodeError

from fedbox.errors import CorruptMessage, CryptoError, FedboxError, UnauthenticatedResponse
from fedbox.fl.codec import (
    BatchEncoder,
    decode_message,
    encode_message,
    records_of,
    run_config_trailer,
    scalar_metrics,
)
from fedbox.fl.config import check_node_ids
from fedbox.fl.events import EventCallback, FlEvent, emit, error_summary
from fedbox.fl.joining import CONTROL_HEADER, ENDPOINT, JOIN
from fedbox.fl.runner import make_join_message, make_stop_message
from fedbox.rpc import App, Batch, Future, Response, Status
from fedbox.rpc.sealing import DID_FILE

__all__ = [
    "DEFAULT_MSG_TIMEOUT",
    "ENDPOINT",
    "FileGrid",
    "check_instruction",
    "default_timeout",
    "round_label",
    "run_id_for",
]

logger = logging.getLogger(__name__)

DEFAULT_MSG_TIMEOUT = 120.0
"""Seconds ``send_and_receive`` waits at most, unless ``FEDBOX_MSG_TIMEOUT`` says otherwise."""
JOIN_TTL = 7 * 24 * 3600.0
"""A join message stays valid for a week: a datasite may start long after the aggregator."""
KEY_RECHECK = 1.0
"""While some datasites have joined answers due and others no usable keys, the join wait
sleeps on the answers and looks for new key files this often."""


def default_timeout(timeout: float | None = None) -> float:
    """The argument, else ``$FEDBOX_MSG_TIMEOUT``, else 120 s.

    Flower strategies pass ``timeout=3600`` (and some apps ``None``, "forever");
    over files a participant that never starts would stall the run that long, so
    the grid's own timeout is a ceiling on every wait.
    """
    if timeout is not None:
        return float(timeout)
    env = os.environ.get("FEDBOX_MSG_TIMEOUT")
    if env:
        try:
            return float(env)
        except ValueError:
            logger.warning(
                "FEDBOX_MSG_TIMEOUT=%r is not a number; using %s s", env, DEFAULT_MSG_TIMEOUT
            )
    return DEFAULT_MSG_TIMEOUT


def run_id_for(app_name: str) -> int:
    """A Flower run id derived from the app name, so every participant agrees on it."""
    return int.from_bytes(hashlib.sha256(app_name.encode()).digest()[:8], "big") >> 1 or 1


def round_label(message: Message) -> str:
    """For progress only: ``group_id``, else a ``server-round`` value in the content."""
    if message.metadata.group_id:
        return message.metadata.group_id
    if message.has_content():
        for _, record in records_of(message.content, ConfigRecord):
            value = record.get("server-round")
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
    return ""


def check_instruction(message: Message) -> None:
    """ValueError unless ``message`` can be pushed: not a reply, and with a TTL."""
    meta = message.metadata
    if meta.reply_to_message_id or meta.ttl <= 0:
        raise ValueError(f"not an instruction message (reply or no TTL): {message!r}")


class _Conditions:
    """Warnings about datasites: one line per datasite per condition, repeated only when
    the condition changes (issue 12: a missing key used to log ten lines per message)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def report(self, email: str, condition: str, text: str) -> None:
        with self._lock:
            repeated = self._last.get(email) == condition
            self._last[email] = condition
        logger.log(logging.DEBUG if repeated else logging.WARNING, "%s: %s", email, text)

    def clear(self, email: str) -> None:
        with self._lock:
            self._last.pop(email, None)


@dataclass(slots=True)
class _Pending:
    future: Future | None
    """None when the request could not be written (``failure`` says why)."""
    node_id: int
    email: str
    group_id: str
    round: str
    message_type: str
    ttl: float
    nbytes: int
    sent_at: float
    failure: str | None = None


class FileGrid(Grid):
    """A Flower ``Grid`` whose nodes are fedbox identities and whose wire is files.

    Node ids come from emails (:func:`fedbox.fl.config.node_id_for`), so the
    ServerApp sees the same ids on every run. Message ids are set before sending,
    replies are matched by ``reply_to_message_id``, and a request that comes back
    as a non-200 RPC status (expired, no handler, handler crashed) becomes a
    Flower ``Error`` reply rather than a silent gap.
    """

    def __init__(
        self,
        app: App,
        datasites: Iterable[str],
        *,
        run: Run | None = None,
        timeout: float | None = None,
        run_config: UserConfig | None = None,
        callback: EventCallback | None = None,
        endpoint: str = ENDPOINT,
    ) -> None:
        self.app = app
        self.nodes: dict[int, str] = check_node_ids(datasites)
        self.timeout = default_timeout(timeout)
        self.callback = callback
        self.endpoint = endpoint
        self._trailer = run_config_trailer(run_config or {})
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._conditions = _Conditions()
        self._invites: dict[str, Future] = {}
        self._joined: set[str] = set()
        self._join_lock = threading.RLock()
        self.keys_missing: dict[str, str] = {}
        """Datasites that could not be invited yet because we cannot encrypt to them."""
        self._run: Run | None = None
        self.set_run(run if run is not None else Run.create_empty(run_id_for(app.name)))
        self._frozen = False
        self.keep_wire_up_to = 0
        """Replies whose body is at most this many bytes are read whole, decoded from
        those bytes and handed to :meth:`_taken` with them (a recording grid keeps them
        as they came rather than encoding each again)."""

    # -- Grid: run and nodes ---------------------------------------------------------

    def set_run(self, run: Run) -> None:
        """Adopt ``run``. Also sets Flower's process-wide ``TaskIdentity``, which
        ``Message(...)`` reads for ``run_id`` and ``src_node_id``: without it a
        ServerApp cannot build a message at all.
        """
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        self._run = run
        TaskIdentity.run_id = run.run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        TaskIdentity.task_id = run.primary_task_id or 1

    @property
    def run(self) -> Run:
        assert self._run is not None
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        """The datasites that have joined the run, in configured order.

        Datasites not yet invited (no usable keys until now) are invited on the way, so
        one that starts late joins a later round, as a SuperNode would.
        """
        self.invite()
        with self._join_lock:
            return [node_id for node_id, email in self.nodes.items() if email in self._joined]

    @property
    def joined(self) -> list[str]:
        """Emails of the datasites that answered the join message, in configured order."""
        with self._join_lock:
            return [email for email in self.nodes.values() if email in self._joined]

    # -- fedbox: joining a run -----------------------------------------------------------

    def invite(self) -> None:
        """Send the join message to every datasite not invited yet, then take in answers.

        A datasite we cannot encrypt to stays uninvited (``keys_missing`` says why) and is
        tried again on the next call.
        """
        with self._join_lock:  # Flower's legacy strategies call get_node_ids from threads
            for node_id, email in self.nodes.items():
                if email not in self._joined and email not in self._invites:
                    self._invite(node_id, email)
            self._take_joins()

    def _invite(self, node_id: int, email: str) -> None:
        message = make_join_message(node_id, self.run.run_id, JOIN_TTL)
        message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
        try:
            self._invites[email] = self.app.send(
                email,
                self.endpoint,
                encode_message(message),
                headers={CONTROL_HEADER: JOIN},  # answered before Flower loads (JoinDesk)
                expires_in=JOIN_TTL,
            )
        except CryptoError as exc:  # not a warning: it has not started yet, or never will
            self.keys_missing[email] = str(exc)
            logger.debug("cannot invite %s yet: %s", email, exc)
            return
        self.keys_missing.pop(email, None)
        logger.debug("invited %s (request %s)", email, self._invites[email].id)

    def _take_joins(self) -> None:
        for email, future in list(self._invites.items()):
            if not future.done():
                continue
            del self._invites[email]
            try:
                status = future.result().status
            except (CorruptMessage, CryptoError) as exc:
                status, detail = None, str(exc)
            else:
                detail = f"status {status}"
            if status != Status.OK:  # expired or unreadable: invite it again
                self._conditions.report(email, "bad-join", f"join answer not usable ({detail})")
                continue
            self._joined.add(email)
            self._conditions.clear(email)
            logger.info("%s joined the run", email)
            node_id = next(n for n, e in self.nodes.items() if e == email)
            emit(self.callback, FlEvent("joined", email, node_id))

    def wait_for_datasites(self, needed: int, timeout: float) -> list[str]:
        """Invite every datasite and block until ``needed`` have joined or ``timeout``
        passes; the joined ones. Each change in who is awaited is a ``waiting`` event.

        It wakes on join answers and, while some datasite has no usable keys, on key
        files appearing in the store (then it invites that datasite).
        """
        deadline = time.monotonic() + timeout
        keys = self.app.box.store.watch("datasites", (DID_FILE,)) if self.app.box.encrypt else None
        announced: tuple[str, ...] | None = None
        try:
            while True:
                self.invite()
                joined = self.joined
                waiting = tuple(e for e in self.nodes.values() if e not in joined)
                if len(joined) >= needed or not waiting:
                    return joined
                if waiting != announced:
                    announced = waiting
                    logger.info("waiting for %d more of %s", needed - len(joined), waiting)
                    emit(self.callback, FlEvent("waiting", "", 0, waiting=waiting, needed=needed))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return joined
                with self._join_lock:
                    invites = list(self._invites.values())
                if keys is not None and not invites:
                    keys.next_batch(remaining)  # everyone awaited lacks keys
                    continue
                if keys is not None and self.keys_missing:
                    remaining = min(remaining, KEY_RECHECK)
                self.app.box.wait(invites, remaining, return_when="any")
        finally:
            if keys is not None:
                keys.close()

    # -- Grid: messages ----------------------------------------------------------------

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Write one request per message; returns their (new) message ids.

        Content shared by several messages is written once (``rpc.Batch``).
        """
        return self._push_all(list(messages))

    def _push_all(
        self,
        messages: list[Message],
        ids: Sequence[str | None] | None = None,
        futures: Mapping[str, Future] | None = None,
    ) -> list[str]:
        """Push ``messages``, the i-th under ``ids[i]`` when given (else a new id); a
        message whose id has a future in ``futures`` was sent before (by a process that
        crashed) and is only awaited again, not sent."""
        # Flower's record views (``RecordDict.array_records`` and friends) refer to
        # themselves, so the previous round's replies, which strategies read through
        # them, stay in memory until the cyclic GC runs; a young-generation collection
        # costs microseconds and frees them before a new round brings N models more.
        gc.collect(1)
        if not self._frozen:  # the first push: what lives now lives for the whole run
            self._frozen = True
            gc.collect()
            gc.freeze()  # full collections no longer walk it (issue 20: 30-65 ms each)
        uses = Counter(id(m.content) for m in messages if m.has_content())
        encoder, batch = BatchEncoder(self._trailer), self.app.batch()
        pushed: list[str] = []
        for i, message in enumerate(messages):
            shared = message.has_content() and uses[id(message.content)] > 1
            wanted = ids[i] if ids is not None else None
            sent = futures.get(wanted) if futures is not None and wanted else None
            msg_id = self._push(message, encoder, batch, shared, wanted, sent)
            if msg_id is not None:
                pushed.append(msg_id)
        logger.debug("pushed %d messages: %r", len(pushed), batch)
        return pushed

    def _push(
        self,
        message: Message,
        encoder: BatchEncoder,
        batch: Batch,
        shared: bool,
        msg_id: str | None = None,
        sent: Future | None = None,
    ) -> str | None:
        meta = message.metadata
        check_instruction(message)
        email = self.nodes.get(meta.dst_node_id)
        if email is None:
            logger.error(
                "message for unknown node %d dropped; nodes: %s", meta.dst_node_id, self.nodes
            )
            return None
        msg_id = msg_id or str(uuid.uuid4())
        meta.__dict__["_message_id"] = msg_id
        label = round_label(message)
        body = encoder.body(message, shared=shared)  # views: array data is never copied
        expires_in = max(1.0, meta.created_at + meta.ttl - time.time())
        future: Future | None = sent
        failure = None
        try:
            if future is None:  # the request id is the message id: found again after a crash
                future = self.app.send(
                    email,
                    self.endpoint,
                    body,
                    expires_in=expires_in,
                    batch=batch,
                    id=msg_id,
                )
        except CryptoError as exc:  # no (trusted) keys yet: the node is unreachable for now
            failure = f"cannot encrypt to {email}: {exc}"
            self._conditions.report(email, "no-keys", f"cannot send to it: {exc}")
        with self._lock:
            self._pending[msg_id] = _Pending(
                future,
                meta.dst_node_id,
                email,
                meta.group_id,
                label,
                meta.message_type,
                meta.ttl,
                body.size,
                time.monotonic(),
                failure,
            )
        logger.debug(
            "sent %s message %s to %s (request %s, %d bytes)",
            meta.message_type,
            msg_id,
            email,
            future.id if future else failure,
            body.size,
        )
        emit(
            self.callback,
            FlEvent(
                "sent",
                email,
                meta.dst_node_id,
                meta.message_type,
                label,
                body.size,
            ),
        )
        return msg_id

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """Replies that have arrived for ``message_ids`` (each returned once)."""
        return self._take_replies(message_ids)

    def _take_replies(self, message_ids: Iterable[str]) -> list[Message]:
        taken: list[tuple[Message, bytes | None]] = []
        for msg_id in message_ids:
            with self._lock:
                pending = self._pending.get(msg_id)
            if pending is None or (pending.future is not None and not pending.future.done()):
                continue
            with self._lock:
                if self._pending.pop(msg_id, None) is None:
                    continue  # another thread took it
            read = self._read_reply(msg_id, pending)
            if read is None:  # a planted file, set aside: the node's own reply may still come
                with self._lock:
                    self._pending[msg_id] = pending
                continue
            taken.append(read)
        if taken:
            self._taken(taken)
        return [reply for reply, _ in taken]

    def _taken(self, taken: list[tuple[Message, bytes | None]]) -> None:
        """Replies just taken, each with the bytes it was decoded from when it was read
        whole (see ``keep_wire_up_to``)."""

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        """Push, then wait on arriving files until every reply is in or the wait ends.

        The wait is the smaller of ``timeout`` and the grid's own timeout. Whoever did
        not answer is logged; their requests are forgotten, so a late reply can never
        leak into a later round.
        """
        ids = self.push_messages(messages)
        replies, _ = self._receive(ids, timeout)
        return replies

    def _receive(self, ids: list[str], timeout: float | None) -> tuple[list[Message], set[str]]:
        """The waiting half of ``send_and_receive``: the replies to ``ids`` and the ids
        given up on."""
        limit = self.timeout if timeout is None else min(float(timeout), self.timeout)
        deadline = time.monotonic() + limit
        with self._lock:
            pending = [(i, self._pending.get(i)) for i in ids]
        futures = {p.future: i for i, p in pending if p is not None and p.future is not None}
        replies: list[Message] = []
        waiting = set(ids)
        due = ids  # at first every message; then those whose replies have landed
        with self.app.box.awaiting(futures) as arrivals:
            while waiting:
                replies_now = self._take_replies(due)
                for reply in replies_now:
                    waiting.discard(reply.metadata.reply_to_message_id)
                replies.extend(replies_now)
                with self._lock:
                    waiting &= self._pending.keys()
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    break
                due = [futures[f] for f in arrivals.take(remaining)]
        if waiting:
            self._give_up(waiting, limit)
        return replies, waiting

    def _give_up(self, msg_ids: set[str], waited: float) -> None:
        with self._lock:
            lost = [self._pending.pop(i) for i in msg_ids if i in self._pending]
        for email in sorted({p.email for p in lost}):
            self._conditions.report(email, "timeout", f"no reply within {waited:.1f} s")
        for p in lost:
            emit(
                self.callback,
                FlEvent(
                    "timeout",
                    p.email,
                    p.node_id,
                    p.message_type,
                    p.round,
                    seconds=time.monotonic() - p.sent_at,
                ),
            )

    def _read_reply(self, msg_id: str, pending: _Pending) -> tuple[Message, bytes | None] | None:
        """The reply (with its bytes, when read whole), or an error reply saying why there
        is none; None for a file its node did not write (set aside, and the request stays
        pending)."""
        nbytes, wire = 0, None
        if pending.future is None:
            reply = self._error_reply(
                msg_id, pending, ErrorCode.NODE_UNAVAILABLE, pending.failure or "not sent"
            )
        else:
            try:
                response = pending.future.result(stream=True)
                payload = response.payload
                nbytes = payload.size if payload is not None else len(bytes(response.body))
                try:
                    reply, wire = self._decode(msg_id, pending, response)
                finally:
                    if payload is not None:
                        payload.close()
            except UnauthenticatedResponse as exc:
                logger.warning(
                    "set aside a reply to %s that %s did not write: %s", msg_id, pending.email, exc
                )
                return None
            except (CorruptMessage, CryptoError) as exc:
                reply = self._error_reply(
                    msg_id,
                    pending,
                    ErrorCode.REPLY_MESSAGE_UNAVAILABLE,
                    f"reply from {pending.email} was unreadable: {exc}",
                )
        seconds = time.monotonic() - pending.sent_at
        if pending.failure is None:  # else reported when sending failed
            self._note_condition(pending.email, reply)
        emit(
            self.callback,
            FlEvent(
                "reply",
                pending.email,
                pending.node_id,
                pending.message_type,
                pending.round,
                nbytes,
                scalar_metrics(reply),
                error=reply.error.reason if reply.has_error() else None,
                seconds=seconds,
            ),
        )
        return reply, wire

    def _note_condition(self, email: str, reply: Message) -> None:
        if reply.has_error():
            summary = error_summary(reply.error.reason or f"error code {reply.error.code}")
            self._conditions.report(email, f"error {summary}", f"error reply: {summary}")
        else:
            self._conditions.clear(email)

    def _decode(
        self, msg_id: str, pending: _Pending, response: Response
    ) -> tuple[Message, bytes | None]:
        if response.status != Status.OK:
            codes: dict[int, int] = {
                Status.EXPIRED: ErrorCode.MESSAGE_UNAVAILABLE,
                Status.NOT_FOUND: ErrorCode.NODE_UNAVAILABLE,
                Status.INTERNAL_ERROR: ErrorCode.CLIENT_APP_CRASHED,
            }
            code = codes.get(response.status, ErrorCode.UNKNOWN)
            reason = f"{pending.email} answered {response.status}: {response.text[:500]}"
            return self._error_reply(msg_id, pending, code, reason), None
        wire = self._whole(response)
        body = response.payload if response.payload is not None else response.body
        try:
            reply = decode_message(wire if wire is not None else body)
        except DecodeError as exc:
            reason = f"{pending.email} sent a reply that is not a Flower message: {exc}"
            return self._error_reply(
                msg_id, pending, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, reason
            ), None
        meta = reply.metadata
        if meta.reply_to_message_id != msg_id or meta.src_node_id != pending.node_id:
            reason = (
                f"{pending.email} replied to {meta.reply_to_message_id!r} as node "
                f"{meta.src_node_id}, expected {msg_id!r} from node {pending.node_id}"
            )
            return self._error_reply(
                msg_id, pending, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, reason
            ), None
        return reply, wire

    def _whole(self, response: Response) -> bytes | None:
        """A reply's bytes, when it is small enough to keep (``keep_wire_up_to``)."""
        if response.payload is None:
            data = bytes(response.body)
            return data if len(data) <= self.keep_wire_up_to else None
        if response.payload.size <= self.keep_wire_up_to:
            return response.payload.read()
        return None

    def _error_reply(self, msg_id: str, pending: _Pending, code: int, reason: str) -> Message:
        logger.debug("message %s: %s", msg_id, reason)
        metadata = Metadata(
            run_id=self.run.run_id,
            message_id=str(uuid.uuid4()),
            src_node_id=pending.node_id,
            dst_node_id=SUPERLINK_NODE_ID,
            reply_to_message_id=msg_id,
            group_id=pending.group_id,
            created_at=time.time(),
            ttl=pending.ttl,
            message_type=pending.message_type,
        )
        return make_message(metadata=metadata, error=Error(code=code, reason=reason))

    # -- fedbox: ending a run ------------------------------------------------------------

    def stop_nodes(
        self,
        wait: float = 10.0,
        ttl: float | None = None,
        waiting: Callable[[int, float], None] | None = None,
    ) -> set[str]:
        """Tell every node the run is over; return who acknowledged within ``wait`` s.

        Nodes that are not running find the stop in their backlog when they start, if
        they start within ``ttl`` s (default ten times ``wait``, at least ten minutes:
        a resumed run reuses the app name, so an old stop must not outlive it long).
        ``waiting(stops, wait)`` is called once every stop is written, before the wait.
        """
        sent: dict[str, Future] = {}
        run_id = self.run.run_id
        for node_id, email in self.nodes.items():
            message = make_stop_message(node_id, run_id)
            message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
            try:
                sent[email] = self.app.send(
                    email,
                    self.endpoint,
                    encode_message(message),
                    expires_in=max(wait, 60.0) * 10 if ttl is None else ttl,
                )
            except CryptoError as exc:  # never got its keys: it never took part either
                logger.info("no stop for %s: %s", email, exc)
                continue
            emit(self.callback, FlEvent("stop", email, node_id, message.metadata.message_type))
        if sent and waiting is not None:
            waiting(len(sent), wait)
        done, _ = self.app.box.wait(list(sent.values()), timeout=wait) if sent else ([], [])
        done_ids = {f.id for f in done}
        acked = {email for email, fut in sent.items() if fut.id in done_ids}
        for email in acked:
            with contextlib.suppress(FedboxError):  # reading it closes its audit row
                sent[email].result()
        node_ids = {email: node_id for node_id, email in self.nodes.items()}
        for email in sorted(acked):
            emit(self.callback, FlEvent("stopped", email, node_ids[email]))
        missing = sorted(set(self.nodes.values()) - acked)
        if missing:
            logger.info("stop not acknowledged within %.1f s by: %s", wait, ", ".join(missing))
        return acked

    def forget(self) -> None:
        """Drop every pending request: replies to them will be ignored."""
        with self._lock:
            self._pending.clear()
