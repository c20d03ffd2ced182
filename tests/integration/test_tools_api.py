"""The OpenAPI tool server (`/tools`), the MCP server (`/mcp`, through the official MCP client),
the JSON document view that cited passages link to, and the citations of RAG answers (source
events, `sources`, `url_citation` annotations): one ragbridge under uvicorn with the scripted
upstream, English and Korean documents, an admin key and a key scoped to one collection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.documents import FACTS
from tests.support.rag import EN_QUESTION, KO_QUESTION
from tests.support.tools import PRIVATE_TEXT, ToolsServer, tools_server
from tests.support.upstream import Reply, ScriptedUpstream

pytestmark = pytest.mark.slow

TOOLS = {"list_collections", "search", "get_document"}


@pytest.fixture(scope="module")
def server(
    llm: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ToolsServer]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAGBRIDGE_API_KEY", raising=False)
        with tools_server(tmp_path_factory.mktemp("tools") / "data", llm) as running:
            yield running


def client(server: ToolsServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


# --- OpenAPI tool server ---------------------------------------------------------------------
def test_the_spec_names_three_operations_relative_to_the_tools_url(server: ToolsServer) -> None:
    with client(server, server.admin_key) as http:
        spec = http.get("/tools/openapi.json").json()
    operations = {
        op["operationId"]: (method, path)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }
    assert set(operations) == TOOLS
    assert operations["search"] == ("post", "/search")  # Open WebUI appends it to .../tools
    search = spec["paths"]["/search"]["post"]
    assert "passages" in search["description"]
    body = search["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert {"collection", "query", "top_k", "mode", "filters"} <= set(schema["properties"])
    assert set(schema["required"]) == {"collection", "query"}


def test_search_in_english_returns_passages_with_source_page_score_and_url(
    server: ToolsServer,
) -> None:
    with client(server, server.admin_key) as http:
        found = http.post(
            "/tools/search",
            json={"collection": "docs", "query": "Who handles warranty claims for the valve?"},
        )
        assert found.status_code == 200, found.text
        top = found.json()["passages"][0]
        assert FACTS["pdf_page_2"] in top["text"]
        assert top["source"] == "aurora-manual.pdf" and top["page"] == 2  # 1-based
        assert top["n"] == 1 and isinstance(top["score"], float)
        assert top["url"] == (
            f"{server.url}/v1/collections/docs/documents/{top['document_id']}"
            f"#chunk-{top['position']}"
        )
        # The link opens the passage: the document's JSON view holds it at that position.
        view = http.get(top["url"].partition("#")[0])
        assert view.status_code == 200, view.text
        chunk = view.json()["chunks"][top["position"]]
        assert chunk["text"] == top["text"] and chunk["url"] == top["url"]


def test_search_in_korean_with_headings_and_keyword_mode(server: ToolsServer) -> None:
    with client(server, server.admin_key) as http:
        korean = http.post(
            "/tools/search", json={"collection": "docs", "query": "한라산의 높이는?", "top_k": 2}
        ).json()["passages"]
        assert len(korean) <= 2 and FACTS["korean_text"] in korean[0]["text"]
        assert korean[0]["source"] == "hallasan.txt" and korean[0]["page"] is None
        markdown = http.post(
            "/tools/search",
            json={
                "collection": "docs",
                "query": "calibration wizard",
                "mode": "keyword",
                "filters": {"name": "zephyr.md"},
            },
        ).json()["passages"]
        assert markdown and all(p["source"] == "zephyr.md" for p in markdown)
        assert markdown[0]["headings"][:2] == ["Zephyr sensor", "Setup"]


def test_get_document_pages_through_a_document(server: ToolsServer) -> None:
    with client(server, server.admin_key) as http:
        hit = http.post(
            "/tools/search", json={"collection": "docs", "query": "Modbus remote shutdown"}
        ).json()["passages"][0]
        whole = http.post(
            "/tools/get_document",
            json={"collection": "docs", "document_id": hit["document_id"]},
        ).json()
        assert whole["source"] == "aurora-manual.pdf" and not whole["truncated"]
        assert [c["position"] for c in whole["chunks"]] == list(range(whole["chunk_count"]))
        assert [c["page"] for c in whole["chunks"]] == sorted(c["page"] for c in whole["chunks"])
        window = http.post(
            "/tools/get_document",
            json={
                "collection": "docs",
                "document_id": hit["document_id"],
                "first_chunk": 1,
                "max_chunks": 1,
            },
        ).json()
        assert [c["position"] for c in window["chunks"]] == [1]
        assert window["truncated"] == (whole["chunk_count"] > 2)


def test_a_scoped_key_sees_only_its_collections(server: ToolsServer) -> None:
    with client(server, server.admin_key) as admin:
        names = {c["name"] for c in admin.post("/tools/list_collections").json()["collections"]}
        assert names == {"docs", "private"}
        secret = admin.post(
            "/tools/search", json={"collection": "private", "query": "launch code"}
        ).json()["passages"][0]
    with client(server, server.scoped_key) as scoped:
        listed = scoped.post("/tools/list_collections").json()["collections"]
        assert [c["name"] for c in listed] == ["docs"]
        out_of_scope = scoped.post(
            "/tools/search", json={"collection": "private", "query": "launch code"}
        )
        missing = scoped.post("/tools/search", json={"collection": "nope", "query": "launch code"})
        assert out_of_scope.status_code == missing.status_code == 404
        assert out_of_scope.json()["error"]["message"] == "Collection 'private' not found."
        document_id = secret["document_id"]
        for path, body in (
            ("/tools/get_document", {"collection": "private", "document_id": document_id}),
            (f"/v1/collections/private/documents/{document_id}", None),
        ):
            response = scoped.post(path, json=body) if body else scoped.get(path)
            assert response.status_code == 404, response.text
            assert PRIVATE_TEXT not in response.text
    with client(server, None) as anonymous:
        refused = anonymous.post("/tools/list_collections")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "missing_api_key"


def test_bad_tool_arguments_get_the_openai_error_envelope(server: ToolsServer) -> None:
    with client(server, server.admin_key) as http:
        bad = http.post("/tools/search", json={"collection": "docs", "query": "", "top_k": 0})
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        unknown = http.post("/tools/get_document", json={"collection": "docs", "document_id": "x"})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "document_id"


# --- MCP ------------------------------------------------------------------------------------
async def mcp_session_calls(
    url: str, key: str | None, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[Any]]:
    """Open a Streamable HTTP session with the official client, list tools, make `calls`."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        info = await session.initialize()
        assert info.server_info.name == "ragbridge"
        tools = [tool.name for tool in (await session.list_tools()).tools]
        results = [await session.call_tool(name, args) for name, args in calls]
    return tools, results


