"""Requests written by hand: "simulate scenarios by creating files" (the seed docs).

A request is only a file in the sender's outbox, so a test (or a tool) can put one
there without running the sender at all: the recipient handles it as any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from fedbox.datasite.identity import new_message_id, validate_message_id
from fedbox.datasite.paths import Kind, request_path
from fedbox.rpc.box import DEFAULT_EXPIRY
from fedbox.rpc.envelope import Header, write_envelope
from fedbox.rpc.parts import MAGIC, PartKind, PartRef, encode_table
from fedbox.store import Store

__all__ = ["write_request"]


def write_request(
    store: Store,
    sender: str,
    recipient: str,
    app: str,
    endpoint: str,
    body: bytes = b"",
    *,
    msg_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    expires_in: float = DEFAULT_EXPIRY,
    clock: Callable[[], float] = time.time,
) -> str:
    """Write a valid plaintext request from ``sender`` at its place in ``store``, as
    ``sender``'s box would, and return its id (``msg_id``, or a new one).

    Nothing is recorded on the sender's side: no future, no audit row. Emails and names
    are validated as the box does (InvalidIdentity). ``clock`` (a ``FakeClock``, say)
    dates the request; it expires ``expires_in`` seconds later. A recipient that
    requires encryption answers such a request 403.
    """
    msg_id = new_message_id() if msg_id is None else validate_message_id(msg_id)
    path = str(request_path(sender, recipient, app, endpoint, msg_id))
    if body[: len(MAGIC)] == MAGIC:  # would read as a parts table: send it as one part
        body = encode_table([PartRef(PartKind.INLINE, len(body))]) + body
    now = clock()
    header = Header(
        id=msg_id,
        kind=Kind.REQUEST.value,
        sender=sender,
        recipient=recipient,
        app=app,
        endpoint=endpoint,
        created=now,
        expires=now + expires_in,
        headers=dict(headers or {}),
    )
    with store.writer(path) as f:
        write_envelope(f, header, body)
    return msg_id
