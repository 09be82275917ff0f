"""Identities, the message layout, syft:// URLs and the workspace."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from fedbox.datasite import (
    Kind,
    Workspace,
    parse_message_path,
    path_to_url,
    request_path,
    response_path,
    url_to_path,
    validate_email,
)
from fedbox.errors import InvalidIdentity

MID = "0f3c9a51-64b5-4d8e-9a7e-1c2b3d4e5f60"


@pytest.mark.parametrize("email", ["a@x.org", "first.last+tag@sub.example.co", "A_B@x-y.org"])
def test_valid_emails(email: str) -> None:
    assert validate_email(email) == email


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("..a@x.org", "'..'"),
        ("a/b@x.org", "separator"),
        ("a\\b@x.org", "separator"),
        ("a\x00@x.org", "control"),
        ("a\n@x.org", "control"),
        ("", "empty"),
        ("no-at-sign", "not a valid email"),
        ("a@", "not a valid email"),
        ("a@-x.org", "not a valid email"),
        ("x_to_y@z.org", "_to_"),
        ("a" * 250 + "@x.org", "longer than 254"),
        (None, "must be a string"),
    ],
)
def test_invalid_emails_say_why(email, reason: str) -> None:
    with pytest.raises(InvalidIdentity, match=reason):
        validate_email(email)


def test_request_and_response_paths_follow_the_spec() -> None:
    assert request_path("a@x.org", "b@x.org", "app", "messages", MID) == PurePosixPath(
        f"syft_outbox_inbox_a@x.org_to_b@x.org/app/rpc/messages/{MID}.request"
    )
    assert response_path("a@x.org", "b@x.org", "app", "messages", MID) == PurePosixPath(
        f"syft_outbox_inbox_b@x.org_to_a@x.org/app/rpc/messages/{MID}.response"
    )


def test_parse_message_path_round_trips() -> None:
    mp = parse_message_path(response_path("a@x.org", "b@x.org", "app", "ep", MID))
    assert (mp.writer, mp.reader, mp.kind) == ("b@x.org", "a@x.org", Kind.RESPONSE)
    assert (mp.requester, mp.handler) == ("a@x.org", "b@x.org")
    assert mp.path == response_path("a@x.org", "b@x.org", "app", "ep", MID)


@pytest.mark.parametrize(
    "path",
    [
        f"syft_outbox_inbox_a@x.org_to_b@x.org/app/rpc/ep/{MID}.txt",
        f"syft_outbox_inbox_a@x.org_to_b@x.org/app/xx/ep/{MID}.request",
        f"syft_outbox_inbox_../a@x.org_to_b@x.org/app/rpc/ep/{MID}.request",
        f"/syft_outbox_inbox_a@x.org_to_b@x.org/app/rpc/ep/{MID}.request",
        "syft_outbox_inbox_a@x.org_to_b@x.org/app/rpc/ep/NOT-A-UUID.request",
        f"syft_outbox_inbox_a@x.org_to_b@x.org/../rpc/ep/{MID}.request",
        f"outbox_a@x.org_to_b@x.org/app/rpc/ep/{MID}.request",
        f"syft_outbox_inbox_a@x.org/app/rpc/ep/{MID}.request",
        f"syft_outbox_inbox_a@x.org_to_b@x.org/app/rpc/ep/{MID.upper()}.request",
    ],
)
def test_parse_message_path_refuses_anything_else(path: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_message_path(path)


def test_syft_urls() -> None:
    assert url_to_path("syft://a@x.org/public/f.csv") == PurePosixPath(
        "datasites/a@x.org/public/f.csv"
    )
    assert path_to_url("datasites/a@x.org/public/f.csv") == "syft://a@x.org/public/f.csv"
    assert url_to_path("syft://a@x.org") == PurePosixPath("datasites/a@x.org")


@pytest.mark.parametrize(
    "url",
    [
        "syft://a@x.org/../b@x.org/f",
        "http://a@x.org/f",
        "syft://../etc/passwd",
        "syft://a@x.org/a\x00",
    ],
)
def test_syft_urls_cannot_escape(url: str) -> None:
    with pytest.raises(InvalidIdentity):
        url_to_path(url)


def test_path_outside_datasites_has_no_url() -> None:
    with pytest.raises(InvalidIdentity, match="not inside datasites"):
        path_to_url("syft_outbox_inbox_a@x.org_to_b@x.org/x")


def test_workspace_state_dir_follows_fedbox_home(fedbox_home, tmp_path) -> None:
    ws = Workspace.for_email("a@x.org").ensure()
    assert ws.state_dir == fedbox_home / "a@x.org"
    assert ws.state_dir.stat().st_mode & 0o777 == 0o700
    assert Workspace.for_email("a@x.org", tmp_path / "s").state_dir == tmp_path / "s"
