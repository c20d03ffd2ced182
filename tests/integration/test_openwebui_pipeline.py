"""The Open WebUI Pipelines plugin against a real ragbridge on loopback (and a scripted upstream).

The plugin is loaded from its file the way the Pipelines server loads it, then driven the way that
server drives a manifold: `pipelines()` for the model list, `pipe(...)` per chat, whose result is
a dict (non-streamed), a text (errors) or an iterator of `data:` lines (streamed).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ragbridge.settings import Settings
from tests.support.documents import FACTS, english_text_bytes
from tests.support.server import free_port
from tests.support.upstream import Reply, ScriptedUpstream

PLUGIN = (
    Path(__file__).resolve().parents[2] / "integrations" / "openwebui" / "ragbridge_pipeline.py"
)
ADMIN_KEY = "sk-admin-pipeline-test"
MAPPED_HEADERS = {"X-User-Id": "{request.header.X-OpenWebUI-User-Id}"}
# What Open WebUI puts into a pipeline's body besides the OpenAI fields.
OPENWEBUI_USER = {"id": "u-7", "name": "김민준", "email": "minjun@example.com", "role": "user"}

Serve = Callable[[Settings], AbstractContextManager[str]]


def load_plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ragbridge_pipeline", PLUGIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plugin_for(base_url: str, key: str = ADMIN_KEY, collections: str = "") -> Any:
    pipeline = load_plugin().Pipeline()
    pipeline.valves = pipeline.Valves(
        RAGBRIDGE_BASE_URL=f"{base_url}/v1", RAGBRIDGE_API_KEY=key, COLLECTIONS=collections
    )
    return pipeline


def add_document(base_url: str, collection: str, name: str, content: bytes) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        created = client.post("/v1/collections", json={"name": collection})
        assert created.status_code in {200, 201, 409}, created.text
        uploaded = client.post(
            f"/v1/collections/{collection}/documents", files={"file": (name, content)}
        )
        assert uploaded.status_code in {200, 201}, uploaded.text


def chat_body(model_id: str, question: str, *, stream: bool) -> dict[str, Any]:
    """A body as the Pipelines server hands it to `pipe` (Open WebUI's ids and user added)."""
    return {
        "model": f"ragbridge_pipeline.{model_id}",
        "messages": [{"role": "user", "content": question}],
        "stream": stream,
        "user": OPENWEBUI_USER,
        "chat_id": "chat-42",
        "title": False,
    }


def run_pipe(pipeline: Any, model_id: str, body: dict[str, Any]) -> Any:
    return pipeline.pipe(
        user_message=body["messages"][-1]["content"],
        model_id=model_id,
        messages=body["messages"],
        body=body,
    )


def events(lines: Iterator[str] | str | dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON payloads of relayed `data:` lines, checking each line's form on the way."""
    assert not isinstance(lines, str | dict), f"not a stream: {lines}"
    payloads = []
    for line in lines:
        assert isinstance(line, str) and line.startswith("data:"), line
        assert line[5:].strip() != "[DONE]"  # the Pipelines server sends its own
        payloads.append(json.loads(line[5:]))
    return payloads


def content_of(payloads: list[dict[str, Any]]) -> str:
    return "".join(
        choice.get("delta", {}).get("content") or ""
        for payload in payloads
        for choice in payload.get("choices", [])
    )


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream().serve() as scripted:
        yield scripted


@pytest.fixture
def ragbridge(
    make_settings: Callable[..., Settings], serve_app: Serve, upstream: ScriptedUpstream
) -> Iterator[str]:
    settings = make_settings(
        api_key=ADMIN_KEY, upstream_base_url=upstream.url, upstream_headers=MAPPED_HEADERS
    )
    with serve_app(settings) as base_url:
        yield base_url


def test_the_plugin_is_a_manifold_needing_only_what_the_pipelines_server_has() -> None:
    tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported - sys.stdlib_module_names <= {"requests", "pydantic"}
    assert "ragbridge" not in imported
    pipeline = load_plugin().Pipeline()
    assert pipeline.type == "manifold"
    assert set(pipeline.Valves.model_fields) >= {
        "RAGBRIDGE_BASE_URL",
        "RAGBRIDGE_API_KEY",
        "COLLECTIONS",
    }
    assert pipeline.valves.RAGBRIDGE_BASE_URL.endswith("/v1")


def test_streamed_chat_is_relayed_line_by_line_with_open_webui_user_headers(
    ragbridge: str, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=["Hello", ", ", "사용자", "!"]))
    result = run_pipe(
        plugin_for(ragbridge), "stub-alpha", chat_body("stub-alpha", "hi", stream=True)
    )
    payloads = events(result)
    assert content_of(payloads) == "Hello, 사용자!"
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    sent = upstream.chat_requests[-1]
    assert sent.body["model"] == "stub-alpha"
    assert sent.body["stream"] is True
    # Open WebUI-only fields stay behind; the user came as headers, which ragbridge mapped.
    assert not {"user", "chat_id", "title"} & set(sent.body)
    assert sent.headers["x-user-id"] == OPENWEBUI_USER["id"]


def test_non_streamed_chat_returns_ragbridge_json(
    ragbridge: str, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=["Forty", "-two"]))
    body = chat_body("stub-beta", "answer?", stream=False)
    body["temperature"] = 0.2
    answer = run_pipe(plugin_for(ragbridge), "stub-beta", body)
    assert isinstance(answer, dict), answer
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Forty-two"
    assert answer["usage"]["completion_tokens"] == 2
    assert upstream.chat_requests[-1].body["temperature"] == 0.2


