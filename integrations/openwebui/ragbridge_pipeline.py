"""
title: ragbridge
author: ragbridge
version: 0.1.0
license: Apache-2.0
description: ragbridge collections as models (rag/*) in Open WebUI, through the Pipelines server
"""

# An Open WebUI Pipelines "manifold": one model per ragbridge collection. Drop this file into the
# Pipelines server (Admin Panel > Settings > Pipelines > upload), then set the valves. Only
# `requests`, `pydantic` and the standard library are used; the Pipelines server ships them.
# The docstring above is read by the Pipelines server as front matter (no `requirements:` line,
# so it installs nothing).

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, Field

RAG_MODEL_PREFIX = "rag/"
MODELS_CACHE_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
# Keys Open WebUI adds to a pipeline's body that an OpenAI-compatible server does not expect.
OPENWEBUI_ONLY_FIELDS = ("chat_id", "title", "metadata")


class Pipeline:
    """Lists ragbridge's rag/* models and relays chats to ragbridge unchanged."""

    class Valves(BaseModel):
        RAGBRIDGE_BASE_URL: str = Field(
            default=os.getenv("RAGBRIDGE_BASE_URL", "http://ragbridge:8000/v1"),
            description="ragbridge's OpenAI-compatible base URL, ending in /v1.",
        )
        RAGBRIDGE_API_KEY: str = Field(
            default=os.getenv("RAGBRIDGE_API_KEY", ""),
            description="A ragbridge API key (its collection scope limits the models shown).",
        )
        COLLECTIONS: str = Field(
            default="",
            description="Comma-separated collections to offer; empty offers every collection.",
        )
        TIMEOUT: float = Field(
            default=300.0, description="Seconds to wait for ragbridge between streamed chunks."
        )

    def __init__(self) -> None:
        # The Pipelines server names this manifold after the file (ragbridge_pipeline) and its
        # models `ragbridge_pipeline.<id>`; it hands `pipe` the part after the first dot.
        self.type = "manifold"
        self.name = "ragbridge: "
        self.valves = self.Valves()
        self._models: list[dict[str, str]] = []
        self._models_at = float("-inf")

    async def on_valves_updated(self) -> None:
        """New URL, key or filter: list the models afresh on the next call."""
        self._models_at = float("-inf")

    def pipelines(self) -> list[dict[str, str]]:
        """ragbridge's rag/* models as `{"id", "name"}` (cached: the server asks per request)."""
        if time.monotonic() - self._models_at < MODELS_CACHE_SECONDS:
            return self._models
        try:
            response = requests.get(
                f"{self._base_url()}/models",
                headers=self._headers(),
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            return [{"id": "error", "name": f"cannot reach ragbridge: {exc}"}]
        if response.status_code != 200:
            return [{"id": "error", "name": _error_text(response)}]
        wanted = {name.strip() for name in self.valves.COLLECTIONS.split(",") if name.strip()}
        models = []
        for model in response.json().get("data", []):
            model_id = str(model.get("id", ""))
            if not model_id.startswith(RAG_MODEL_PREFIX):
                continue
            collection = model_id[len(RAG_MODEL_PREFIX) :].split("/", 1)[0]
            if wanted and collection not in wanted:
                continue
            models.append({"id": model_id, "name": str(model.get("name") or model_id)})
        self._models, self._models_at = models, time.monotonic()
        return models

    def pipe(
        self, user_message: str, model_id: str, messages: list[dict[str, Any]], body: dict[str, Any]
    ) -> str | Iterator[str] | dict[str, Any]:
        """Forward the whole chat request to ragbridge as `model_id`.

        Streams yield ragbridge's `data:` lines as they come, citation events included (the
        Pipelines server ends the stream itself, so ragbridge's `[DONE]` is held back). A
        non-streamed answer is returned as ragbridge's JSON, keeping `sources` and `usage`.
        Errors come back as text, which Open WebUI shows in the chat.
        """
        payload = {k: v for k, v in body.items() if k not in OPENWEBUI_ONLY_FIELDS}
        payload["model"] = model_id
        headers = self._headers()
        user = payload.pop("user", None)
        if isinstance(user, dict):
            headers.update(_user_headers(user))
        elif isinstance(user, str):
            payload["user"] = user
        if body.get("chat_id"):
            headers["X-OpenWebUI-Chat-Id"] = str(body["chat_id"])
        stream = bool(payload.get("stream"))
        try:
            response = requests.post(
                f"{self._base_url()}/chat/completions",
                json=payload,
                headers=headers,
                stream=stream,
                timeout=(CONNECT_TIMEOUT_SECONDS, self.valves.TIMEOUT),
            )
        except requests.RequestException as exc:
            return f"ragbridge is unreachable: {exc}"
        if response.status_code != 200:
            return _error_text(response)
        if stream:
            return _relay_events(response)
        answer: dict[str, Any] = response.json()
        return answer

    def _base_url(self) -> str:
        return self.valves.RAGBRIDGE_BASE_URL.rstrip("/")

    def _headers(self) -> dict[str, str]:
        key = self.valves.RAGBRIDGE_API_KEY
        return {"Authorization": f"Bearer {key}"} if key else {}


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


def _relay_events(response: requests.Response) -> Iterator[str]:
    """ragbridge's SSE `data:` lines, minus keep-alive comments, blank lines and `[DONE]`."""
    with response:
        try:
            for raw in response.iter_lines():
                line = raw.decode("utf-8")
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    yield line
        except requests.RequestException as exc:
            error = {"error": {"message": f"ragbridge stream broke: {exc}", "type": "api_error"}}
            yield f"data: {json.dumps(error)}"


def _error_text(response: requests.Response) -> str:
    """One readable line from an OpenAI-style error envelope (or the raw body)."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500]
    return f"ragbridge error {response.status_code}: {message}"