def structured(result: Any) -> dict[str, Any]:
    """A tool result's JSON: its structured content, which its text content repeats."""
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    assert json.loads(result.content[0].text) == data
    return data


def test_mcp_session_lists_tools_and_searches_in_korean_and_english(server: ToolsServer) -> None:
    tools, (listed, korean, english, document) = anyio.run(
        mcp_session_calls,
        server.url,
        server.admin_key,
        [
            ("list_collections", {}),
            ("search", {"collection": "docs", "query": "경복궁은 언제 지어졌나요?"}),
            ("search", {"collection": "docs", "query": "Where do quokkas live?", "top_k": 3}),
            ("get_document", {"collection": "docs", "document_id": "x"}),
        ],
    )
    assert set(tools) == TOOLS
    assert {c["name"] for c in structured(listed)["collections"]} == {"docs", "private"}
    ko = structured(korean)["passages"]
    assert FACTS["cp949_text"] in ko[0]["text"] and ko[0]["source"] == "palace.txt"
    en = structured(english)["passages"]
    assert len(en) <= 3 and FACTS["english_text"] in en[0]["text"]
    assert en[0]["url"].startswith(f"{server.url}/v1/collections/docs/documents/")
    assert document.is_error and "not found" in document.content[0].text


def test_mcp_respects_the_key_scope(server: ToolsServer) -> None:
    _, (listed, private, docs) = anyio.run(
        mcp_session_calls,
        server.url,
        server.scoped_key,
        [
            ("list_collections", {}),
            ("search", {"collection": "private", "query": "launch code"}),
            ("search", {"collection": "docs", "query": "보레알리스 펌프 필터"}),
        ],
    )
    assert [c["name"] for c in structured(listed)["collections"]] == ["docs"]
    assert private.is_error
    assert "Collection 'private' not found." in private.content[0].text
    assert PRIVATE_TEXT not in private.content[0].text
    assert structured(docs)["passages"][0]["source"] == "filter.txt"


