"""RAG models: `rag/<collection>` answers from the collection with the default upstream model
(`RAGBRIDGE_UPSTREAM_MODEL`, else the first chat model listed), `rag/<collection>/<model>` with
`<model>`; without an upstream, extractively (quoted passages, cited)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.llm.backend import ChatBackend
from ragbridge.llm.extractive import extractive_answer, relevant_hits
from ragbridge.llm.models import default_chat_model
from ragbridge.llm.tasks import task_answer
from ragbridge.prompts import Language, detect_language, fit_to_budget, with_context
from ragbridge.retrieval.base import Retriever
from ragbridge.retrieval.query import bounded_query, message_text, standalone_query
from ragbridge.settings import Settings
from ragbridge.store.base import CollectionInfo, SearchHit, Store
from ragbridge.text.tokens import estimate_tokens, prompt_text

log = logging.getLogger(__name__)

RAG_PREFIX = "rag/"
OWNED_BY = "ragbridge"
DEFAULT_REPLY_TOKENS = 1024
"""Room left for the answer when the request sets no `max_tokens` (at most a quarter of the
context window)."""
INSTRUCTION_TOKENS = 200
"""What the RAG instructions around the passages take, in either language."""


@dataclass(frozen=True)
class RagModel:
    """A `rag/<collection>[/<upstream-model>]` id, taken apart."""

    id: str
    collection: str
    upstream_model: str | None = None


def parse_rag_model(model: str) -> RagModel | None:
    """The RAG model `model` names (collection names hold no `/`; model ids may), or None."""
    if not model.startswith(RAG_PREFIX):
        return None
    collection, _, upstream_model = model[len(RAG_PREFIX) :].partition("/")
    return RagModel(model, collection, upstream_model or None)


def unknown_model(model: str) -> NotFound:
    """The same 404 the API gives a model outside a key's scope: nothing tells them apart."""
    return NotFound(f"The model '{model}' does not exist.", param="model", code="model_not_found")


@dataclass(frozen=True)
class RagPlan:
    """What one RAG turn does: the passages it cites (in prompt order), and either the request
    for the upstream or, without one, the answer ragbridge gives itself."""

    hits: list[SearchHit] = field(default_factory=list)
    upstream_body: dict[str, Any] | None = None
    answer: str = ""


