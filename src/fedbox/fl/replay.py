"""Crash-resume for an unmodified ServerApp: record its exchanges, replay them after a restart.

A ServerApp's only contact with the federation is its grid. :class:`RecordingGrid`
writes every call it makes (``get_node_ids``, ``push_messages``, ``pull_messages``,
``send_and_receive``) to the run's record (:mod:`fedbox.fl.record`) before acting on
it. After a crash the ServerApp is started again from the top, with the same run
config and the same seeds (:func:`seed_generators`), and the grid answers each call it
has an answer for from the record, sending nothing: pushed messages get their recorded
ids, pulls their recorded replies. The first call the record cannot answer goes live.
Messages that were sent but not answered before the crash are not sent again: the grid
re-attaches to their requests (the request id is the message id) and their replies
are picked up when they arrive; a message recorded but never written is written now,
under its recorded id.

A call is answered by the earliest unused recorded call of the same kind that asked
for the same thing, so the calls of Flower's legacy strategies, which come from
several threads in no fixed order, are matched too. If the ServerApp asks for
something the record has in another form (the same messages to the same nodes with
different content), it is not deterministic and :class:`Divergence` stops the run
before anything is sent; so does a ServerApp that ends with recorded calls unused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.serverapp.server_app import LoadServerAppError, ServerApp
from flwr.supercore.object_ref import load_app
from google.protobuf.message import DecodeError

from fedbox.errors import CorruptMessage, CryptoError, FedboxError, ResponseTimeout
from fedbox.fl.codec import decode_message, encode_message, records_of, scalar_metrics
from fedbox.fl.config import AppConfig
from fedbox.fl.events import FlEvent, emit
from fedbox.fl.grid import FileGrid, check_instruction, round_label
from fedbox.fl.record import (
    Content,
    ExchangeRow,
    MessageRow,
    RunNotFound,
    RunRecord,
    find_resumable,
    record_path,
)
from fedbox.fl.wire_encode import recorddict_parts
from fedbox.rpc import Future

__all__ = [
    "Divergence",
    "RecordingGrid",
    "load_server_app",
    "open_run_record",
    "run_key",
    "run_seed",
    "seed_generators",
]

logger = logging.getLogger(__name__)

INLINE_REPLY = 1 << 20
"""Replies whose arrays hold more bytes than this are recorded by reference (their
response file in the store), not copied into the record."""


class Divergence(FedboxError):
    """On replay the ServerApp asked for something other than what the record holds."""


def run_key(aggregator: str, app_id: str, datasites: Sequence[str], run_config: Any) -> str:
    """What makes two starts "the same command": who aggregates which app over which
    datasites with which run config. A restart with the same key resumes the run."""
    text = json.dumps([aggregator, app_id, list(datasites), run_config], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_seed(name: str) -> int:
    """A run's seed when it has no record: derived from its name. A recorded run's seed
    comes from its key (:func:`open_run_record`): the same command draws the same."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def seed_generators(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and, if the app imported it,
    torch's, so an app that draws from them unseeded makes the same draws on replay."""
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def load_server_app(app_config: AppConfig) -> ServerApp:
    """The app's ServerApp object, imported (so the generators can be seeded after the
    app's own imports, torch among them)."""
    app = load_app(app_config.serverapp, LoadServerAppError, str(app_config.app_dir))
    if not isinstance(app, ServerApp):
        raise LoadServerAppError(f"{app_config.serverapp} is not a flwr ServerApp")
    return app


def open_run_record(
    state_dir: Path,
    *,
    fixed_name: str | None,
    new_name: str,
    key: str,
    app: str,
    run_config: dict[str, Any],
    datasites: Sequence[str],
    fresh: bool = False,
) -> RunRecord:
    """The record to run with: the unfinished run this command started before, else a
    new one. A ``fixed_name`` (``--app-name``, ``[tool.fedbox].app_name``) is that run
    whatever its key; finished, it is started again only when ``fresh``."""
    name = fixed_name
    if name is None and not fresh:
        name = find_resumable(state_dir, key)
    if name is not None and not fresh and record_path(state_dir, name).exists():
        return RunRecord.reopen(state_dir, name)
    return RunRecord.create(
        state_dir,
        name or new_name,
        key=key,
        app=app,
        seed=int(key[:8], 16),
        run_config=run_config,
        datasites=datasites,
    )


_NODES = "nodes"


