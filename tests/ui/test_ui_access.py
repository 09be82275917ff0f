"""Who may use the UI: the token, the cookie, CSRF on every POST, Host and Origin."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fedbox.ui import UiSettings
from fedbox.ui.app import PAGES
from fedbox.ui.security import CSRF_FIELD, cookie_name, csrf_value

PAGE_PATHS = ["/", "/runs", "/messages", "/peers", "/jobs", "/highlight.css"]


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_every_page_is_refused_without_the_token(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 403
    assert "token" in response.text


def test_a_wrong_token_or_a_forged_cookie_is_refused(
    anonymous: TestClient, settings: UiSettings
) -> None:
    assert anonymous.get("/?token=" + "x" * 43).status_code == 403
    anonymous.cookies.set(cookie_name(settings.port), settings.token)  # the token is not it
    assert anonymous.get("/").status_code == 403


def test_the_token_becomes_a_cookie_and_leaves_the_address(
    anonymous: TestClient, settings: UiSettings
) -> None:
    response = anonymous.get(f"/messages?app=t&token={settings.token}")
    assert response.status_code == 303
    assert response.headers["location"] == "/messages?app=t"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert anonymous.get("/messages?app=t").status_code == 200


def test_the_package_assets_need_no_cookie(anonymous: TestClient) -> None:
    assert anonymous.get("/static/ui.css").status_code == 200
    chart = anonymous.get("/static/vendor/chart.umd.min.js")
    assert chart.status_code == 200 and "Chart.js" in chart.text[:200]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "192.0.2.1:8765"])
def test_a_foreign_host_is_refused_even_with_the_cookie(client: TestClient, host: str) -> None:
    assert client.get("/", headers={"host": host}).status_code == 403
    assert client.get("/static/ui.css", headers={"host": host}).status_code == 403


def test_a_request_from_another_origin_is_refused(client: TestClient, world) -> None:
    assert client.get("/", headers={"origin": "http://evil.example"}).status_code == 403
    assert client.get("/", headers={"origin": "http://127.0.0.1:8765"}).status_code == 200
    assert client.get("/", headers={"origin": "http://127.0.0.1:9999"}).status_code == 403
    assert client.get("/", headers={"origin": "null"}).status_code == 403
    response = client.post(
        f"/jobs/{world.jobs[0]}/approve",
        data={CSRF_FIELD: csrf_value(client.app.state.ui.settings.token)},
        headers={"origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert client.get(f"/jobs/{world.jobs[0]}").text.count("submitted") >= 1


def _post_routes() -> list[str]:
    routes = [
        r
        for page in PAGES
        for r in page.router.routes
        if isinstance(r, APIRoute) and "POST" in r.methods
    ]
    assert len(routes) >= 6  # trust, approve, reject, run, share, withhold
    return [r.path.replace("{job_id}", "someid").replace("{peer}", "sci@x.org") for r in routes]


def test_every_post_is_refused_without_or_with_a_wrong_csrf_value(client: TestClient) -> None:
    for path in _post_routes():
        assert client.post(path, data={}).status_code == 403, path
        assert client.post(path, data={CSRF_FIELD: "0" * 64}).status_code == 403, path
        assert client.post(path, headers={"x-csrf-token": "0" * 64}).status_code == 403, path


def test_posts_are_refused_without_the_cookie_even_with_the_csrf_value(
    anonymous: TestClient, settings: UiSettings, world
) -> None:
    response = anonymous.post(
        f"/jobs/{world.jobs[0]}/approve", data={CSRF_FIELD: csrf_value(settings.token)}
    )
    assert response.status_code == 403


def test_a_new_token_voids_the_old_cookie(world, settings: UiSettings) -> None:
    from fedbox.ui import create_app

    with TestClient(create_app(settings), base_url="http://127.0.0.1:8765") as old:
        old.get(f"/?token={settings.token}")
        cookie = old.cookies.get(cookie_name(settings.port))
    renewed = UiSettings(email=settings.email, state_dir=settings.state_dir, port=settings.port)
    with TestClient(create_app(renewed), base_url="http://127.0.0.1:8765") as client:
        client.cookies.set(cookie_name(settings.port), cookie)
        assert client.get("/").status_code == 403


def test_the_printed_url_carries_the_token_and_a_local_host() -> None:
    from pathlib import Path

    s = UiSettings(email="a@x.org", state_dir=Path("/nonexistent"), port=9000)
    assert s.url == f"http://127.0.0.1:9000/?token={s.token}"
    assert UiSettings(email="a@x.org", state_dir=Path("/x"), host="0.0.0.0").url.startswith(
        "http://127.0.0.1:8765/"
    )
    assert s.allows_host("localhost") and not s.allows_host("evil.example")
    named = UiSettings(email="a@x.org", state_dir=Path("/x"), host="10.1.2.3")
    assert named.allows_host("10.1.2.3") and not named.allows_host("evil.example")
    anywhere = UiSettings(email="a@x.org", state_dir=Path("/x"), host="0.0.0.0")
    assert anywhere.allows_host("laptop.lan")  # the cookie is what keeps others out then


def test_pages_cannot_be_framed_or_run_foreign_scripts(client: TestClient) -> None:
    for path in ("/", "/static/ui.css"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert headers["x-content-type-options"] == "nosniff"
    assert (
        "frame-ancestors"
        in client.get("/", headers={"host": "evil.example"}).headers["content-security-policy"]
    )
