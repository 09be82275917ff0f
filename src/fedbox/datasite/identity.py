"""Emails and message ids: the only strings that ever become path parts."""

from __future__ import annotations

import re
import uuid

from fedbox.errors import InvalidIdentity

__all__ = [
    "has_control_character",
    "new_message_id",
    "validate_app_name",
    "validate_email",
    "validate_endpoint",
    "validate_message_id",
]

# Local part and domain are deliberately narrower than RFC 5322: every email ends up
# as a folder name on disks, buckets and drives, so only characters that are safe
# everywhere are allowed.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""A control character: one regex search, not a Python loop over the characters
(validation runs on every path of every message; issue 20)."""
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (below 0x20, or DEL)."""
    return _CONTROL.search(text) is not None


def _refuse_path_tricks(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidIdentity(f"{kind} must be a string, got {type(value).__name__}", value)
    if not value:
        raise InvalidIdentity(f"{kind} is empty", value)
    if has_control_character(value):
        raise InvalidIdentity(f"{kind} {value!r} contains a control character", value)
    if "/" in value or "\\" in value:
        raise InvalidIdentity(f"{kind} {value!r} contains a path separator", value)
    if ".." in value:
        raise InvalidIdentity(f"{kind} {value!r} contains '..'", value)
    return value


def validate_email(value: object) -> str:
    """Return the email unchanged, or raise InvalidIdentity saying what is wrong.

    Emails name folders (``syft_outbox_inbox_{a}_to_{b}``, ``datasites/{a}``), so anything
    that could climb out of the store root or confuse a filesystem is refused here, once.
    Case is preserved, compared as given: ``A@x.org`` and ``a@x.org`` are different folders.
    """
    email = _refuse_path_tricks("email", value)
    if len(email) > 254:
        raise InvalidIdentity(f"email {email[:40]!r}... is longer than 254 characters", value)
    if "_to_" in email:
        raise InvalidIdentity(
            f"email {email!r} contains '_to_', which would make folder names ambiguous", value
        )
    if not _EMAIL.match(email):
        raise InvalidIdentity(f"{email!r} is not a valid email (expected name@domain)", value)
    return email


def validate_message_id(value: object) -> str:
    """Return a lowercase UUID4 string, or raise: ids become file names."""
    text = _refuse_path_tricks("message id", value)
    if not _UUID4.match(text):
        raise InvalidIdentity(f"message id {text!r} is not a lowercase UUID4", value)
    return text


def new_message_id() -> str:
    """A fresh id in the one form the layout accepts."""
    return str(uuid.uuid4())


def _validate_name(kind: str, value: object) -> str:
    text = _refuse_path_tricks(kind, value)
    if not _NAME.match(text):
        raise InvalidIdentity(
            f"{kind} {text!r} may only hold letters, digits and . _ @ + - "
            "(starting with a letter or digit, at most 200 characters)",
            value,
        )
    return text


def validate_app_name(value: object) -> str:
    """Return the app name unchanged, or raise: it names a folder under each outbox."""
    return _validate_name("app name", value)


def validate_endpoint(value: object) -> str:
    """Return the endpoint unchanged, or raise: it names a folder under ``rpc/``."""
    return _validate_name("endpoint", value)