class _Replay:
    """The recorded calls not used yet, and the rule that matches a new call to one."""

    def __init__(self, exchanges: list[ExchangeRow], messages: dict[str, MessageRow]) -> None:
        self.nodes: deque[ExchangeRow] = deque(e for e in exchanges if e.kind == _NODES)
        self.unused: list[ExchangeRow] = [e for e in exchanges if e.kind != _NODES]
        self.messages = messages
        self.lock = threading.Lock()

    def next_nodes(self) -> list[int] | None:
        with self.lock:
            return list(self.nodes.popleft().answer) if self.nodes else None

    def match(self, kind: str, asked: Any, name: str) -> ExchangeRow | None:
        """The earliest unused recorded call of ``kind`` that asked ``asked`` (used up);
        None if there is none (the call goes live); Divergence if one asked the same
        thing in another form."""
        with self.lock:
            for i, row in enumerate(self.unused):
                if row.kind == kind and row.asked == asked:
                    return self.unused.pop(i)
            if kind == "push":
                shape = [m[:-1] for m in asked]
                for row in self.unused:
                    if row.kind == kind and [m[:-1] for m in row.asked] == shape:
                        raise Divergence(
                            _diverged(name, row, "the same messages with other content")
                        )
        return None

    def leftover(self) -> list[ExchangeRow]:
        with self.lock:
            return list(self.unused)


def _diverged(name: str, row: ExchangeRow, what: str) -> str:
    where = f" of round {row.round}" if row.round else ""
    return (
        f"the ServerApp diverged from the record of run {name} at exchange {row.seq} "
        f"({row.kind}{where}): it asked for {what}. It is not deterministic (see "
        f"README: resuming a run); the record is kept. Start a new run with --fresh"
    )


