"""Runs under open-webui's own Python (.venv-openwebui), not the project's: loads the ragbridge
Pipe through Open WebUI's function loader and drives it the way Open WebUI's
`generate_function_chat_completion` does, printing what happened as one JSON line.

    python openwebui_pipe_driver.py PIPE_FILE '{"base_url": ..., "key": ..., "chats": [...]}'

Each chat is `{"model": "<id from pipes()>", "question": ..., "stream": bool}`; for each the
output has the answer text and the events the Pipe emitted.
"""

import asyncio
import inspect
import json
import sys
from typing import Any

from open_webui.utils.plugin import load_function_module_by_id

FUNCTION_ID = "ragbridge"
USER = {"id": "u-1", "name": "김민준", "email": "minjun@example.com", "role": "admin"}


async def run(content: str, spec: dict[str, Any]) -> dict[str, Any]:
    pipe, kind, frontmatter, _ = await load_function_module_by_id(FUNCTION_ID, content=content)
    pipe.valves = pipe.Valves(
        RAGBRIDGE_BASE_URL=spec["base_url"],
        RAGBRIDGE_API_KEY=spec["key"],
        DEFAULT_UPSTREAM_MODEL=spec.get("default_model", ""),
    )
    listed = await pipe.pipes() if inspect.iscoroutinefunction(pipe.pipes) else pipe.pipes()
    chats = []
    for chat in spec["chats"]:
        events: list[dict[str, Any]] = []

        async def emitter(event: dict[str, Any], events: list[dict[str, Any]] = events) -> None:
            events.append(event)

        body = {
            "model": f"{FUNCTION_ID}.{chat['model']}",
            "messages": [{"role": "user", "content": chat["question"]}],
            "stream": chat["stream"],
        }
        # Open WebUI passes only the parameters the pipe's signature names.
        extra = {
            "__event_emitter__": emitter,
            "__user__": USER,
            "__metadata__": {"chat_id": "chat-1", "message_id": "m-1", "session_id": "s-1"},
            "__task__": None,
        }
        params = {"body": body} | {
            k: v for k, v in extra.items() if k in inspect.signature(pipe.pipe).parameters
        }
        result = await pipe.pipe(**params)
        if isinstance(result, str):
            text, pieces = result, 1
        else:
            parts = [str(piece) async for piece in result]
            text, pieces = "".join(parts), len(parts)
        chats.append({"text": text, "pieces": pieces, "events": events})
    return {
        "kind": kind,
        "title": frontmatter.get("title"),
        "name": getattr(pipe, "name", None),
        "models": listed,
        "chats": chats,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        content = f.read()
    print(json.dumps(asyncio.run(run(content, json.loads(sys.argv[2]))), ensure_ascii=False))
