"""One chat turn, resolved once at its start (`ChatTurn`): upstream models get the body as sent,
RAG models (`ragbridge.rag`) the retrieved passages too, or an extractive answer without an
upstream. A streamed answer is parsed `Chunk`s, each encoded once by `api`."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragbridge.citations import (
    StreamAnnotator,
    annotate_completion,
    chunk_url,
    link_titles,
    source_chunks,
)
from ragbridge.errors import NotFound
from ragbridge.llm.backend import ChatBackend
from ragbridge.llm.cache import ResponseCache, is_deterministic
from ragbridge.llm.chunks import Chunk, CompletionAssembler, completion_chunks, finished_completion
from ragbridge.llm.tasks import is_task_request
from ragbridge.prompts import citation
from ragbridge.rag import RagAnswerer, RagModel, RagPlan, parse_rag_model, unknown_model
from ragbridge.service.api_keys import ANONYMOUS
from ragbridge.service.rate_limits import Limits
from ragbridge.store.base import CollectionInfo, SearchHit
from ragbridge.text.tokens import estimate_tokens, prompt_text


class Caller(Protocol):
    """Who asks (the API's `Principal` is one): key name, rate limits, collection scope."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> Limits: ...

    def can_access(self, collection: str) -> bool: ...


@dataclass(frozen=True)
class Everyone:
    """The caller when nobody is authenticated (auth off, or a call from Python)."""

    name: str = ANONYMOUS
    limits: Limits = field(default_factory=Limits)

    def can_access(self, collection: str) -> bool:
        return True


@dataclass(frozen=True)
class ChatTurn:
    """One chat request, resolved once at its start and passed down: nothing below re-reads
    the collection, re-parses the model id or re-estimates the prompt."""

    body: dict[str, Any]
    """The request as the client sent it (validated), relayed unchanged."""
    headers: Mapping[str, str]
    caller: Caller
    prompt_tokens: int
    """The prompt's estimated tokens (what the key's rate limit was charged on arrival)."""
    is_task: bool
    rag: RagModel | None = None
    """The RAG model the turn asks for; None for an upstream model."""
    collection: CollectionInfo | None = None
    """The RAG model's collection, as read at the start of the turn."""
    base_url: str = ""
    """ragbridge's absolute base URL as the client sees it, for the passages' links; without
    it answers carry no links and no `url_citation` annotations."""

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))