def test_mcp_without_a_valid_key_is_refused_before_the_session(server: ToolsServer) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for key, code in ((None, "missing_api_key"), ("sk-wrong", "invalid_api_key")):
        with client(server, key) as http:
            refused = http.post("/mcp", json=initialize, headers=accept)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == code


# --- citations in answers -------------------------------------------------------------------
def assert_aligned(text: str, sources: list[dict[str, Any]], annotations: list[Any]) -> None:
    """Annotations come in passage order, one per passage (at its first `[n]` marker, or an empty
    span at the end for a passage never marked), each naming source n's URL."""
    urls = [source["source"]["url"] for source in sources]
    assert urls and all(url.startswith("http://127.0.0.1:") for url in urls)
    assert [s["metadata"][0]["source"] for s in sources] == urls  # one chip per passage
    seen = [a["url_citation"]["url"] for a in annotations]
    assert seen == urls  # Open WebUI numbers annotation sources as they come: [n] -> n
    for annotation in annotations:
        cite = annotation["url_citation"]
        number = urls.index(cite["url"]) + 1
        span = text[cite["start_index"] : cite["end_index"]]
        assert span in (f"[{number}]", ""), (span, number)
        assert cite["title"].startswith(sources[number - 1]["source"]["name"])
    assert {
        text[a["url_citation"]["start_index"] : a["url_citation"]["end_index"]] for a in annotations
    } >= {"[1]"}


def test_a_non_streamed_answer_carries_annotations_aligned_with_sources(
    server: ToolsServer, llm: ScriptedUpstream
) -> None:
    llm.script(Reply(tokens=["Every 90 days [1]", "; log it [1]."]))
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.admin_key, max_retries=0)
    completion = sdk.chat.completions.create(
        model="rag/docs", messages=[{"role": "user", "content": EN_QUESTION}]
    )
    message = completion.choices[0].message
    annotations = [a.model_dump() for a in message.annotations or []]
    sources = (completion.model_extra or {})["sources"]
    assert message.content == "Every 90 days [1]; log it [1]."
    assert_aligned(message.content, sources, annotations)
    first = [a for a in annotations if a["url_citation"]["url"] == sources[0]["source"]["url"]]
    # One annotation per passage, at its first marker (Open WebUI lists one source each).
    assert [(a["url_citation"]["start_index"], a["url_citation"]["end_index"]) for a in first] == [
        (14, 17)
    ]
    # The link opens the passage the model was given as [1].
    with client(server, server.admin_key) as http:
        url = sources[0]["source"]["url"]
        view = http.get(url.partition("#")[0]).json()
        position = int(url.rpartition("#chunk-")[2])
    assert view["chunks"][position]["text"] == sources[0]["document"][0]
    # The PDF page and valve.txt carry the fact and score alike; a PDF wraps its lines.
    assert FACTS["pdf_page_1"] in " ".join(sources[0]["document"][0].split())


def test_a_streamed_korean_answer_ends_with_annotations_after_its_source_events(
    server: ToolsServer, llm: ScriptedUpstream
) -> None:
    llm.script(Reply(tokens=["한라산은 ", "1,947미터입니다 [", "1]."]))  # a marker split in two
    payloads = []
    with (
        client(server, server.scoped_key) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "rag/docs",
                "stream": True,
                "messages": [{"role": "user", "content": KO_QUESTION}],
            },
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                payloads.append(json.loads(line[6:]))
    sources = [p["event"]["data"] for p in payloads if "event" in p]
    choices = [p["choices"][0] for p in payloads if p.get("choices")]
    text = "".join(c["delta"].get("content") or "" for c in choices)
    finishing = [c for c in choices if c.get("finish_reason")]
    assert text == "한라산은 1,947미터입니다 [1]." and len(finishing) == 1
    annotations = finishing[0]["delta"]["annotations"]
    assert [c for c in choices if "annotations" in c["delta"]] == finishing
    assert FACTS["korean_text"] in sources[0]["document"][0]
    assert_aligned(text, sources, annotations)
