"""The console with auth off (loopback): uploads, search, extractive chat, languages, and the
cross-site and foreign-Host refusals. Tests run in order on one server and build on each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import Server, new_page, screenshot
from tests.support.documents import corrupt_pdf_bytes, korean_text_bytes, pdf_bytes
from tests.support.server import serve_in_thread

pytestmark = pytest.mark.slow
COLLECTION = "handbook"


def wait_uploads(page: Any, count: int) -> dict[str, tuple[str, str]]:
    """File name -> (status, text) once `count` rows have left "uploading"."""
    rows = "#upload-results li"
    page.wait_for_function(
        f"document.querySelectorAll('{rows}:not([data-status=uploading])').length >= {count}",
        timeout=120_000,
    )
    return {
        row.get_attribute("data-file"): (
            row.get_attribute("data-status"),
            row.locator(".status").inner_text(),
        )
        for row in page.locator(rows).all()
    }


def test_upload_korean_pdf_and_corrupt_files(
    browser: Any, open_server: Server, tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(open_server.url + "/")
    page.get_by_label("Name", exact=True).fill(COLLECTION)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(f"**/collections/{COLLECTION}")
    page.locator("#files").set_input_files(
        [
            {"name": "제주.txt", "mimeType": "text/plain", "buffer": korean_text_bytes()},
            {"name": "manual.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": corrupt_pdf_bytes()},
        ]
    )
    results = wait_uploads(page, 3)
    assert results["제주.txt"][0] == "added"
    assert results["manual.pdf"][0] == "added"
    status, text = results["broken.pdf"]
    assert status == "failed"
    assert "broken.pdf" in text or "PDF" in text  # the reason, not just "failed"
    page.locator("#document-table tr[data-document='manual.pdf']").wait_for()
    assert page.locator("#document-table tbody tr").count() == 2

    # The same Korean file dropped again (a real drop event) is unchanged.
    page.evaluate(
        """(bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], "제주.txt", {type: "text/plain"}));
            const zone = document.getElementById("dropzone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
        }""",
        list(korean_text_bytes()),
    )
    assert wait_uploads(page, 4)["제주.txt"][0] == "unchanged"
    screenshot(page, "documents-en", tmp_path)

    # The collection list shows the counts and the model id to copy.
    page.goto(open_server.url + "/collections")
    row = page.locator(f"tr[data-collection='{COLLECTION}']")
    assert f"rag/{COLLECTION}" in row.inner_text()
    assert row.locator("td.num").first.inner_text() == "2"

    # The document view: chunks in order at #chunk-<position>, with their page.
    page.goto(open_server.url + f"/collections/{COLLECTION}")
    page.get_by_role("link", name="manual.pdf").click()
    page.locator("#chunk-0").wait_for()
    assert "Page 1" in page.locator("#chunk-0 header").inner_text()
    assert "Aurora valve" in page.locator("ol.chunks").inner_text()


def test_search_playground_finds_a_korean_passage(
    browser: Any, open_server: Server, tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(open_server.url + f"/search?collection={COLLECTION}")
    page.get_by_label("Query").fill("한라산의 높이는?")
    page.get_by_role("button", name="Search").click()
    page.locator("#took").wait_for()
    first = page.locator("li.hit").first
    assert "한라산" in first.locator(".text").inner_text()
    assert "한라산" in first.locator("mark").first.inner_text()  # the morpheme, particle apart
    assert first.locator("td.fused").inner_text() != "–"
    assert "ms" in page.locator("#took").inner_text()
    screenshot(page, "search-en", tmp_path)

    # Dense mode on an English query shows the dense score; a filter keeps one document.
    page.get_by_label("Query").fill("How often must the Aurora valve be inspected?")
    page.get_by_label("Dense").check()
    page.get_by_label("Document name (filter)").fill("manual.pdf")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function(
        "document.querySelector('li.hit') && "
        "document.querySelector('li.hit').innerText.includes('manual.pdf')"
    )
    hits = page.locator("li.hit")
    assert all("manual.pdf" in hits.nth(i).inner_text() for i in range(hits.count()))
    assert hits.first.locator("table.scores td").nth(1).inner_text() != "–"


def test_chat_playground_streams_an_extractive_cited_answer(
    browser: Any, open_server: Server, tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(open_server.url + f"/chat?model=rag/{COLLECTION}")
    page.get_by_label("Message").fill("한라산의 높이는 얼마인가요?")
    page.get_by_role("button", name="Send").click()
    page.locator("#answer[data-done=true]").wait_for()
    answer = page.locator("#answer").inner_text()
    assert "1,947" in answer
    assert page.locator("#citations li").count() >= 1
    page.locator("#citations li summary").first.click()
    assert "한라산" in page.locator("#citations li blockquote").first.inner_text()
    screenshot(page, "chat-en", tmp_path)
    # The citation opens the passage in its document.
    page.locator("#citations li a").first.click()
    page.wait_for_url("**/documents/**#chunk-*")
    anchor = page.evaluate("location.hash")
    assert page.locator(anchor).count() == 1
    assert "한라산" in page.locator(anchor).inner_text()


def _evil_site(target: str) -> Any:
    """Another site's page that posts a form to the console as soon as it loads."""
    html = (
        f'<form id="f" method="post" action="{target}/collections">'
        '<input name="name" value="evil"></form><script>f.submit()</script>'
    ).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html")],
            }
        )
        await send({"type": "http.response.body", "body": html})

    return app


