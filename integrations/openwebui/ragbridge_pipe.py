"""
title: ragbridge
author: ragbridge
version: 0.1.0
license: Apache-2.0
description: ragbridge collections as models (rag/*) in Open WebUI, answers streamed with citations
"""

# An Open WebUI Function (a "Pipe" manifold): Workspace > Functions > Import (or + and paste this
# file), enable it, then set its valves. It lists one model per ragbridge collection, relays each
# chat to ragbridge and turns ragbridge's sources into Open WebUI citations through the event
# emitter, so they render on every Open WebUI path. It needs only `httpx` and `pydantic`, which
# Open WebUI ships (no `requirements:` line: nothing is pip-installed).

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field

RAG_MODEL_PREFIX = "rag/"
CONNECT_TIMEOUT_SECONDS = 10.0
# Keys Open WebUI adds to a chat body that an OpenAI-compatible server does not expect.
OPENWEBUI_ONLY_FIELDS = ("chat_id", "id", "title", "metadata", "features", "variables", "files")

Emitter = Callable[[dict[str, Any]], Awaitable[None]]


class Pipe:
    """Lists ragbridge's rag/* models and answers them through ragbridge, with citations."""

    class Valves(BaseModel):
        RAGBRIDGE_BASE_URL: str = Field(
            default="http://ragbridge:8000/v1",
            description="ragbridge's OpenAI-compatible base URL, ending in /v1.",
        )
        RAGBRIDGE_API_KEY: str = Field(
            default="",
            description="A ragbridge API key (its collection scope limits the models listed).",
        )
        DEFAULT_UPSTREAM_MODEL: str = Field(
            default="",
            description="Upstream LLM for rag/<collection> (rag/<collection>/<model>); empty "
            "uses ragbridge's default.",
        )
        COLLECTIONS: str = Field(
            default="", description="Comma-separated collections to offer; empty offers all."
        )
        TIMEOUT: float = Field(
            default=300.0, description="Seconds to wait for ragbridge between streamed chunks."
        )

    def __init__(self) -> None:
        # Open WebUI names the models `<function id>.<id>` and shows `name` + each model's name.
        self.name = "ragbridge: "
        self.valves = self.Valves()

    async def pipes(self) -> list[dict[str, str]]:
        """ragbridge's rag/<collection> models as `{"id", "name"}`; a model named after the
        problem when ragbridge cannot be listed (so the admin sees why)."""
        try:
            async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_SECONDS) as client:
                response = await client.get(f"{self._base_url()}/models", headers=self._headers())
        except httpx.HTTPError as exc:
            return [{"id": "error", "name": f"cannot reach ragbridge: {exc}"}]
        if response.status_code != 200:
            return [{"id": "error", "name": _error_text(response)}]
        wanted = {name.strip() for name in self.valves.COLLECTIONS.split(",") if name.strip()}
        models = []
        for model in response.json().get("data", []):
            model_id = str(model.get("id", ""))
            collection = model_id[len(RAG_MODEL_PREFIX) :]
            if not model_id.startswith(RAG_MODEL_PREFIX) or "/" in collection:
                continue
            if wanted and collection not in wanted:
                continue
            models.append({"id": model_id, "name": model_id})
        return models

    async def pipe(
        self,
        body: dict[str, Any],
        __user__: dict[str, Any] | None = None,
        __event_emitter__: Emitter | None = None,
        __metadata__: dict[str, Any] | None = None,
    ) -> str | AsyncIterator[str]:
        """Answer `body` with ragbridge: the text streams back (or comes whole), and each
        passage ragbridge cites becomes an Open WebUI `source` event. Errors come back as text,
        which Open WebUI shows in the chat."""
        payload = {k: v for k, v in body.items() if k not in OPENWEBUI_ONLY_FIELDS}
        payload["model"] = self._model(str(body.get("model", "")))
        payload.pop("user", None)
        headers = {**self._headers(), **_user_headers(__user__ or {})}
        if __metadata__ and __metadata__.get("chat_id"):
            headers["X-OpenWebUI-Chat-Id"] = str(__metadata__["chat_id"])
        emit = __event_emitter__ or _no_emitter
        timeout = httpx.Timeout(self.valves.TIMEOUT, connect=CONNECT_TIMEOUT_SECONDS)
        client = httpx.AsyncClient(timeout=timeout)
        try:
            request = client.build_request(
                "POST", f"{self._base_url()}/chat/completions", json=payload, headers=headers
            )
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await client.aclose()
            return f"ragbridge is unreachable: {exc}"
        if response.status_code != 200:
            await response.aread()
            await client.aclose()
            return _error_text(response)
        if not payload.get("stream"):
            try:
                await response.aread()
                return await _answer(response.json(), emit)
            finally:
                await client.aclose()
        return _relay(client, response, emit)

    def _model(self, model: str) -> str:
        """ragbridge's model id for Open WebUI's `<function id>.<id>`, with the valve's upstream
        model when the id names none."""
        model = model.split(".", 1)[1] if "." in model.split("/", 1)[0] else model
        collection = model[len(RAG_MODEL_PREFIX) :]
        default = self.valves.DEFAULT_UPSTREAM_MODEL.strip()
        if model.startswith(RAG_MODEL_PREFIX) and "/" not in collection and default:
            return f"{model}/{default}"
        return model

    def _base_url(self) -> str:
        return self.valves.RAGBRIDGE_BASE_URL.rstrip("/")

    def _headers(self) -> dict[str, str]:
        key = self.valves.RAGBRIDGE_API_KEY
        return {"Authorization": f"Bearer {key}"} if key else {}


async def _no_emitter(_: dict[str, Any]) -> None:
    return None


async def _answer(completion: dict[str, Any], emit: Emitter) -> str:
    """A non-streamed answer's text, after emitting its `sources` as citations."""
    for source in completion.get("sources") or []:
        await emit({"type": "source", "data": source})
    choices = completion.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


async def _relay(
    client: httpx.AsyncClient, response: httpx.Response, emit: Emitter
) -> AsyncIterator[str]:
    """The answer's text as it streams; ragbridge's source events go to the emitter."""
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # keep-alive comments, blank lines
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if isinstance(chunk.get("event"), dict):
                await emit(chunk["event"])  # {"type": "source", "data": {...}}
                continue
            if isinstance(chunk.get("error"), dict):
                yield f"\n\nragbridge error: {chunk['error'].get('message', chunk['error'])}"
                continue
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
    except httpx.HTTPError as exc:
        yield f"\n\nragbridge stream broke: {exc}"
    finally:
        await response.aclose()
        await client.aclose()


def _user_headers(user: dict[str, Any]) -> dict[str, str]:
    """The headers Open WebUI itself sends with ENABLE_FORWARD_USER_INFO_HEADERS."""
    headers = {
        "X-OpenWebUI-User-Id": user.get("id"),
        # Names may be non-ASCII (Korean); Open WebUI percent-encodes them the same way.
        "X-OpenWebUI-User-Name": quote(str(user["name"]), safe=" ") if user.get("name") else None,
        "X-OpenWebUI-User-Email": user.get("email"),
        "X-OpenWebUI-User-Role": user.get("role"),
    }
    return {name: str(value) for name, value in headers.items() if value}


def _error_text(response: httpx.Response) -> str:
    """One readable line from an OpenAI-style error envelope (or the raw body)."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500]
    return f"ragbridge error {response.status_code}: {message}"
