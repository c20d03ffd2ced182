"""Runs under open-webui's own Python (.venv-openwebui): feeds a chat stream, as ragbridge sent
it, through Open WebUI's streaming response handler on the direct-connection path, and prints
the events Open WebUI emits to the browser as one JSON line.

    python -P openwebui_direct_driver.py STREAM_FILE

On a direct connection the browser calls ragbridge and relays each SSE line to the backend
(`utils/chat.py: generate_direct_chat_completion`), which hands the re-emitted lines to
`utils/middleware.py: streaming_chat_response_handler` with `request.state.direct` set; that is
the code run here, with the stream's bytes as they came off ragbridge.
"""

import asyncio
import json
import sys
import time
from types import SimpleNamespace
from typing import Any

from open_webui.models.users import UserModel
from open_webui.utils.middleware import streaming_chat_response_handler
from starlette.requests import Request
from starlette.responses import StreamingResponse


async def run(stream: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    finished = asyncio.Event()

    async def emitter(event: dict[str, Any]) -> None:
        events.append(event)
        data = event.get("data") or {}
        if event.get("type") == "chat:completion" and data.get("done"):
            finished.set()

    async def lines() -> Any:
        for line in stream.split("\n\n"):
            if line.strip():
                yield f"{line}\n\n"  # as generate_direct_chat_completion re-emits them

    app = SimpleNamespace(state=SimpleNamespace(config=SimpleNamespace(), MODELS={}, redis=None))
    request = Request({"type": "http", "app": app, "headers": [], "query_string": b""})
    request.state.direct = True
    request.state.metadata = {}
    now = int(time.time())
    user = UserModel(
        id="u-1",
        name="김민준",
        email="minjun@example.com",
        role="user",
        profile_image_url="",
        last_active_at=now,
        updated_at=now,
        created_at=now,
    )
    model = {"id": "rag/docs", "name": "rag/docs", "owned_by": "openai", "direct": True}
    ctx = {
        "request": request,
        "form_data": {"model": "rag/docs", "messages": [], "stream": True},
        "user": user,
        "model": model,
        "metadata": {
            "chat_id": "local:direct-test",
            "message_id": "m-1",
            "session_id": "s-1",
            "user_id": "u-1",
            "direct": True,
            "params": {},
        },
        "tasks": None,
        "events": [],
        "event_emitter": emitter,
        "event_caller": None,
        "assistant_message": None,
    }
    response = StreamingResponse(lines(), media_type="text/event-stream")
    await streaming_chat_response_handler(response, ctx)
    await asyncio.wait_for(finished.wait(), timeout=120)
    return events


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        content = f.read()
    print(json.dumps(asyncio.run(run(content)), ensure_ascii=False, default=str))
