"""Real Open WebUI traffic replayed against ragbridge: every request gets a valid answer."""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from ragbridge.api.schemas import ChatCompletion, ChatCompletionChunk
from ragbridge.settings import Settings
from tests.support.paths import OPENWEBUI_FIXTURES as FIXTURES
from tests.support.upstream import ScriptedUpstream, gateway_settings

RECORDED = sorted(FIXTURES.glob("*.json"))
HOP_BY_HOP = {"host", "content-length", "accept-encoding", "connection"}
HEADER_MAP = {
    "User-Id": "{request.header.X-OpenWebUI-User-Id}",
    "User-Email": "{request.header.X-OpenWebUI-User-Email}",
}


def test_every_recorded_open_webui_request_gets_a_valid_answer(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    settings = make_settings(**gateway_settings(upstream, upstream_headers=HEADER_MAP))
    with serve_app(settings) as url, httpx.Client(base_url=url) as client:
        for path in RECORDED:
            recorded = json.loads(path.read_text())
            headers = {k: v for k, v in recorded["headers"].items() if k.lower() not in HOP_BY_HOP}
            body: dict[str, Any] = recorded["body"]
            response = client.request(
                recorded["method"], recorded["path"], json=body, headers=headers
            )

            assert response.status_code == 200, (path.name, response.text)
            if body.get("stream"):
                assert response.headers["content-type"].startswith("text/event-stream")
                events = [
                    line[6:] for line in response.text.splitlines() if line.startswith("data: ")
                ]
                assert events[-1] == "[DONE]", path.name
                chunks = [ChatCompletionChunk.model_validate_json(e) for e in events[:-1]]
                assert "".join(c.choices[0].delta.get("content") or "" for c in chunks), path.name
            else:
                completion = ChatCompletion.model_validate(response.json())
                assert completion.choices[0].message["content"], path.name

            sent = upstream.chat_requests[-1]
            assert sent.body == body, path.name  # the whole history, the model, the tools
            user_id = recorded["headers"].get("X-OpenWebUI-User-Id")
            assert sent.headers.get("user-id") == user_id, path.name
            if user_id:
                assert sent.headers["user-email"] == recorded["headers"]["X-OpenWebUI-User-Email"]
    assert len(upstream.chat_requests) == len(RECORDED)
