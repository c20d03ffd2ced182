"""One chat turn: classify the request, then answer it through the upstream LLM.

The turn's request body is what the client sent, unchanged: the whole history, the model the user
picked and every other OpenAI field go upstream as they came.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.llm.sse import completion_to_chunks
from ragbridge.llm.upstream import UpstreamClient
from ragbridge.settings import Settings

TASK_PREFIX = "### Task:"


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: its string content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def is_task_request(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether Open WebUI made this request for itself (title, tags, follow-ups, ...).

    Those carry exactly one user message starting `### Task:` (a system prompt may precede it)
    and no earlier turns; they need no retrieval.
    """
    users = [m for m in messages if m.get("role") == "user"]
    others = [m for m in messages if m.get("role") not in ("user", "system", "developer")]
    return (
        len(users) == 1 and not others and message_text(users[0]).lstrip().startswith(TASK_PREFIX)
    )


@dataclass(frozen=True)
class ChatTurn:
    """One chat request: the body as the client sent it, its headers, and what we made of it."""

    body: dict[str, Any]
    headers: Mapping[str, str]
    is_task: bool

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))


class ChatService:
    """Answers chat turns: relays them to the upstream LLM, unchanged.

    Where RAG plugs in (issue 4): `complete` and `stream` are the two entry points. For a model
    named `rag/<collection>` or `rag/<collection>/<upstream-model>`, and unless `turn.is_task`,
    they retrieve from the collection, build the prompt (the history with the numbered passages)
    and send that upstream with the upstream model id instead of the body as it came (or answer
    extractively when no upstream is configured). `stream` yields the source events before the
    first token; `complete` adds a top-level `sources` list. Every other model is relayed as-is.
    """

    def __init__(self, settings: Settings, upstream: UpstreamClient | None) -> None:
        self._settings = settings
        self._upstream = upstream

    def turn(self, body: dict[str, Any], headers: Mapping[str, str]) -> ChatTurn:
        """Classify a validated chat request body."""
        messages = body["messages"]
        if len(messages) > self._settings.max_messages:
            raise InvalidRequest(
                f"Too many messages: {len(messages)} (at most {self._settings.max_messages}).",
                param="messages",
            )
        return ChatTurn(body=body, headers=headers, is_task=is_task_request(messages))

    async def list_models(self) -> list[dict[str, Any]]:
        """The models a client can pick: the upstream's (an unreachable upstream raises)."""
        if self._upstream is None:
            return []
        return [
            {"object": "model", "created": 0, "owned_by": "upstream", **model}
            for model in await self._upstream.list_models()
        ]

    async def complete(self, turn: ChatTurn) -> dict[str, Any]:
        """A non-streamed answer, in OpenAI's `chat.completion` shape."""
        upstream = await self._upstream_for(turn)
        completion = await upstream.complete(turn.body, turn.headers)
        completion.setdefault("id", f"chatcmpl-{time.time_ns()}")
        completion.setdefault("object", "chat.completion")
        completion.setdefault("created", int(time.time()))
        completion.setdefault("model", turn.model)
        return completion

    async def stream(self, turn: ChatTurn) -> AsyncGenerator[str, None]:
        """The `data` payloads of a streamed answer, each relayed the moment it arrives.

        Nothing is yielded before the upstream answered, so errors up to the first payload can
        still become a plain HTTP error. Closing the iterator cancels the upstream request.
        """
        upstream = await self._upstream_for(turn)
        async with upstream.open_stream(turn.body, turn.headers) as reply:
            if reply.completion is None:
                async for payload in reply.payloads():
                    yield payload
                return
            reply.completion.setdefault("model", turn.model)
            for chunk in completion_to_chunks(reply.completion, include_usage=turn.include_usage):
                yield json.dumps(chunk, ensure_ascii=False)

    async def _upstream_for(self, turn: ChatTurn) -> UpstreamClient:
        """The upstream client, once the turn's model is known to be served there."""
        if self._upstream is None:
            raise NotFound(
                f"The model '{turn.model}' is not available: no upstream LLM is configured "
                "(set RAGBRIDGE_UPSTREAM_BASE_URL).",
                param="model",
                code="model_not_found",
            )
        known = await self._upstream.known_model_ids()
        if known is not None and turn.model not in known:
            raise NotFound(
                f"The model '{turn.model}' does not exist upstream.",
                param="model",
                code="model_not_found",
            )
        return self._upstream
