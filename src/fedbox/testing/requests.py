"""Messages written by hand: "simulate scenarios by creating files" (the seed docs).

A request is only a file in the sender's outbox, so a test (or a tool) can put one
there without running the sender at all: the recipient handles it as any other. The
same goes for a response a hostile writer plants, or a file damaged on purpose: build
the valid message here, then change its bytes.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping

from fedbox.datasite.identity import new_message_id, validate_message_id
from fedbox.datasite.paths import Kind, request_path
from fedbox.rpc.box import DEFAULT_EXPIRY
from fedbox.rpc.envelope import Header, write_envelope
from fedbox.rpc.parts import MAGIC, PartKind, PartRef, encode_table
from fedbox.store import Store

__all__ = ["envelope_bytes", "message_header", "write_request"]


def message_header(
    sender: str,
    recipient: str,
    app: str,
    endpoint: str,
    *,
    msg_id: str | None = None,
    kind: Kind = Kind.REQUEST,
    status: int | None = None,
    created: float | None = None,
    expires_in: float = DEFAULT_EXPIRY,
    headers: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Header:
    """The plaintext header of a message from ``sender`` to ``recipient``: a request by
    default, a response with ``kind=Kind.RESPONSE`` and its ``status``.

    Dated ``created`` (or ``clock()``), it expires ``expires_in`` seconds later; its id
    is ``msg_id`` (or a new one). Emails, names and the id are not checked, so a test
    can address a message wrongly on purpose; the Header's own fields are.
    """
    now = clock() if created is None else created
    return Header(
        id=new_message_id() if msg_id is None else msg_id,
        kind=kind.value,
        sender=sender,
        recipient=recipient,
        app=app,
        endpoint=endpoint,
        created=now,
        expires=now + expires_in,
        headers=dict(headers or {}),
        status=status,
    )


def envelope_bytes(header: Header, body: bytes = b"") -> bytes:
    """The whole file of a plaintext message, as the sender's box writes it (the body's
    length and digest filled in): the start of a file a test plants or damages."""
    buf = io.BytesIO()
    write_envelope(buf, header, body)
    return buf.getvalue()


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
    header = message_header(
        sender,
        recipient,
        app,
        endpoint,
        msg_id=msg_id,
        expires_in=expires_in,
        headers=headers,
        clock=clock,
    )
    with store.writer(path) as f:
        write_envelope(f, header, body)
    return msg_id
