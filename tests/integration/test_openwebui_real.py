"""ragbridge against the real open-webui==0.12.4 package (its own venv, see
`tests/support/openwebui.py`; skipped with the install command when absent).

- The Pipe Function loads through Open WebUI's own function loader and answers, streamed and not,
  in English and Korean, with its citations emitted through the event emitter.
- On a direct connection (Open WebUI's own streaming handler, direct path) the sources arrive
  through the `url_citation` annotations.
- One `open-webui serve` (started once for the module) connects to ragbridge's OpenAPI tool server
  and MCP server as an admin does in its settings, lists the tools, and calls `search` while
  answering a chat.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.documents import FACTS
from tests.support.openwebui import (
    ROOT,
    OpenWebUI,
    openwebui_env,
    openwebui_python,
    running_openwebui,
)
from tests.support.rag import EN_QUESTION, KO_QUESTION
from tests.support.tools import ToolsServer, tools_server
from tests.support.upstream import Reply, ScriptedUpstream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]  # Open WebUI starts in minutes on a busy machine

PIPE = ROOT / "integrations" / "openwebui" / "ragbridge_pipe.py"
DRIVER = ROOT / "tests" / "support" / "openwebui_pipe_driver.py"
DIRECT_DRIVER = ROOT / "tests" / "support" / "openwebui_direct_driver.py"


@pytest.fixture(scope="module")
def ragbridge(
    llm: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ToolsServer]:
    openwebui_python()  # skip before ingesting anything when open-webui is absent
    with tools_server(tmp_path_factory.mktemp("ragbridge") / "data", llm) as running:
        yield running


def drive_pipe(tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the driver under open-webui's python; its one JSON line of output."""
    done = subprocess.run(
        [
            "nice",
            "-n",
            "10",
            str(openwebui_python()),
            "-P",
            str(DRIVER),
            str(PIPE),
            json.dumps(spec),
        ],
        env=openwebui_env(tmp / "owui-data"),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_pipe_loads_through_open_webui_and_answers_with_citations(
    ragbridge: ToolsServer, llm: ScriptedUpstream, tmp_path: Path
) -> None:
    llm.script(
        Reply(tokens=["Every 90 days", " [1]."]),
        Reply(tokens=["1,947미터입니다", " [1]."]),
    )
    result = drive_pipe(
        tmp_path,
        {
            "base_url": f"{ragbridge.url}/v1",
            "key": ragbridge.scoped_key,  # the docs-only key: `private` is not offered
            "default_model": "stub-beta",
            "chats": [
                {"model": "rag/docs", "question": EN_QUESTION, "stream": True},
                {"model": "rag/docs", "question": KO_QUESTION, "stream": False},
            ],
        },
    )
    assert result["kind"] == "pipe" and result["title"] == "ragbridge"
    assert result["models"] == [{"id": "rag/docs", "name": "rag/docs"}]

    english, korean = result["chats"]
    assert english["text"] == "Every 90 days [1]." and english["pieces"] >= 2  # streamed
    assert korean["text"] == "1,947미터입니다 [1]."
    for chat, fact in ((english, FACTS["pdf_page_1"]), (korean, FACTS["korean_text"])):
        sources = [e["data"] for e in chat["events"] if e["type"] == "source"]
        assert sources, chat["events"]
        first = sources[0]
        # Whitespace-blind: a PDF wraps its lines (its page and valve.txt score alike).
        assert any(fact in " ".join(text.split()) for text in first["document"]), first
        assert first["source"]["url"].startswith(f"{ragbridge.url}/v1/collections/docs/documents/")
        assert first["metadata"][0]["source"] == first["source"]["url"]
    sent = llm.chat_requests[-2:]
    assert [r.body["model"] for r in sent] == ["stub-beta", "stub-beta"]  # the valve's model


def test_the_pipe_reports_a_wrong_key_as_a_model_and_as_text(
    ragbridge: ToolsServer, tmp_path: Path
) -> None:
    result = drive_pipe(
        tmp_path,
        {
            "base_url": f"{ragbridge.url}/v1",
            "key": "sk-wrong",
            "chats": [{"model": "rag/docs", "question": "hi", "stream": True}],
        },
    )
    (model,) = result["models"]
    assert model["id"] == "error" and "401" in model["name"]
    assert result["chats"][0]["text"].startswith("ragbridge error 401:")


# --- Open WebUI served -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def openwebui(
    ragbridge: ToolsServer, llm: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenWebUI]:
    """One Open WebUI for the module, with the scripted LLM as its OpenAI connection."""
    with running_openwebui(
        tmp_path_factory.mktemp("openwebui"),
        ENABLE_OPENAI_API="true",
        OPENAI_API_BASE_URL=llm.url,
        OPENAI_API_KEY="unused",
    ) as running:
        yield running


def tool_server_connections(ragbridge: ToolsServer) -> list[dict[str, Any]]:
    """What the admin enters in Settings > External Tools: ragbridge's tool server and MCP."""
    return [
        {
            "type": "openapi",
            "url": f"{ragbridge.url}/tools",
            "path": "openapi.json",
            "auth_type": "bearer",
            "key": ragbridge.scoped_key,
            "config": {"enable": True},
            "info": {"id": "ragbridge", "name": "ragbridge", "description": "Our documents"},
        },
        {
            "type": "mcp",
            "url": f"{ragbridge.url}/mcp",
            "path": "",
            "auth_type": "bearer",
            "key": ragbridge.scoped_key,
            "config": {"enable": True},
            "info": {"id": "ragbridge-mcp", "name": "ragbridge MCP"},
        },
    ]