class ChatService:
    """Answers chat turns: upstream models relayed unchanged, RAG models grounded first, their
    passages as source events before the first token (streams) or `sources`, and annotations."""

    def __init__(
        self,
        upstream: ChatBackend | None,
        *,
        rag: RagAnswerer | None = None,
        responses: ResponseCache | None = None,
        console_links: bool = False,
    ) -> None:
        self._console_links = console_links
        self._upstream = upstream
        self._rag = rag
        self._responses = responses

    @property
    def rag(self) -> RagAnswerer | None:
        """The RAG answerer (the console shows an admin what it retrieved and sent upstream)."""
        return self._rag

    async def turn(
        self,
        body: dict[str, Any],
        headers: Mapping[str, str],
        base_url: str = "",
        *,
        caller: Caller | None = None,
        prompt_tokens: int | None = None,
    ) -> ChatTurn:
        """Resolve a validated chat request, once: the model id taken apart, checked against
        the caller's scope (the same 404 as a model that does not exist), a RAG model's
        collection read. `prompt_tokens` is the estimate made on arrival (made here if none);
        input limits (`max_messages`) are checked on arrival too, by the API."""
        caller = caller or Everyone()
        rag = parse_rag_model(str(body["model"])) if self._rag is not None else None
        info = None
        if rag is not None and self._rag is not None:
            if not caller.can_access(rag.collection):
                raise unknown_model(rag.id)
            info = await self._rag.collection(rag)
        if prompt_tokens is None:
            prompt_tokens = estimate_tokens(prompt_text(body))
        return ChatTurn(
            body=body,
            headers=headers,
            caller=caller,
            prompt_tokens=prompt_tokens,
            is_task=is_task_request(body["messages"]),
            rag=rag,
            collection=info,
            base_url=base_url,
        )

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
        plan = await self._plan(self._rag, turn.rag, turn)
        if plan.upstream_body is None:
            completion = finished_completion(turn.model, plan.answer, turn.prompt_tokens)
        else:
            completion = await self._complete_upstream(plan.upstream_body, turn.headers)
            completion["model"] = turn.model
        if not turn.is_task:
            urls = self._urls(turn, plan.hits)
            completion["sources"] = [
                citation(hit, url) for hit, url in zip(plan.hits, urls, strict=True)
            ]
            annotate_completion(completion, link_titles(plan.hits, urls))
        return completion

    def stream(self, turn: ChatTurn) -> AsyncGenerator[Chunk, None]:
        """The chunks of a streamed answer, each relayed the moment it arrives; nothing before
        the upstream answered (errors up to then can still be plain HTTP errors). Closing the
        iterator cancels the upstream request."""
        if turn.rag is None or self._rag is None:
            return self._stream_upstream(turn.body, turn.headers, turn.include_usage)
        return self._stream_rag(self._rag, turn.rag, turn)

    async def _plan(self, rag: RagAnswerer, model: RagModel, turn: ChatTurn) -> RagPlan:
        return await rag.plan(
            model,
            turn.body,
            is_task=turn.is_task,
            collection=turn.collection,
            prompt_tokens=turn.prompt_tokens,
        )

    async def _stream_rag(
        self, rag: RagAnswerer, model: RagModel, turn: ChatTurn
    ) -> AsyncGenerator[Chunk, None]:
        """Source events first, then the answer under the RAG model's id."""
        plan = await self._plan(rag, model, turn)
        urls = self._urls(turn, plan.hits)
        annotator = StreamAnnotator(link_titles(plan.hits, urls))
        if plan.upstream_body is None:
            completion = finished_completion(turn.model, plan.answer, turn.prompt_tokens)
            answer = _replay(completion, turn.include_usage, by_word=True)
        else:
            answer = self._stream_upstream(plan.upstream_body, turn.headers, turn.include_usage)
        hits = plan.hits
        async with aclosing(answer) as chunks:
            async for chunk in chunks:
                if "model" in chunk:
                    chunk["model"] = turn.model
                if hits:  # once the upstream answered, before its first token
                    for source in source_chunks(hits, urls, chunk):
                        yield source
                    hits = []
                annotator.add(chunk)
                yield chunk

    def _urls(self, turn: ChatTurn, hits: Sequence[SearchHit]) -> list[str]:
        """Each passage's link (empty without the turn's base URL)."""
        if not turn.base_url:
            return ["" for _ in hits]
        return [chunk_url(turn.base_url, hit.chunk, console=self._console_links) for hit in hits]

    async def _complete_upstream(
        self, body: dict[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """The upstream's `chat.completion` for `body`, or the cached one (opt-in)."""
        body = dict(body)
        upstream, responses, completion = await self._prepare(body)
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
    ) -> AsyncGenerator[Chunk, None]:
        """The upstream's stream for `body`, relayed as it comes (or replayed from the cache)."""
        body = dict(body)
        upstream, responses, completion = await self._prepare(body)
        if completion is None:
            async with upstream.open_stream(body, headers) as reply:
                if reply.completion is None:  # a stream: relayed, assembled for the cache
                    assembler = CompletionAssembler()
                    async for chunk in reply.chunks():
                        if responses is not None:
                            assembler.add(chunk)
                        yield chunk
                    if responses is not None and (finished := assembler.completion()):
                        await responses.put(body, finished)
                    return
                completion = reply.completion
                completion.setdefault("model", body["model"])
                if responses is not None:
                    await responses.put(body, completion)
        async for chunk in _replay(completion, include_usage):
            yield chunk

    async def _prepare(
        self, body: dict[str, Any]
    ) -> tuple[ChatBackend, ResponseCache | None, dict[str, Any] | None]:
        """The upstream, once `body["model"]` is known to be served there (set to the id it
        lists), and the response cache with its answer when it is on and may hold one."""
        model = str(body["model"])
        if self._upstream is None:
            raise NotFound(
                f"The model '{model}' is not available: no upstream LLM is configured "
                "(set RAGBRIDGE_UPSTREAM_BASE_URL).",
                param="model",
                code="model_not_found",
            )
        body["model"] = await self._upstream.resolve_model(model)
        if self._responses is None or not is_deterministic(body):
            return self._upstream, None, None
        return self._upstream, self._responses, await self._responses.get(body)


async def _replay(
    completion: dict[str, Any], include_usage: bool, *, by_word: bool = False
) -> AsyncGenerator[Chunk, None]:
    """A finished `chat.completion` as a stream."""
    for chunk in completion_chunks(completion, include_usage=include_usage, by_word=by_word):
        yield chunk
