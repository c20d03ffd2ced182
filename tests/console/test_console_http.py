"""The console over plain HTTP (no browser): the off switch, language choice, refusals, and
secrets masked on the status page."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from ragbridge.console.i18n import pick_language
from ragbridge.settings import Settings

Serve = Callable[[Settings], AbstractContextManager[str]]


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Accept-Language": "ko-KR,ko;q=0.9,en-US;q=0.8"}, "ko"),
        ({"Accept-Language": "en-US,en;q=0.9,ko;q=0.8"}, "en"),
        ({"Accept-Language": "fr-FR,ko;q=0.5,en;q=0.4"}, "ko"),
        ({"Accept-Language": "fr-FR"}, "en"),
        ({}, "en"),
        ({"Accept-Language": "ko", "Cookie": "rb_lang=en"}, "en"),
    ],
)
def test_language_from_cookie_then_accept_language(headers: dict[str, str], expected: str) -> None:
    assert pick_language(_request(headers)) == expected


def test_console_off_serves_nothing_at_root(
    serve_app: Serve, make_settings: Callable[..., Settings]
) -> None:
    with serve_app(make_settings(console=False)) as url:
        assert httpx.get(url + "/").status_code == 404
        assert httpx.get(url + "/console-static/htmx.min.js").status_code == 404
        assert httpx.get(url + "/v1/collections").status_code == 200  # the API is unchanged


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def test_open_console_refuses_foreign_host_and_foreign_origin(
    serve_app: Serve, make_settings: Callable[..., Settings]
) -> None:
    with serve_app(make_settings()) as url, httpx.Client(base_url=url) as client:
        foreign_host = client.get("/collections", headers={"Host": "attacker.example"})
        assert foreign_host.status_code == 421  # the app-wide Host allow-list
        assert client.get("/collections", headers={"Host": "localhost:1"}).status_code == 200
        csrf = _csrf(client.get("/collections").text)
        posted: dict[str, Any] = {"data": {"name": "docs", "csrf": csrf}}
        foreign = client.post("/collections", headers={"Origin": "http://evil.example"}, **posted)
        assert foreign.status_code == 403
        cross = client.post("/collections", headers={"Sec-Fetch-Site": "cross-site"}, **posted)
        assert cross.status_code == 403
        same = client.post("/collections", headers={"Origin": url}, **posted)
        assert same.status_code == 303
        assert same.headers["location"] == "/collections/docs"
        bad = client.post("/collections", data={"name": "a/b", "csrf": csrf})
        assert bad.status_code == 400 and "Invalid collection name" in bad.text


def test_status_masks_secrets_and_login_rotates_the_session(
    serve_app: Serve, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        api_key="admin-secret-1234",
        upstream_api_key="upstream-secret-5678",
        redis_url=None,
        database_url=None,
    )
    with serve_app(settings) as url, httpx.Client(base_url=url) as client:
        assert client.get("/status").status_code == 303  # to the login page
        csrf = _csrf(client.get("/login").text)
        before = client.cookies["rb_console"]
        client.post("/login", data={"csrf": csrf, "key": "admin-secret-1234", "next": "/status"})
        assert client.cookies["rb_console"] != before
        page = client.get("/status")
        assert page.status_code == 200
        assert "RAGBRIDGE_UPSTREAM_API_KEY" in page.text
        assert "upstream-secret-5678" not in page.text
        assert "admin-secret-1234" not in page.text
        assert "••••••" in page.text
