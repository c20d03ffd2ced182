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

from ragbridge.citations import hit_url, passage_title, url_annotations
from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.llm.backend import ChatBackend
from ragbridge.llm.cache import CompletionAssembler, ResponseCache
from ragbridge.llm.finished import finished_chunks, finished_completion
from ragbridge.llm.sse import completion_to_chunks
from ragbridge.prompts import citation, source_event
from ragbridge.rag import RagAnswerer, RagModel, parse_rag_model
from ragbridge.retrieval.query import message_text
from ragbridge.settings import Settings
from ragbridge.store.base import SearchHit
from ragbridge.text.tokens import estimate_tokens, prompt_text

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
    base_url: str = ""
    """ragbridge's absolute base URL as the client sees it, for the passages' links; without
    it answers carry no links and no `url_citation` annotations."""

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
    same passages in a top-level `sources` list. Both also carry OpenAI `url_citation`
    annotations (`ragbridge.citations`): on the message, or on the stream's finishing delta.
    `### Task:` turns skip retrieval.
    """

    def __init__(
        self,
        settings: Settings,
        upstream: ChatBackend | None,
        *,
        rag: RagAnswerer | None = None,
        responses: ResponseCache | None = None,
        console_links: bool = False,
    ) -> None:
        self._settings = settings
        self._console_links = console_links
        self._upstream = upstream
        self._rag = rag
        self._responses = responses

    @property
    def rag(self) -> RagAnswerer | None:
        """The RAG answerer (the console shows an admin what it retrieved and sent upstream)."""
        return self._rag

    def turn(
        self, body: dict[str, Any], headers: Mapping[str, str], base_url: str = ""
    ) -> ChatTurn:
        """Classify a validated chat request body; `base_url` roots the passages' links."""
        messages = body["messages"]
        if len(messages) > self._settings.max_messages:
            raise InvalidRequest(
                f"Too many messages: {len(messages)} (at most {self._settings.max_messages}).",
                param="messages",
            )
        rag = parse_rag_model(str(body["model"])) if self._rag is not None else None
        is_task = is_task_request(messages)
        return ChatTurn(body=body, headers=headers, is_task=is_task, rag=rag, base_url=base_url)

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
            urls = self._urls(turn, plan.hits)
            completion["sources"] = [
                citation(hit, url) for hit, url in zip(plan.hits, urls, strict=True)
            ]
            _annotate_message(completion, _link_titles(plan.hits, urls))
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
        urls = self._urls(turn, plan.hits)
        annotator = _StreamAnnotator(_link_titles(plan.hits, urls))
        if plan.upstream_body is None:
            completion = finished_completion(turn.model, plan.answer, _prompt_tokens(turn))
            chunks = finished_chunks(completion, include_usage=turn.include_usage)
            for payload in _source_payloads(plan.hits, urls, chunks[0]):
                yield payload
            for piece in chunks:
                annotator.add(piece)
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
                    for source in _source_payloads(hits, urls, chunk):
                        yield source
                    hits = []
                annotator.add(chunk)
                yield json.dumps(chunk, ensure_ascii=False)

    def _urls(self, turn: ChatTurn, hits: Sequence[SearchHit]) -> list[str]:
        """Each passage's link (empty without the turn's base URL)."""
        if not turn.base_url:
            return ["" for _ in hits]
        return [hit_url(turn.base_url, hit, console=self._console_links) for hit in hits]

    async def _complete_upstream(
        self, body: dict[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """The upstream's `chat.completion` for `body`, or the cached one (opt-in)."""
        body = dict(body)
        upstream = await self._upstream_for(body)
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
        body = dict(body)
        upstream = await self._upstream_for(body)
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

    async def _upstream_for(self, body: dict[str, Any]) -> ChatBackend:
        """The upstream client, once `body["model"]` is known to be served there (set to the id
        the upstream lists for it)."""
        model = str(body["model"])
        if self._upstream is None:
            raise NotFound(
                f"The model '{model}' is not available: no upstream LLM is configured "
                "(set RAGBRIDGE_UPSTREAM_BASE_URL).",
                param="model",
                code="model_not_found",
            )
        body["model"] = await self._upstream.resolve_model(str(body["model"]))
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


def _link_titles(hits: Sequence[SearchHit], urls: Sequence[str]) -> list[tuple[str, str]]:
    """`(url, title)` per passage, numbered as in the prompt; none when there are no links."""
    if not all(urls):
        return []
    return [(url, passage_title(hit)) for hit, url in zip(hits, urls, strict=True)]


def _annotate_message(completion: dict[str, Any], sources: Sequence[tuple[str, str]]) -> None:
    """Put `url_citation` annotations on each choice's message of a `chat.completion`."""
    if not sources:
        return
    for choice in completion.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            text = message.get("content")
            message["annotations"] = url_annotations(text if isinstance(text, str) else "", sources)


class _StreamAnnotator:
    """Collects a streamed answer's text and puts the `url_citation` annotations for all of it
    on the delta of the chunk that finishes the first choice (spans need the whole text)."""

    def __init__(self, sources: Sequence[tuple[str, str]]) -> None:
        self._sources = sources
        self._text: list[str] = []
        self._done = not sources

    def add(self, chunk: dict[str, Any]) -> None:
        if self._done:
            return
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            return
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(content := delta.get("content"), str):
            self._text.append(content)
        if choice.get("finish_reason"):
            delta["annotations"] = url_annotations("".join(self._text), self._sources)
            self._done = True


def _source_payloads(
    hits: Sequence[SearchHit], urls: Sequence[str], chunk: Mapping[str, Any]
) -> list[str]:
    """One Open WebUI source event per passage, each also a valid (choice-less) chunk of the
    answer that `chunk` belongs to, so strict OpenAI clients parse it too."""
    head = {
        "id": chunk.get("id", ""),
        "object": "chat.completion.chunk",
        "created": chunk.get("created", int(time.time())),
        "model": chunk.get("model", ""),
        "choices": [],
    }
    return [
        json.dumps({**head, **source_event(hit, url)}, ensure_ascii=False)
        for hit, url in zip(hits, urls, strict=True)
    ]