class RagAnswerer:
    """Turns a chat request on a RAG model into a grounded upstream request (or an answer)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        retriever: Retriever,
        upstream: ChatBackend | None,
        *,
        context_window: Callable[[str], int | None] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._retriever = retriever
        self._upstream = upstream
        self._context_window = context_window  # per upstream model id, where it is known

    async def models(self) -> list[dict[str, Any]]:
        """A `rag/<collection>` model card per collection."""
        return [
            {
                "id": f"{RAG_PREFIX}{info.name}",
                "object": "model",
                "created": int(info.created_at),
                "owned_by": OWNED_BY,
            }
            for info in await self._store.list_collections()
        ]

    async def collection(self, model: RagModel) -> CollectionInfo:
        """The collection `model` answers from (one store read); the model's 404 if none."""
        info = await self._store.get_collection(model.collection) if model.collection else None
        if info is None:
            raise unknown_model(model.id)
        return info

    async def plan(
        self,
        model: RagModel,
        body: dict[str, Any],
        *,
        is_task: bool,
        collection: CollectionInfo | None = None,
        prompt_tokens: int | None = None,
    ) -> RagPlan:
        """Retrieve for the conversation in `body` and build what answers it, with the turn's
        `collection` and `prompt_tokens` (read here when not given). `### Task:` requests skip
        retrieval: upstream as they came, or without an upstream the JSON the task asks for."""
        info = collection or await self.collection(model)
        upstream_model = await self._upstream_model(model)
        messages: list[dict[str, Any]] = body["messages"]
        if is_task:
            if upstream_model is None:
                return RagPlan(answer=task_answer(_last_user_text(messages)))
            return RagPlan(upstream_body={**body, "model": upstream_model})
        query = self._bounded(standalone_query(messages))
        language = detect_language(self._bounded(_last_user_text(messages)) or query)
        hits = await self._retrieve(model, info, query)
        if upstream_model is None:  # Kiwi analysis of the passages: off the event loop
            hits, answer = await asyncio.to_thread(_quote, query, hits, language)
            return RagPlan(hits, answer=answer)
        budget = self.passage_budget(body, upstream_model, prompt_tokens=prompt_tokens)
        kept = fit_to_budget(hits, budget, estimate_tokens)
        if hits and not kept:  # better an upstream "too long" than a false "not covered"
            log.warning(
                "the conversation leaves no room for passages in RAGBRIDGE_UPSTREAM_CONTEXT_TOKENS"
                "=%d; sending the best one anyway",
                self._settings.upstream_context_tokens,
            )
            kept = hits[:1]
        elif len(kept) < len(hits):
            log.info("kept %d of %d passages to fit the context window", len(kept), len(hits))
        grounded = with_context(messages, kept, language, self._settings.prompt_template)
        return RagPlan(kept, {**body, "model": upstream_model, "messages": grounded})

    def passage_budget(
        self, body: Mapping[str, Any], model: str | None = None, *, prompt_tokens: int | None = None
    ) -> int:
        """Tokens left for passages: the context window (of `model`, if known) less the
        conversation (`prompt_tokens`, estimated when not given; never trimmed), its tools, the
        instructions and the room the answer needs."""
        window = self._context_window(model) if self._context_window and model else None
        context = window or self._settings.upstream_context_tokens
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
            reply = asked
        else:
            reply = min(DEFAULT_REPLY_TOKENS, context // 4)
        conversation = (
            estimate_tokens(prompt_text(body)) if prompt_tokens is None else prompt_tokens
        )
        if tools := body.get("tools"):
            conversation += estimate_tokens(json.dumps(tools, ensure_ascii=False))
        return context - conversation - reply - INSTRUCTION_TOKENS

    def _bounded(self, text: str) -> str:
        """The retrieval query cut to `retrieval_query_max_chars` (logged when cut)."""
        limit = self._settings.retrieval_query_max_chars
        if len(text) <= limit:
            return text
        log.info(
            "retrieval query cut from %d to %d characters (RAGBRIDGE_RETRIEVAL_QUERY_MAX_CHARS)",
            len(text),
            limit,
        )
        return bounded_query(text, limit)

    async def _upstream_model(self, model: RagModel) -> str | None:
        """The upstream model that answers, or None when there is no upstream (extractive)."""
        if self._upstream is None:
            return None
        if model.upstream_model:
            return model.upstream_model
        if self._settings.upstream_model:
            return self._settings.upstream_model
        listed = [str(entry["id"]) for entry in await self._upstream.list_models()]
        chosen = default_chat_model(listed)
        if chosen is None:
            what = "only models that cannot chat" if listed else "no models"
            raise InvalidRequest(
                f"No upstream model for '{model.id}': the upstream lists {what}. Set "
                f"RAGBRIDGE_UPSTREAM_MODEL or pick one as '{model.id}/<upstream-model>'.",
                param="model",
                code="model_not_found",
            )
        return chosen

    async def _retrieve(self, model: RagModel, info: CollectionInfo, query: str) -> list[SearchHit]:
        if not query.strip():
            return []
        try:
            return await self._retriever.search(
                model.collection,
                query,
                collection_info=info,
                top_k=self._settings.top_k,
                mode=self._settings.retrieval_mode,
                score_threshold=self._settings.score_threshold,
            )
        except NotFound as exc:  # deleted since it was looked up
            if exc.param == "collection":
                raise unknown_model(model.id) from exc
            raise


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def _quote(
    query: str, hits: Sequence[SearchHit], language: Language
) -> tuple[list[SearchHit], str]:
    """The relevant hits and the extractive answer quoting them (Kiwi work: run in a thread)."""
    relevant = relevant_hits(query, hits)
    return relevant, extractive_answer(query, relevant, language)
