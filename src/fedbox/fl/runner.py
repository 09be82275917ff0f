"""The ClientApp side: turn one request body into one reply body for one node.

:class:`NodeRunner` knows nothing about files or RPC, so the same logic serves a
client process (:mod:`fedbox.fl.client`) and hundreds of virtual clients in one
process. It mirrors what a Flower SuperNode does for a message: find the node's
``Context`` for the run, call the ClientApp, turn any exception into an ``Error``
reply (never silence), give the reply a message id, and save the Context.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict, UserConfig
from flwr.clientapp import ClientApp
from flwr.clientapp.client_app import LoadClientAppError
from flwr.common.constant import ErrorCode
from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE

from fedbox.fl.codec import decode_message, message_body, take_run_config
from fedbox.fl.contexts import ContextStore
from fedbox.rpc.body import Body, Buffer
from fedbox.rpc.payload import Payload

__all__ = [
    "CONTROL_RECORD",
    "NodeRunner",
    "Outcome",
    "is_join",
    "is_stop",
    "make_join_message",
    "make_stop_message",
]

logger = logging.getLogger(__name__)

CONTROL_RECORD = "fedbox"
"""ConfigRecord key of fedbox's own ``system`` messages (``{"action": "stop"}``)."""

ClientAppLike = ClientApp | Callable[[Message, Context], Message]


def make_stop_message(dst_node_id: int, run_id: int, ttl: float = 600.0) -> Message:
    """The message the aggregator sends to end a node's participation in a run.

    It is a Flower ``system`` message, so it travels like any other (and
    ``fedbox inspect`` reads it), but the runner handles it and never passes it to
    the ClientApp.
    """
    content = RecordDict({CONTROL_RECORD: ConfigRecord({"action": "stop", "run-id": run_id})})
    return Message(content, dst_node_id, SYSTEM_MESSAGE_TYPE, ttl=ttl, group_id="stop")


def make_join_message(dst_node_id: int, run_id: int, ttl: float) -> Message:
    """The aggregator's invitation to a run. A datasite joins by answering it, which it
    does as soon as it serves the run (its backlog first): a node that answered serves
    this run, which published keys alone do not show. A client process answers it from
    its envelope headers before it has loaded Flower (:mod:`fedbox.fl.joining`); a runner
    answers it from the body. Being an unanswered request, it is also what lets a
    datasite find the run (issue 12).
    """
    content = RecordDict({CONTROL_RECORD: ConfigRecord({"action": "join", "run-id": run_id})})
    return Message(content, dst_node_id, SYSTEM_MESSAGE_TYPE, ttl=ttl, group_id="join")


def _control_action(message: Message) -> str | None:
    if message.metadata.message_type != SYSTEM_MESSAGE_TYPE or not message.has_content():
        return None
    record = message.content.get(CONTROL_RECORD)
    action = record.get("action") if isinstance(record, ConfigRecord) else None
    return action if isinstance(action, str) else None


def is_stop(message: Message) -> bool:
    return _control_action(message) == "stop"


def is_join(message: Message) -> bool:
    return _control_action(message) == "join"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one request produced."""

    body: Body
    """Flower protobuf of the reply (content or Error), as buffers (array data as views);
    ``bytes(body)`` joins them."""
    stop: bool = False
    """The request was the aggregator's stop: the node should leave the run."""
    failed: bool = False
    """The ClientApp raised (the reply carries the Error)."""


class NodeRunner:
    """Runs a ClientApp for one node id, keeping one Context per run.

    Messages for the same node are handled one at a time (a lock), as a SuperNode
    does, so ``context.state`` never sees two writers.
    """

    def __init__(
        self,
        load_app: Callable[[], ClientAppLike],
        node_id: int,
        node_config: UserConfig,
        contexts: ContextStore,
        default_run_config: UserConfig | None = None,
    ) -> None:
        self._load_app = load_app
        self._app: ClientAppLike | None = None
        self.node_id = node_id
        self.node_config = dict(node_config)
        self.contexts = contexts
        self.default_run_config = dict(default_run_config or {})
        self._cache: dict[int, Context] = {}
        self._lock = threading.Lock()
        self.handled = 0

    def handle(self, body: Buffer | Payload) -> Outcome:
        """Decode, run, encode. Raises only if ``body`` is not a Flower message at all
        (DecodeError), or, for a payload, if it turns out damaged (CorruptMessage).

        The run config comes inside the body (encrypted with it), as a SuperLink hands
        it to SuperNodes; a body without one gets ``default_run_config``.
        """
        message = decode_message(body)
        run_config = take_run_config(message)
        with self._lock:
            reply, stop, failed = self._handle(message, run_config)
            self.handled += 1
        reply.metadata.__dict__["_message_id"] = str(uuid.uuid4())
        return Outcome(message_body(reply), stop=stop, failed=failed)

    def _handle(
        self, message: Message, run_config: UserConfig | None
    ) -> tuple[Message, bool, bool]:
        meta = message.metadata
        if is_stop(message):
            logger.info("node %d: stop received for run %d", self.node_id, meta.run_id)
            ack = RecordDict({CONTROL_RECORD: ConfigRecord({"action": "stopped"})})
            return Message(ack, reply_to=message), True, False
        if is_join(message):
            logger.info("node %d: joined run %d", self.node_id, meta.run_id)
            ack = RecordDict({CONTROL_RECORD: ConfigRecord({"action": "joined"})})
            return Message(ack, reply_to=message), False, False
        if meta.dst_node_id != self.node_id:
            reason = f"message for node {meta.dst_node_id} reached node {self.node_id}"
            logger.warning("%s (message %s)", reason, meta.message_id)
            return Message(Error(ErrorCode.NODE_UNAVAILABLE, reason), reply_to=message), False, True
        context = self._context(meta.run_id, meta.message_id, run_config)
        try:
            reply = self._call(message, context)
        except Exception as exc:  # the ClientApp's failure is the server's to judge
            self._cache.pop(meta.run_id, None)  # discard half-done state changes
            code = (
                ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                if isinstance(exc, LoadClientAppError)
                else ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            )
            reason = f"{type(exc)}:<'{exc}'>"  # Flower's own format for this reason
            logger.error(
                "node %d: ClientApp raised on %s message %s: %s\n%s",
                self.node_id,
                meta.message_type,
                meta.message_id,
                reason,
                traceback.format_exc(),
            )
            return Message(Error(code, reason), reply_to=message), False, True
        self.contexts.save(context, meta.message_id)
        return reply, False, False

    def _call(self, message: Message, context: Context) -> Message:
        if self._app is None:
            self._app = self._load_app()
        reply = self._app(message, context)
        if not isinstance(reply, Message):
            raise TypeError(f"the ClientApp returned {type(reply).__name__}, not a Message")
        if reply.metadata.reply_to_message_id != message.metadata.message_id:
            raise ValueError(
                "the ClientApp's reply does not answer the message it got; "
                "build it with Message(content, reply_to=msg)"
            )
        return reply

    def _context(self, run_id: int, message_id: str, run_config: UserConfig | None) -> Context:
        context = self._cache.get(run_id)
        if context is None:
            context = self.contexts.load(run_id, self.node_id, before=message_id)
            if context is not None:
                # node_config belongs to the node, not the run: the current one wins.
                context.node_config = dict(self.node_config)
                logger.info("node %d: resumed saved context of run %d", self.node_id, run_id)
        if context is None:
            context = Context(
                run_id=run_id,
                node_id=self.node_id,
                node_config=dict(self.node_config),
                state=RecordDict(),
                run_config=dict(self.default_run_config if run_config is None else run_config),
            )
        self._cache[run_id] = context
        return context
