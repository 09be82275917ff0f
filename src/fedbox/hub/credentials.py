"""A participant's hub logins: tokens kept in its state dir (0600), refreshed when they expire.

``{state_dir}/hub-tokens.json`` maps each hub's base URL to the tokens of its login.
``fedbox login`` writes it; a ``hub://`` store reads it and rewrites it on refresh.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from fedbox.datasite.identity import validate_email
from fedbox.datasite.workspace import Workspace, fedbox_home
from fedbox.errors import FedboxError, StoreError

__all__ = [
    "TOKENS_FILE",
    "HubLogin",
    "NotLoggedIn",
    "base_url",
    "base_urls",
    "error_detail",
    "find_login",
    "login",
    "request_code",
]

TOKENS_FILE = "hub-tokens.json"


class NotLoggedIn(StoreError):
    """No login for this hub in the participant's state dir, or it ended (revoked)."""


def base_urls(hub: str) -> list[str]:
    """Every process a hub URL names, in the order to try them: ``hub://h1:8700,h2:8701``
    gives ``["http://h1:8700", "http://h2:8701"]`` (``hubs://`` gives https, the path is
    dropped). One hub served by several processes is one login, whichever answers."""
    parts = urlsplit(hub)
    scheme = {"hub": "http", "hubs": "https", "http": "http", "https": "https"}.get(parts.scheme)
    hosts = [h.strip() for h in parts.netloc.split(",")]
    if scheme is None or not all(hosts) or "@" in parts.netloc:
        raise ValueError(
            f"{hub!r} is not a hub URL (hub://HOST:PORT, hubs://HOST:PORT, or several "
            "processes of one hub: hub://HOST1:PORT1,HOST2:PORT2)"
        )
    for host in hosts:
        try:
            urlsplit(f"{scheme}://{host}").port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"{hub!r} is not a hub URL: {exc}") from exc
    return [f"{scheme}://{host}" for host in hosts]


def base_url(hub: str) -> str:
    """The hub's name for logins: ``http(s)://host:port``, or for several processes
    ``http://h1:8700,h2:8701`` (tokens are saved under it)."""
    urls = base_urls(hub)
    return urls[0].split("://")[0] + "://" + ",".join(u.split("://", 1)[1] for u in urls)


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(temp, path)


@dataclass
class HubLogin:
    """One identity's tokens for one hub; :meth:`refresh` rotates and saves them."""

    url: str
    email: str
    access_token: str
    refresh_token: str
    file: Path

    def save(self) -> None:
        data = _read(self.file)
        data[self.url] = {
            "email": self.email,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
        }
        _write(self.file, data)

    def refresh(self, client: httpx.Client) -> None:
        """Rotate the tokens through ``client`` (its base URL is one of the hub's processes)."""
        answer = client.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        if answer.status_code == 401:
            raise NotLoggedIn(
                f"the login of {self.email} at {self.url} ended ({answer.json().get('detail')}); "
                f"log in again: fedbox login --hub {self.url} --email {self.email}"
            )
        answer.raise_for_status()
        tokens = answer.json()
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self.save()


def _post_to_any(url: str, endpoint: str, body: dict[str, str]) -> httpx.Response:
    """POST to the first of the hub's processes that answers."""
    urls = base_urls(url)
    for n, base in enumerate(urls):
        try:
            return httpx.post(f"{base}{endpoint}", json=body, timeout=60)
        except httpx.TransportError:
            if n == len(urls) - 1:
                raise
    raise AssertionError("unreachable: base_urls returns at least one URL")


def request_code(url: str, email: str) -> str | None:
    """Ask the hub to send a login code; a ``--dev`` hub returns it instead."""
    answer = _post_to_any(url, "/api/v1/auth/code", {"email": email})
    _raise_for(answer)
    code = answer.json().get("code")
    return code if isinstance(code, str) else None


def error_detail(answer: httpx.Response) -> str:
    """What the hub said about a refusal: its JSON ``detail``, else the raw text (a
    proxy in front of the hub may answer in HTML)."""
    try:
        return str(answer.json().get("detail", answer.text))
    except (ValueError, AttributeError):
        return answer.text


def _raise_for(answer: httpx.Response) -> None:
    if answer.is_success:
        return
    raise FedboxError(f"the hub answered {answer.status_code}: {error_detail(answer)}")


def login(url: str, email: str, code: str, state_dir: Path | None = None) -> HubLogin:
    """Exchange a code for tokens and keep them in ``email``'s state dir."""
    email = validate_email(email)
    base = base_url(url)
    answer = _post_to_any(url, "/api/v1/auth/token", {"email": email, "code": code})
    _raise_for(answer)
    tokens = answer.json()
    workspace = Workspace.for_email(email, state_dir).ensure()
    saved = HubLogin(
        base, email, tokens["access_token"], tokens["refresh_token"],
        workspace.state_dir / TOKENS_FILE,
    )  # fmt: skip
    saved.save()
    return saved


def find_login(url: str, email: str | None = None, state_dir: Path | None = None) -> HubLogin:
    """The saved login for this hub: ``email``'s, or the only one under ``$FEDBOX_HOME``."""
    base = base_url(url)
    if email is not None or state_dir is not None:
        if email is None:
            raise ValueError("pass email with state_dir")
        files = [Workspace.for_email(email, state_dir).state_dir / TOKENS_FILE]
    else:
        files = sorted(fedbox_home().glob(f"*/{TOKENS_FILE}"))
    found = [
        HubLogin(base, entry["email"], entry["access_token"], entry["refresh_token"], file)
        for file in files
        if (entry := _read(file).get(base)) is not None
    ]
    if email is not None:
        found = [f for f in found if f.email == email]
    if len(found) != 1:
        who = email or "anyone"
        problem = "no login" if not found else f"{len(found)} logins (pass email=...)"
        raise NotLoggedIn(
            f"{problem} for {who} at {base}; log in with: fedbox login --hub {url} --email EMAIL"
        )
    return found[0]
