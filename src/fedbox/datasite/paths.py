"""The on-disk message layout: where a request or response lives, and the reverse.

Relative to a store root::

    syft_outbox_inbox_{sender}_to_{recipient}/{app}/rpc/{endpoint}/{id}.request
    syft_outbox_inbox_{recipient}_to_{sender}/{app}/rpc/{endpoint}/{id}.response

Message bodies that several messages share, or that are too large for one file, live
beside them as blobs named by the SHA-256 of their bytes (issue 6)::

    syft_outbox_inbox_{writer}_to_{reader}/{app}/blobs/{sha256}

in the same direction folder as the messages that use them, so whoever may read a
message may read its blobs and nobody else.

Every builder validates its parts, and :func:`parse_message_path` refuses anything a
builder could not have produced, so a path read from disk is as trustworthy as one made here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from fedbox.datasite.identity import (
    has_control_character,
    validate_app_name,
    validate_email,
    validate_endpoint,
    validate_message_id,
)
from fedbox.errors import InvalidIdentity

__all__ = [
    "BLOBS_DIR",
    "OUTBOX_PREFIX",
    "Kind",
    "MessagePath",
    "blob_dir",
    "blob_path",
    "datasite_dir",
    "inbox_reader",
    "is_inbox_of",
    "outbox_dir",
    "parse_message_path",
    "parse_outbox_dir",
    "request_path",
    "response_path",
    "split_store_path",
    "validate_blob_name",
]

OUTBOX_PREFIX = "syft_outbox_inbox_"
BLOBS_DIR = "blobs"
_TO = "_to_"
RECENT_PATHS = 8192
"""Message paths remembered, built or decoded (a few per message in flight)."""
_HEX = frozenset("0123456789abcdef")


class Kind(StrEnum):
    """Which half of a call a file holds; also its file suffix."""

    REQUEST = "request"
    RESPONSE = "response"


def split_store_path(
    path: str | PurePosixPath, kind: str = "path", *, root_ok: bool = False
) -> tuple[str, ...]:
    """The segments of a store-relative POSIX path, or InvalidIdentity.

    The one rule for every path that reaches a store or a permission check. Refuse
    rather than normalise: a path that needs cleaning was built wrongly or is an attack,
    and either way it must not reach a filesystem or match a rule by accident.
    ``root_ok`` accepts ``""`` (the root itself, as a listing prefix) as ``()``.
    """
    if isinstance(path, PurePosixPath):
        path = str(path)
    if not isinstance(path, str):
        raise InvalidIdentity(f"{kind} must be a string, got {type(path).__name__}", path)
    if not path:
        if root_ok:
            return ()
        raise InvalidIdentity(f"{kind} is empty", path)
    if has_control_character(path):
        raise InvalidIdentity(f"{kind} {path!r} contains a control character", path)
    if "\\" in path:
        raise InvalidIdentity(f"{kind} {path!r} contains a backslash; use '/'", path)
    if path.startswith("/"):
        raise InvalidIdentity(f"{kind} {path!r} is absolute; give it relative to the root", path)
    parts = tuple(path.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidIdentity(f"{kind} {path!r} has an empty, '.' or '..' segment", path)
    return parts


def outbox_dir(writer: str, reader: str) -> str:
    """The folder only ``writer`` writes into and only ``reader`` reads."""
    return f"{OUTBOX_PREFIX}{validate_email(writer)}{_TO}{validate_email(reader)}"


def parse_outbox_dir(name: str) -> tuple[str, str]:
    """``(writer, reader)`` of an outbox folder name; InvalidIdentity if it is not one."""
    if not name.startswith(OUTBOX_PREFIX) or name.count(_TO) != 1:
        raise InvalidIdentity(f"{name!r} is not an outbox folder", name)
    writer, reader = name[len(OUTBOX_PREFIX) :].split(_TO)
    return validate_email(writer), validate_email(reader)


def is_inbox_of(folder: str, email: str) -> bool:
    """Whether ``folder`` is an outbox folder ``email`` reads (one of its inboxes).

    Only the name is looked at: a folder that passes is still parsed and validated
    (:func:`parse_message_path`) before anything in it is trusted.
    """
    return folder.startswith(OUTBOX_PREFIX) and folder.endswith(f"{_TO}{email}")


def inbox_reader(folder: str) -> str | None:
    """Whose inbox ``folder`` is, by name alone (None if it is no outbox folder): lets one
    watcher for many identities find a file's owner without asking each of them.
    Addresses never hold ``_to_`` (:func:`validate_email`), so the last one splits."""
    if not folder.startswith(OUTBOX_PREFIX) or _TO not in folder:
        return None
    return folder.rpartition(_TO)[2]


def datasite_dir(email: str) -> PurePosixPath:
    """``datasites/{email}``: public keys, permission files and app data of one identity."""
    return PurePosixPath("datasites", validate_email(email))


def _message_path(
    writer: str, reader: str, app: str, endpoint: str, msg_id: str, kind: Kind
) -> PurePosixPath:
    """The path of a message file; each is asked for a few times (sent, awaited, read,
    answered), and building and checking one each time was a few percent of what
    routing a message cost at 1,000 virtual clients (issue 20), so the last few
    thousand are remembered."""
    names = (writer, reader, app, endpoint, msg_id)
    if all(type(name) is str for name in names):
        return _recent_message_path(*names, kind)
    return _new_message_path(*names, kind)  # raises, saying which value is no name


def _new_message_path(
    writer: str, reader: str, app: str, endpoint: str, msg_id: str, kind: Kind
) -> PurePosixPath:
    return PurePosixPath(
        outbox_dir(writer, reader),
        validate_app_name(app),
        "rpc",
        validate_endpoint(endpoint),
        f"{validate_message_id(msg_id)}.{kind.value}",
    )


_recent_message_path = functools.lru_cache(maxsize=RECENT_PATHS)(_new_message_path)


def request_path(
    sender: str, recipient: str, app: str, endpoint: str, msg_id: str
) -> PurePosixPath:
    """Where ``sender`` writes request ``msg_id`` for ``recipient``."""
    return _message_path(sender, recipient, app, endpoint, msg_id, Kind.REQUEST)


def response_path(
    sender: str, recipient: str, app: str, endpoint: str, msg_id: str
) -> PurePosixPath:
    """Where ``recipient`` answers the request ``sender`` sent: in its own outbox back."""
    return _message_path(recipient, sender, app, endpoint, msg_id, Kind.RESPONSE)


def validate_blob_name(value: object) -> str:
    """Return a blob name (64 lowercase hex digits, a SHA-256), or raise InvalidIdentity.

    Blob names are read from message headers and bodies, so they are checked before they
    become file names.
    """
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise InvalidIdentity(f"blob name {value!r} is not a lowercase hex SHA-256", value)
    return value


def blob_dir(writer: str, reader: str, app: str) -> PurePosixPath:
    """``syft_outbox_inbox_{writer}_to_{reader}/{app}/blobs``: the blobs of one direction."""
    return PurePosixPath(outbox_dir(writer, reader), validate_app_name(app), BLOBS_DIR)


def blob_path(writer: str, reader: str, app: str, name: str) -> PurePosixPath:
    """Where the blob ``name`` that ``writer`` stored for ``reader`` in ``app`` lives."""
    return blob_dir(writer, reader, app) / validate_blob_name(name)


@dataclass(frozen=True, slots=True)
class MessagePath:
    """A message file's location, decoded: who wrote it, for whom, and what it is."""

    writer: str
    reader: str
    app: str
    endpoint: str
    id: str
    kind: Kind

    @property
    def path(self) -> PurePosixPath:
        return _message_path(self.writer, self.reader, self.app, self.endpoint, self.id, self.kind)

    @property
    def requester(self) -> str:
        """The identity that sent the original request (the caller)."""
        return self.writer if self.kind is Kind.REQUEST else self.reader

    @property
    def handler(self) -> str:
        """The identity that handles the request (the callee)."""
        return self.reader if self.kind is Kind.REQUEST else self.writer


