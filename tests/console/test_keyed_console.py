"""The console with auth on: login, a scoped key created, used and revoked in the browser, and
chat through the scripted upstream with the admin's view of what went upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import ADMIN_KEY, Server, new_page, screenshot
from tests.support.documents import english_text_bytes, korean_text_bytes
from tests.support.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def collections(keyed_server: Server) -> None:
    for name, filename, data in (
        ("handbook", "제주.txt", korean_text_bytes()),
        ("secret", "plans.txt", english_text_bytes()),
    ):
        response = httpx.post(
            f"{keyed_server.url}/v1/collections/{name}/documents",
            headers=ADMIN,
            files={"file": (filename, data, "text/plain")},
            timeout=300,
        )
        assert response.status_code == 201, response.text


def log_in(page: Any, server: Server, key: str) -> None:
    page.goto(server.url + "/collections")
    page.wait_for_url(lambda url: "/login" in url)
    page.locator("#key").fill(key)
    page.locator("form[action='/login'] button[type=submit]").click()


def test_login_asks_for_a_key_and_keeps_a_strict_http_only_session(
    browser: Any, keyed_server: Server, collections: None
) -> None:
    page = new_page(browser)
    log_in(page, keyed_server, "rb-not-a-real-key")
    page.locator("[role=alert]").wait_for()
    assert "/login" in page.url
    page.get_by_label("API key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/collections")
    cookie = next(c for c in page.context.cookies() if c["name"] == "rb_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ADMIN_KEY not in cookie["value"]
    assert page.locator("tr[data-collection]").count() == 2


def test_scoped_key_created_used_and_revoked(
    browser: Any,
    keyed_server: Server,
    collections: None,
    upstream: ScriptedUpstream,
    tmp_path: Path,
) -> None:
    admin = new_page(browser)
    log_in(admin, keyed_server, ADMIN_KEY)
    admin.wait_for_url("**/collections")
    admin.goto(keyed_server.url + "/keys")
    admin.get_by_label("Name", exact=True).fill("team-jeju")
    admin.get_by_label("handbook").check()
    admin.get_by_label("Requests per minute").fill("100")
    admin.get_by_role("button", name="Create").click()
    key = admin.locator("#new-key").inner_text().strip()
    assert key.startswith("rb-")
    row = admin.locator("tr[data-key='team-jeju']")
    assert "handbook" in row.inner_text() and "100" in row.inner_text()
    admin.goto(keyed_server.url + "/keys")
    assert key not in admin.content()  # shown once only

    # The scoped key sees only its collection, in the list, by URL, and in search.
    user = new_page(browser, locale="ko-KR")
    log_in(user, keyed_server, key)
    user.wait_for_url("**/collections")
    assert [
        r.get_attribute("data-collection") for r in user.locator("tr[data-collection]").all()
    ] == ["handbook"]
    assert user.goto(keyed_server.url + "/collections/secret").status == 404
    assert (
        user.goto(keyed_server.url + "/search/results?collection=secret&query=plans").status == 404
    )
    assert user.goto(keyed_server.url + "/keys").status == 403
    assert user.locator("nav a[href='/keys']").count() == 0

    # ...and uses it: a streamed, cited answer through the upstream.
    upstream.script(Reply(tokens=("한라산은 ", "1,947미터입니다 ", "[1]", ".")))
    user.goto(keyed_server.url + "/chat?model=rag/handbook")
    user.locator("#message").fill("한라산의 높이는 얼마인가요?")
    user.locator("#send").click()
    user.locator("#answer[data-done=true]").wait_for()
    assert user.locator("#answer").inner_text() == "한라산은 1,947미터입니다 [1]."
    assert user.locator("#answer a.cite").count() == 1
    assert user.locator("#citations li").count() >= 1
    user.locator("#answer a.cite").click()
    assert user.locator("#citations li details[open]").count() == 1
    sent = upstream.chat_requests[-1].body
    assert sent["model"] == "stub-alpha"
    assert any("한라산" in str(m.get("content")) for m in sent["messages"])
    assert user.locator("#inspect-box").count() == 0  # the prompt is for the admin only

    # The admin sees what was retrieved and the prompt that went upstream.
    upstream.script(Reply(tokens=("1,947m", " [1]")))
    admin.goto(keyed_server.url + "/chat?model=rag/handbook")
    admin.locator("#message").fill("한라산의 높이는?")
    admin.locator("#send").click()
    admin.locator("#answer[data-done=true]").wait_for()
    admin.locator("#inspect-box summary").click()
    admin.locator("#prompt").wait_for()
    assert "한라산" in admin.locator("#prompt").inner_text()
    screenshot(admin, "chat-upstream-en", tmp_path)

    # Revoked: the key's session ends at its next click.
    admin.goto(keyed_server.url + "/keys")
    admin.locator("tr[data-key='team-jeju'] a", has_text="Revoke").click()
    admin.get_by_role("button", name="Revoke").click()
    admin.wait_for_url("**/keys")
    assert "revoked" in admin.locator("tr[data-key='team-jeju']").inner_text()
    user.goto(keyed_server.url + "/collections")
    user.wait_for_url(lambda url: "/login" in url)
    revoked = httpx.get(
        keyed_server.url + "/v1/collections", headers={"Authorization": f"Bearer {key}"}
    )
    assert revoked.status_code == 401


def test_state_changes_need_the_session_and_its_csrf_token(
    keyed_server: Server, collections: None
) -> None:
    anonymous = httpx.post(keyed_server.url + "/collections", data={"name": "x"})
    assert anonymous.status_code in (401, 403)
    with httpx.Client(base_url=keyed_server.url) as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        done = client.post("/login", data={"csrf": csrf, "key": ADMIN_KEY, "next": "/"})
        assert done.status_code == 303
        forged = client.post("/collections", data={"name": "forged", "csrf": "wrong"})
        assert forged.status_code == 403
        assert client.get("/collections/forged").status_code == 404