def test_open_webui_verifies_and_lists_both_tool_servers(
    openwebui: OpenWebUI, ragbridge: ToolsServer
) -> None:
    openapi, mcp = tool_server_connections(ragbridge)
    with openwebui.client() as owui:
        verified = owui.post("/api/v1/configs/tool_servers/verify", json=openapi)
        assert verified.status_code == 200, verified.text
        operations = {
            op["operationId"]
            for methods in verified.json()["paths"].values()
            for op in methods.values()
        }
        assert operations == {"list_collections", "search", "get_document"}

        # Open WebUI's own MCP client: initialize, list tools.
        mcp_verified = owui.post("/api/v1/configs/tool_servers/verify", json=mcp)
        assert mcp_verified.status_code == 200, mcp_verified.text
        names = {spec["name"] for spec in mcp_verified.json()["specs"]}
        assert names == {"list_collections", "search", "get_document"}

        saved = owui.post(
            "/api/v1/configs/tool_servers", json={"TOOL_SERVER_CONNECTIONS": [openapi, mcp]}
        )
        assert saved.status_code == 200, saved.text
        tools = {tool["id"]: tool for tool in owui.get("/api/v1/tools/").json()}
    assert tools["server:ragbridge"]["name"] == "ragbridge"
    assert "server:mcp:ragbridge-mcp" in tools


def test_open_webui_calls_the_tool_server_while_answering(
    openwebui: OpenWebUI, ragbridge: ToolsServer, llm: ScriptedUpstream
) -> None:
    """Open WebUI's tool step (function calling "legacy"): its task model picks `search`,
    Open WebUI calls ragbridge's tool server, and the passages reach the answering model."""
    openapi, mcp = tool_server_connections(ragbridge)
    pick = {
        "tool_calls": [
            {"name": "search", "parameters": {"collection": "docs", "query": "한라산 높이"}}
        ]
    }
    llm.rescript(
        Reply(tokens=[json.dumps(pick, ensure_ascii=False)]),
        Reply(tokens=["1,947미터입니다."]),
    )
    with openwebui.client() as owui:
        saved = owui.post(
            "/api/v1/configs/tool_servers", json={"TOOL_SERVER_CONNECTIONS": [openapi, mcp]}
        )
        assert saved.status_code == 200, saved.text
        models = [m["id"] for m in owui.get("/api/models").json()["data"]]
        assert "stub-alpha" in models
        before = len(llm.chat_requests)
        answer = owui.post(
            "/api/chat/completions",
            json={
                "model": "stub-alpha",
                "messages": [{"role": "user", "content": KO_QUESTION}],
                "stream": False,
                "tool_ids": ["server:ragbridge"],
                "params": {"function_calling": "legacy"},
            },
        )
    assert answer.status_code == 200, answer.text
    assert "1,947미터입니다." in json.dumps(answer.json(), ensure_ascii=False)
    prompts = [
        json.dumps(r.body["messages"], ensure_ascii=False) for r in llm.chat_requests[before:]
    ]
    assert any("search" in p for p in prompts[:1])  # the tool step offered our tool
    assert FACTS["korean_text"] in prompts[-1], prompts[-1][:2000]  # the passage came back


def test_on_a_direct_connection_sources_arrive_through_annotations(
    ragbridge: ToolsServer, llm: ScriptedUpstream, tmp_path: Path
) -> None:
    """ragbridge's stream, byte for byte, through Open WebUI's streaming handler with
    `request.state.direct` set (what the browser relays on a direct connection): Open WebUI drops
    the `event` chunks there, and the sources come from the `url_citation` annotations."""
    llm.script(Reply(tokens=["한라산은 1,947미터입니다 [1]", ", 제주도에 있습니다 [1]."]))
    with (
        httpx.Client(base_url=ragbridge.url, timeout=120) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {ragbridge.scoped_key}"},
            json={
                "model": "rag/docs",
                "stream": True,
                "messages": [{"role": "user", "content": KO_QUESTION}],
            },
        ) as response,
    ):
        assert response.status_code == 200
        raw = response.read().decode()
    (tmp_path / "stream.txt").write_text(raw, encoding="utf-8")
    passages = [
        json.loads(line[6:])["event"]["data"]["source"]["url"]
        for line in raw.splitlines()
        if line.startswith("data: {") and '"event"' in line
    ]
    stream = tmp_path / "stream.txt"
    done = subprocess.run(
        ["nice", "-n", "10", str(openwebui_python()), "-P", str(DIRECT_DRIVER), str(stream)],
        env=openwebui_env(tmp_path / "owui-data"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    events = json.loads(done.stdout.strip().splitlines()[-1])
    sources = [e["data"] for e in events if e["type"] == "source"]
    assert passages and [s["source"]["url"] for s in sources][: len(passages)] == passages
    assert len({s["source"]["url"] for s in sources}) == len(passages)  # [n] -> passage n
    assert all(s["metadata"][0]["source"] == s["source"]["url"] for s in sources)
    final = next(e["data"] for e in events if e["type"] == "chat:completion")
    text = final["output"][0]["content"][0]["text"]
    assert text == "한라산은 1,947미터입니다 [1], 제주도에 있습니다 [1]."
