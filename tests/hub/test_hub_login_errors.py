"""`fedbox login` against a hub it cannot reach: one clear line, a failure, no tokens."""

from __future__ import annotations

from pathlib import Path

from cli_process import fedbox_cli
from remote_servers import free_port


def test_login_to_an_unreachable_hub_is_one_line_and_keeps_nothing(fedbox_home: Path) -> None:
    url = f"hub://127.0.0.1:{free_port()}"
    result = fedbox_cli("login", "--hub", url, "--email", "a@x.org", "--code", "123456")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot log in to {url} as a@x.org: [Errno 111] Connection refused"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(fedbox_home.rglob("hub-tokens.json"))