def test_cross_site_post_and_foreign_host_are_refused(browser: Any, open_server: Server) -> None:
    page = new_page(browser)
    page.goto(open_server.url + "/collections")  # the victim has a console session
    with serve_in_thread(_evil_site(open_server.url)) as evil:
        evil_url = evil.replace("127.0.0.1", "localhost")  # another site
        with page.expect_response(f"{open_server.url}/collections") as posted:
            page.goto(evil_url)
        assert posted.value.status == 403
        page.get_by_text("Cross-site request refused").wait_for()  # the app-wide guard
    names = [c["name"] for c in httpx.get(open_server.url + "/v1/collections").json()["data"]]
    assert "evil" not in names
    # No CSRF token: refused even without browser headers.
    plain = httpx.post(open_server.url + "/collections", data={"name": "evil"})
    assert plain.status_code == 403
    # DNS rebinding: a foreign Host header gets nothing.
    rebound = httpx.get(open_server.url + "/collections", headers={"Host": "evil.example"})
    assert rebound.status_code == 421


PAGES = {
    "collections": "/collections",
    "documents": f"/collections/{COLLECTION}",
    "search": f"/search?collection={COLLECTION}",
    "chat": f"/chat?model=rag/{COLLECTION}",
    "keys": "/keys",
    "status": "/status",
}
HEADINGS = {
    "en": {
        "collections": "Collections",
        "search": "Search",
        "chat": "Chat",
        "keys": "Keys",
        "status": "Status",
    },
    "ko": {
        "collections": "컬렉션",
        "search": "검색",
        "chat": "채팅",
        "keys": "API 키",
        "status": "상태",
    },
}


@pytest.mark.parametrize("language", ["ko", "en"])
def test_every_page_in_korean_and_english(
    browser: Any, open_server: Server, tmp_path: Path, language: str
) -> None:
    locale = {"ko": "ko-KR", "en": "en-US"}[language]
    page = new_page(browser, locale=locale)
    for name, path in PAGES.items():
        page.goto(open_server.url + path)
        assert page.locator("html").get_attribute("lang") == language
        if name in HEADINGS[language]:
            assert page.locator("h1").inner_text() == HEADINGS[language][name]
        if name == "search":
            page.locator("#query").fill("제주도 화산섬" if language == "ko" else "Aurora valve")
            page.locator("#search-form button[type=submit]").click()
            page.locator("#took").wait_for()
        if name == "chat":
            page.locator("#message").fill(
                "한라산의 높이는 얼마인가요?" if language == "ko" else "What is the Aurora valve?"
            )
            page.locator("#send").click()
            page.locator("#answer[data-done=true]").wait_for()
            page.locator("#inspect-box summary").click()
            page.locator("#inspect h3").first.wait_for()
        screenshot(page, f"{name}-{language}", tmp_path)
    doc = page.locator("a", has_text="manual.pdf")
    page.goto(open_server.url + f"/collections/{COLLECTION}")
    doc.first.click()
    page.locator("#chunk-0").wait_for()
    screenshot(page, f"document-{language}", tmp_path)
    # The switch wins over the browser's language, and sticks (a cookie).
    other = "en" if language == "ko" else "ko"
    page.locator(f".langs a[lang={other}]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == other
    page.goto(open_server.url + "/status")
    assert page.locator("h1").inner_text() == HEADINGS[other]["status"]


def test_keyboard_reaches_the_upload_button(browser: Any, open_server: Server) -> None:
    page = new_page(browser)
    page.goto(open_server.url + f"/collections/{COLLECTION}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    focused = set()
    for _ in range(30):
        page.keyboard.press("Tab")
        focused.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert "files" in focused  # the file input behind the "Choose files" label
