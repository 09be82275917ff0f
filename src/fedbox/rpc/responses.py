"""Reading the response to a request we sent: verified against its path, decrypted, logged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedbox.datasite.paths import Kind, MessagePath, response_path
from fedbox.errors import (
    CorruptMessage,
    CryptoError,
    DecryptError,
    NotFound,
    UnauthenticatedResponse,
)
from fedbox.rpc.envelope import Header, header_mismatch, read_header
from fedbox.rpc.futures import FutureRecord
from fedbox.rpc.messages import Response
from fedbox.rpc.payload import Payload, open_payload
from fedbox.rpc.quarantine import quarantine
from fedbox.rpc.signing import signed_by

if TYPE_CHECKING:
    from fedbox.rpc.box import Box

__all__ = ["read_response", "response_file"]


def response_file(email: str, record: FutureRecord) -> str:
    """Where the answer to ``record`` (a request ``email`` sent) lands."""
    return str(response_path(email, record.recipient, record.app, record.endpoint, record.id))


def read_response(box: Box, record: FutureRecord, *, stream: bool = False) -> Response | None:
    """Read, verify (decrypt) and log a response; None while it has not arrived.

    With ``stream=True`` a 200 response comes with its ``payload`` to read (verified
    as it is read; a damaged one is quarantined then) instead of its ``body``.
    Raises CorruptMessage or DecryptError (the file is then quarantined), and on an
    encrypting box UnauthenticatedResponse for a response it cannot authenticate (set
    aside too, but the request stays pending: a forged file cannot answer it).
    """
    path = response_file(box.email, record)
    expected = MessagePath(
        record.recipient, box.email, record.app, record.endpoint, record.id, Kind.RESPONSE
    )
    try:
        f = box.store.open(path)
    except NotFound:
        return None
    try:
        header = read_header(f, path=path)
        problem = header_mismatch(header, expected)
        if problem:
            raise CorruptMessage(f"response refused: {problem}", path, record.id)
        if header.status is None:
            raise CorruptMessage("response has no status", path, record.id)
        _check_sealing(box, header, path)
        payload: Payload | None = open_payload(
            box.store,
            f,
            header,
            writer=record.recipient,
            reader=box.email,
            sealer=box.sealer,
            path=path,
            on_failure=lambda exc: _damaged(box, record, path, exc),
        )
    except UnauthenticatedResponse as exc:
        f.close()
        _set_aside(box, record, path, exc)
        raise
    except (CorruptMessage, CryptoError) as exc:
        f.close()
        _damaged(box, record, path, exc)
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
    if header.enc is None and box.sealer is not None:
        _check_signed(box, record, header, body, path)
    if record.status is None:
        now = box.clock()
        box.futures.resolve(record.id, header.status, now)
        box.audit.record_answer(
            id=record.id,
            direction="out",
            peer=record.recipient,
            status=header.status,
            answered=now,
            response_size=header.body_len,
        )
    box.response_read(record.id)
    return Response(
        body=body,
        status=header.status,
        headers=dict(header.headers),
        id=header.id,
        sender=header.sender,
        created=header.created,
        payload=payload,
    )


def _damaged(box: Box, record: FutureRecord, path: str, exc: Exception) -> None:
    if quarantine(box.store, path) is None:
        box.hold_back(record.id)
    box.audit.record_answer(
        id=record.id,
        direction="out",
        peer=record.recipient,
        status=400,
        answered=box.clock(),
        note=f"response quarantined: {exc}",
    )


def _set_aside(box: Box, record: FutureRecord, path: str, exc: Exception) -> None:
    """Move an unauthenticated response out of the way without taking it as the answer:
    the request stays pending, so the real response can still land there and be read."""
    if quarantine(box.store, path) is None:
        box.hold_back(record.id)
    else:
        box.forget_arrival(record.id)
    box.audit.record_note(id=record.id, direction="out", peer=record.recipient, note=str(exc))


def _check_sealing(box: Box, header: Header, path: str) -> None:
    """An encrypting box takes a plaintext response only as a refusal (status >= 400: a
    reason, never data) signed by the recipient (checked once the body is read); anything
    else in the clear could be forged by whoever can write the folder.
    """
    if header.enc is not None:
        if box.sealer is None:
            raise DecryptError(
                f"the response is encrypted but {box.email} connected without "
                "encryption; connect with encrypt=True to read it",
                path,
                header.id,
            )
        return
    if box.sealer is not None and header.status is not None and header.status < 400:
        raise UnauthenticatedResponse(
            f"plaintext response with status {header.status} refused: {box.email} "
            "requires encryption; set aside, the request stays pending",
            path,
            header.id,
        )


def _check_signed(box: Box, record: FutureRecord, header: Header, body: bytes, path: str) -> None:
    """A plaintext refusal counts only if the recipient's pinned identity key signed it."""
    assert box.sealer is not None
    try:
        signed = signed_by(box.sealer.bundle(record.recipient), header, body)
    except CryptoError as unusable:
        signed = False
        why = f"the recipient's keys are unusable ({unusable})"
    else:
        why = f"it is not signed by {record.recipient}"
    if signed:
        return
    refused = UnauthenticatedResponse(
        f"unauthenticated refusal {header.status} ({body[:200].decode(errors='replace')!r}) "
        f"set aside: {why}; the request stays pending",
        path,
        header.id,
    )
    _set_aside(box, record, path, refused)
    raise refused