class RecordingGrid(FileGrid):
    """A :class:`FileGrid` that records every exchange, and replays them after a restart.

    ``record`` is the run's record, new or reopened; on a reopened one the grid starts
    in replay and goes live call by call as the record runs out.
    """

    def __init__(self, *args: Any, record: RunRecord, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self._replay = _Replay(record.exchanges(), record.messages())
        self.replayed = 0
        """Calls answered from the record so far."""
        self.keep_wire_up_to = INLINE_REPLY

    def check_complete(self) -> None:
        """Divergence if the ServerApp ended with recorded calls it never made again."""
        left = self._replay.leftover()
        if left:
            raise Divergence(
                _diverged(self.record.info.name, left[0], f"nothing more ({len(left)} unused)")
            )

    # -- Grid calls ----------------------------------------------------------------------

    def get_node_ids(self) -> list[int]:
        recorded = self._replay.next_nodes()
        if recorded is not None:
            self.replayed += 1
            return recorded
        ids = super().get_node_ids()
        self.record.add_exchange(_NODES, [], ids)
        return ids

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        messages = list(messages)
        for message in messages:
            check_instruction(message)
        digests, contents = _contents(messages)
        asked = [_describe(m, d) for m, d in zip(messages, digests, strict=True)]
        row = self._replay.match("push", asked, self.record.info.name)
        if row is not None:
            self.replayed += 1
            return self._replay_push(messages, row.answer)
        ids = [
            str(uuid.uuid4()) if m.metadata.dst_node_id in self.nodes else None for m in messages
        ]
        rows = [
            (
                msg_id,
                m.metadata.dst_node_id,
                self.nodes[m.metadata.dst_node_id],
                m.metadata.message_type,
                round_label(m),
                digest,
            )
            for m, msg_id, digest in zip(messages, ids, digests, strict=True)
            if msg_id is not None
        ]
        used = {d: contents[d] for d in digests if d is not None}
        label = round_label(messages[0]) if messages else ""
        self.record.add_push(asked, [i for i in ids if i], rows, used, label)
        return self._push_all(messages, ids)

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        ids = list(message_ids)
        row = self._replay.match("pull", ids, self.record.info.name)
        if row is not None:
            self.replayed += 1
            return self._recorded_replies(row.answer)
        replies = self._take_replies(ids)
        self.record.add_replies("pull", ids, _reply_ids(replies), _reply_rows(replies))
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        ids = self.push_messages(messages)
        row = self._replay.match("receive", ids, self.record.info.name)
        if row is not None:
            self.replayed += 1
            return self._recorded_replies(row.answer["replies"])
        replies, lost = self._receive(ids, timeout)
        answer = {"replies": _reply_ids(replies), "timeouts": sorted(lost)}
        self.record.add_replies("receive", ids, answer, _reply_rows(replies), sorted(lost))
        return replies

    def _taken(self, taken: list[tuple[Message, bytes | None]]) -> None:
        self.record.keep_replies(
            [(reply.metadata.reply_to_message_id, _kept(reply, wire)) for reply, wire in taken]
        )

    # -- replay --------------------------------------------------------------------------

    def _replay_push(self, messages: list[Message], recorded: list[str]) -> list[str]:
        """Give the messages their recorded ids; await again (or, if never written, send)
        those whose reply the record does not hold."""
        ids = iter(recorded)
        again: list[Message] = []
        again_ids: list[str | None] = []
        futures: dict[str, Future] = {}
        for message in messages:
            if message.metadata.dst_node_id not in self.nodes:
                continue  # dropped when recorded too
            msg_id = next(ids)
            message.metadata.__dict__["_message_id"] = msg_id
            row = self._replay.messages.get(msg_id)
            if row is not None and row.outcome is not None:
                emit(self.callback, _sent_event(row))
                continue
            again.append(message)
            again_ids.append(msg_id)
            try:
                futures[msg_id] = self.app.future(msg_id)
            except KeyError:
                logger.info("message %s was recorded but never sent: sending it now", msg_id)
        if again:
            self._push_all(again, again_ids, futures)
        return list(recorded)

    def _stored_reply(self, msg_id: str) -> Message:
        """A large reply, read again from its response file in the store."""
        try:
            response = self.app.future(msg_id).result(stream=True)
        except KeyError as exc:
            raise _never(msg_id, "no request of that id was sent") from exc
        except (ResponseTimeout, CorruptMessage, CryptoError) as exc:
            raise _never(msg_id, f"its response is no longer readable in the store: {exc}") from exc
        try:
            if response.payload is None:
                return decode_message(response.body)
            with response.payload as payload:
                return decode_message(payload)
        except DecodeError as exc:
            raise _never(msg_id, f"its response is not a Flower message: {exc}") from exc

    def _recorded_replies(self, ids: list[str]) -> list[Message]:
        replies = []
        for msg_id in ids:
            try:
                data = self.record.reply(msg_id)
            except RunNotFound as exc:
                raise Divergence(str(exc)) from exc
            reply = decode_message(data) if data is not None else self._stored_reply(msg_id)
            replies.append(reply)
            row = self._replay.messages.get(msg_id)
            if row is not None:
                emit(self.callback, _reply_event(row, reply))
        return replies


def _never(msg_id: str, why: str) -> Divergence:
    return Divergence(f"cannot replay the reply to {msg_id}: {why}")


def _contents(messages: list[Message]) -> tuple[list[str | None], dict[str, Content]]:
    """Each message's content digest (None without content), and each distinct content
    serialised, by digest: its parts as views, hashed as they are, never joined."""
    seen: dict[int, str] = {}
    contents: dict[str, Content] = {}
    digests: list[str | None] = []
    for message in messages:
        if not message.has_content():
            digests.append(None)
            continue
        key = id(message.content)
        if key not in seen:
            parts, size = recorddict_parts(message.content)
            digest = hashlib.sha256()
            for part in parts:
                digest.update(part)
            seen[key] = digest.hexdigest()
            contents[seen[key]] = (parts, size)
        digests.append(seen[key])
    return digests, contents


def _describe(message: Message, digest: str | None) -> list[Any]:
    """What a push asked for one message, as compared on replay (the digest last)."""
    meta = message.metadata
    return [meta.dst_node_id, meta.message_type, meta.group_id, round_label(message), digest]


def _reply_ids(replies: list[Message]) -> list[str]:
    return [r.metadata.reply_to_message_id for r in replies]


def _reply_rows(replies: list[Message]) -> list[tuple[str, str, str | None, dict[str, float]]]:
    """What the record says of each reply besides the reply itself."""
    rows = []
    for reply in replies:
        error = reply.error.reason if reply.has_error() else None
        outcome = "error" if reply.has_error() else "reply"
        rows.append((reply.metadata.reply_to_message_id, outcome, error, scalar_metrics(reply)))
    return rows


def _kept(reply: Message, wire: bytes | None) -> bytes | None:
    """What the record keeps of a reply: a small one whole (the bytes it came in, else
    encoded again), a large one (arrays over :data:`INLINE_REPLY` bytes) by reference to
    its response file, which stays in the store (the datasite that wrote it is the only
    one that removes it)."""
    if _array_bytes(reply) > INLINE_REPLY:
        return None
    return wire if wire is not None else encode_message(reply)


def _array_bytes(message: Message) -> int:
    if not message.has_content():
        return 0
    records = records_of(message.content, ArrayRecord)
    return sum(len(array.data) for _, record in records for array in record.values())


def _sent_event(row: MessageRow) -> FlEvent:
    return FlEvent("sent", row.email, row.node_id, row.message_type, row.round)


def _reply_event(row: MessageRow, reply: Message) -> FlEvent:
    return FlEvent(
        "reply",
        row.email,
        row.node_id,
        row.message_type,
        row.round,
        metrics=scalar_metrics(reply),
        error=reply.error.reason if reply.has_error() else None,
    )
