"""One chat turn: classify the request, then answer it through the upstream LLM.

The turn's request body is what the client sent, unchanged: the whole history, the model the user
picked and every other OpenAI field go upstream as they came. RAG models (`rag/...`, see
`ragbridge.rag`) go upstream with the retrieved passages in the prompt and the upstream model id,
or are answered extractively when no upstream is configured.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.llm.backend import ChatBackend
from ragbridge.llm.cache import CompletionAssembler, ResponseCache
from ragbridge.llm.finished import finished_chunks, finished_completion
from ragbridge.llm.sse import completion_to_chunks
from ragbridge.prompts import citation, source_event
from ragbridge.rag import RagAnswerer, RagModel, parse_rag_model
from ragbridge.ratelimit import estimate_tokens, prompt_text
from ragbridge.retrieval.query import message_text
from ragbridge.settings import Settings
from ragbridge.store.base import SearchHit

TASK_PREFIX = "### Task:"


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
    rag: RagModel | None = None
    """The RAG model the turn asks for; None for an upstream model."""

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
    """Answers chat turns: upstream models are relayed unchanged, RAG models grounded first.

    A RAG turn (`rag/<collection>[/<upstream-model>]`) retrieves from the collection and sends
    the history with the numbered passages upstream under the upstream model id, or answers
    extractively without an upstream. Streams send one Open WebUI source event per passage before
    the first token and carry the RAG model id in every chunk; non-streamed answers carry the
    same passages in a top-level `sources` list. `### Task:` turns skip retrieval.
    """

    def __init__(
        self,
        settings: Settings,
        upstream: ChatBackend | None,
        *,
        rag: RagAnswerer | None = None,
        responses: ResponseCache | None = None,
    ) -> None:
        self._settings = settings
        self._upstream = upstream
        self._rag = rag
        self._responses = responses

    def turn(self, body: dict[str, Any], headers: Mapping[str, str]) -> ChatTurn:
        """Classify a validated chat request body."""
        messages = body["messages"]
        if len(messages) > self._settings.max_messages:
            raise InvalidRequest(
                f"Too many messages: {len(messages)} (at most {self._settings.max_messages}).",
                param="messages",
            )
        rag = parse_rag_model(str(body["model"])) if self._rag is not None else None
        return ChatTurn(body=body, headers=headers, is_task=is_task_request(messages), rag=rag)

    async def list_models(self) -> list[dict[str, Any]]:
        """The models a client can pick: the upstream's (an unreachable upstream raises), then
        a `rag/<collection>` model per collection."""
        models: list[dict[str, Any]] = []
        if self._upstream is not None:
            models = [
                {"object": "model", "created": 0, "owned_by": "upstream", **model}
                for model in await self._upstream.list_models()
            ]
        if self._rag is not None:
            models += await self._rag.models()
        return models

    async def complete(self, turn: ChatTurn) -> dict[str, Any]:
        """A non-streamed answer, in OpenAI's `chat.completion` shape."""
        if turn.rag is None or self._rag is None:
            completion = await self._complete_upstream(turn.body, turn.headers)
            completion.setdefault("model", turn.model)
            return completion
        plan = await self._rag.plan(turn.rag, turn.body, is_task=turn.is_task)
        if plan.upstream_body is None:
            completion = finished_completion(turn.model, plan.answer, _prompt_tokens(turn))
        else:
            completion = await self._complete_upstream(plan.upstream_body, turn.headers)
            completion["model"] = turn.model
        if not turn.is_task:
            completion["sources"] = [citation(hit) for hit in plan.hits]
        return completion

    def stream(self, turn: ChatTurn) -> AsyncGenerator[str, None]:
        """The `data` payloads of a streamed answer, each relayed the moment it arrives.

        Nothing is yielded before the upstream answered, so errors up to the first payload can
        still become a plain HTTP error. Closing the iterator cancels the upstream request.
        """
        if turn.rag is None or self._rag is None:
            return self._stream_upstream(turn.body, turn.headers, turn.include_usage)
        return self._stream_rag(self._rag, turn.rag, turn)

    async def _stream_rag(
        self, rag: RagAnswerer, model: RagModel, turn: ChatTurn
    ) -> AsyncGenerator[str, None]:
        """Source events first, then the answer under the RAG model's id."""
        plan = await rag.plan(model, turn.body, is_task=turn.is_task)
        if plan.upstream_body is None:
            completion = finished_completion(turn.model, plan.answer, _prompt_tokens(turn))
            chunks = finished_chunks(completion, include_usage=turn.include_usage)
            for payload in _source_payloads(plan.hits, chunks[0]):
                yield payload
            for piece in chunks:
                yield json.dumps(piece, ensure_ascii=False)
            return
        relay = self._stream_upstream(plan.upstream_body, turn.headers, turn.include_usage)
        hits = plan.hits
        async with aclosing(relay) as payloads:
            async for payload in payloads:
                chunk = _json_object(payload)
                if chunk is None:
                    yield payload
                    continue
                if "model" in chunk:
                    chunk["model"] = turn.model
                if hits:  # once the upstream answered, before its first token
                    for source in _source_payloads(hits, chunk):
                        yield source
                    hits = []
                yield json.dumps(chunk, ensure_ascii=False)

    async def _complete_upstream(
        self, body: dict[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """The upstream's `chat.completion` for `body`, or the cached one (opt-in)."""
        upstream = await self._upstream_for(str(body["model"]))
        responses = self._response_cache(body)
        completion = await responses.get(body) if responses is not None else None
        if completion is None:
            completion = await upstream.complete(body, headers)
            if responses is not None:
                await responses.put(body, completion)
        completion.setdefault("id", f"chatcmpl-{time.time_ns()}")
        completion.setdefault("object", "chat.completion")
        completion.setdefault("created", int(time.time()))
        return completion

    async def _stream_upstream(
        self, body: dict[str, Any], headers: Mapping[str, str], include_usage: bool
    ) -> AsyncGenerator[str, None]:
        """The upstream's stream for `body`, relayed as it comes (or replayed from the cache)."""
        upstream = await self._upstream_for(str(body["model"]))
        responses = self._response_cache(body)
        completion = await responses.get(body) if responses is not None else None
        if completion is not None:
            for chunk in completion_to_chunks(completion, include_usage=include_usage):
                yield json.dumps(chunk, ensure_ascii=False)
            return
        async with upstream.open_stream(body, headers) as reply:
            if reply.completion is not None:
                reply.completion.setdefault("model", body["model"])
                if responses is not None:
                    await responses.put(body, reply.completion)
                for chunk in completion_to_chunks(reply.completion, include_usage=include_usage):
                    yield json.dumps(chunk, ensure_ascii=False)
                return
            if responses is None:
                async for payload in reply.payloads():
                    yield payload
                return
            assembler = CompletionAssembler()
            async for payload in reply.payloads():
                assembler.add(payload)
                yield payload
            if (finished := assembler.completion()) is not None:
                await responses.put(body, finished)

    def _response_cache(self, body: dict[str, Any]) -> ResponseCache | None:
        """The response cache, when it is on and may hold answers to `body`."""
        if self._responses is None or not self._responses.accepts(body):
            return None
        return self._responses

    async def _upstream_for(self, model: str) -> ChatBackend:
        """The upstream client, once `model` is known to be served there."""
        if self._upstream is None:
            raise NotFound(
                f"The model '{model}' is not available: no upstream LLM is configured "
                "(set RAGBRIDGE_UPSTREAM_BASE_URL).",
                param="model",
                code="model_not_found",
            )
        known = await self._upstream.known_model_ids()
        if known is not None and model not in known:
            raise NotFound(
                f"The model '{model}' does not exist upstream.",
                param="model",
                code="model_not_found",
            )
        return self._upstream


def _prompt_tokens(turn: ChatTurn) -> int:
    """Estimated prompt tokens of a turn answered without a model."""
    return estimate_tokens(prompt_text(turn.body))


def _json_object(payload: str) -> dict[str, Any] | None:
    """A stream payload as a JSON object, or None when it is anything else."""
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _source_payloads(hits: Sequence[SearchHit], chunk: Mapping[str, Any]) -> list[str]:
    """One Open WebUI source event per passage, each also a valid (choice-less) chunk of the
    answer that `chunk` belongs to, so strict OpenAI clients parse it too."""
    head = {
        "id": chunk.get("id", ""),
        "object": "chat.completion.chunk",
        "created": chunk.get("created", int(time.time())),
        "model": chunk.get("model", ""),
        "choices": [],
    }
    return [json.dumps({**head, **source_event(hit)}, ensure_ascii=False) for hit in hits]