def test_user_names_in_korean_reach_ragbridge_percent_encoded(
    make_settings: Callable[..., Settings], serve_app: Serve, upstream: ScriptedUpstream
) -> None:
    settings = make_settings(
        api_key=ADMIN_KEY,
        upstream_base_url=upstream.url,
        upstream_headers={"X-User-Name": "{request.header.X-OpenWebUI-User-Name}"},
    )
    with serve_app(settings) as base_url:
        result = run_pipe(
            plugin_for(base_url), "stub-alpha", chat_body("stub-alpha", "hi", stream=True)
        )
        events(result)
    assert upstream.chat_requests[-1].headers["x-user-name"] == quote("김민준", safe=" ")


def test_errors_come_back_as_text_open_webui_can_show(
    ragbridge: str, upstream: ScriptedUpstream
) -> None:
    wrong_key = plugin_for(ragbridge, key="sk-wrong")
    refused = run_pipe(wrong_key, "stub-alpha", chat_body("stub-alpha", "hi", stream=True))
    assert isinstance(refused, str) and refused.startswith("ragbridge error 401:")
    (listed,) = wrong_key.pipelines()
    assert listed["id"] == "error" and "401" in listed["name"]

    upstream.fail_next(1, status=400, message="context too long")
    failed = run_pipe(
        plugin_for(ragbridge), "stub-alpha", chat_body("stub-alpha", "x", stream=False)
    )
    assert isinstance(failed, str) and "context too long" in failed


def test_an_unreachable_ragbridge_is_reported_not_raised() -> None:
    pipeline = plugin_for(f"http://127.0.0.1:{free_port()}")
    (listed,) = pipeline.pipelines()
    assert listed["id"] == "error" and "cannot reach ragbridge" in listed["name"]
    answer = run_pipe(pipeline, "rag/any", chat_body("rag/any", "hi", stream=True))
    assert isinstance(answer, str) and answer.startswith("ragbridge is unreachable")


def test_lists_rag_models_only_and_filters_by_collection(
    ragbridge: str, upstream: ScriptedUpstream
) -> None:
    add_document(ragbridge, "handbook", "quokkas.txt", english_text_bytes())
    add_document(ragbridge, "manuals", "quokkas.txt", english_text_bytes())

    ids = {model["id"] for model in plugin_for(ragbridge).pipelines()}
    assert {"rag/handbook", "rag/manuals"} <= ids
    assert all(model_id.startswith("rag/") for model_id in ids)  # stub-* stay out

    only = {model["id"] for model in plugin_for(ragbridge, collections="manuals").pipelines()}
    assert "rag/manuals" in only and all(m.split("/")[1] == "manuals" for m in only)


def test_a_rag_answer_streams_its_citations_through_the_plugin(
    ragbridge: str, upstream: ScriptedUpstream
) -> None:
    add_document(ragbridge, "handbook", "quokkas.txt", english_text_bytes())
    upstream.script(Reply(tokens=["On Rottnest", " [1]."]))
    body = chat_body("rag/handbook", "Where do quokkas live?", stream=True)
    payloads = events(run_pipe(plugin_for(ragbridge), "rag/handbook", body))

    sources = [p["event"]["data"] for p in payloads if p.get("event", {}).get("type") == "source"]
    assert sources, "no citation events relayed"
    assert any(FACTS["english_text"] in text for s in sources for text in s["document"])
    first_content = next(i for i, p in enumerate(payloads) if content_of([p]))
    first_source = next(i for i, p in enumerate(payloads) if "event" in p)
    assert first_source < first_content  # chips arrive before the first token
    assert content_of(payloads) == "On Rottnest [1]."
    prompt = json.dumps(upstream.chat_requests[-1].body["messages"], ensure_ascii=False)
    assert "Rottnest Island" in prompt  # the passage reached the model