def parse_message_path(path: str | PurePosixPath) -> MessagePath:
    """Decode a store-relative message path, refusing anything that is not exactly one.

    A file is decoded when the watcher reports it, when its request is taken and when it
    is answered; the last few thousand are remembered (see :func:`_message_path`)."""
    return _parse_message_path(str(path))


@functools.lru_cache(maxsize=RECENT_PATHS)
def _parse_message_path(text: str) -> MessagePath:
    if "\x00" in text or text.startswith("/") or "\\" in text:
        raise InvalidIdentity(f"{text!r} is not a relative POSIX path", text)
    parts = PurePosixPath(text).parts
    if len(parts) != 5 or parts[2] != "rpc":
        raise InvalidIdentity(
            f"{text!r} is not a message path "
            "(expected syft_outbox_inbox_A_to_B/APP/rpc/ENDPOINT/ID.request|response)",
            text,
        )
    writer, reader = parse_outbox_dir(parts[0])
    stem, dot, suffix = parts[4].rpartition(".")
    if not dot or suffix not in (Kind.REQUEST.value, Kind.RESPONSE.value):
        raise InvalidIdentity(f"{text!r} does not end in .request or .response", text)
    return MessagePath(
        writer=writer,
        reader=reader,
        app=validate_app_name(parts[1]),
        endpoint=validate_endpoint(parts[3]),
        id=validate_message_id(stem),
        kind=Kind(suffix),
    )
