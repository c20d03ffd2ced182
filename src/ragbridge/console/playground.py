"""The search and chat playgrounds: search calls the retriever as `POST /v1/search` does (with
each hit's scores explained); chat hands the request to `POST /v1/chat/completions`'s handler.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ragbridge.api import openai as openai_api
from ragbridge.api.deps import get_settings
from ragbridge.api.schemas import ChatCompletionRequest
from ragbridge.api.security import ensure_model_access, visible_models
from ragbridge.console.pages import visible_collection, visible_collections
from ragbridge.console.render import chosen, context, highlight
from ragbridge.errors import InvalidRequest, RagbridgeError
from ragbridge.rag import RAG_PREFIX, parse_rag_model
from ragbridge.retrieval.hybrid import MODES
from ragbridge.store.base import MetadataFilter

router = APIRouter(include_in_schema=False)


@router.get("/search")
async def search_page(request: Request, collection: str | None = None) -> Response:
    ctx = await context(request)
    names = [c.name for c in await visible_collections(ctx)]
    settings = get_settings(request)
    return ctx.render(
        "search.html",
        names=names,
        selected=chosen(collection, names),
        modes=MODES,
        mode=settings.retrieval_mode,
        top_k=settings.top_k,
    )


def _filters(name: str, page: str) -> MetadataFilter | None:
    filters: dict[str, Any] = {}
    if name.strip():
        filters["name"] = name.strip()
    if page.strip():
        if not page.strip().isdigit():
            raise InvalidRequest("page must be a number", param="page")
        filters["page"] = int(page)
    return filters or None


@router.get("/search/results")
async def search_results(
    request: Request,
    collection: str,
    query: str = "",
    mode: str = "hybrid",
    top_k: int = 5,
    name: str = "",
    page: str = "",
) -> Response:
    """The hits as an htmx fragment: text with matched terms marked, scores side by side."""
    ctx = await context(request)
    await visible_collection(ctx, collection)
    retriever = ctx.bridge.retriever
    explain: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    try:
        hits = await retriever.search(
            collection,
            query,
            top_k=max(1, min(top_k, 50)),
            mode=mode,  # type: ignore[arg-type]  # checked by search()
            filters=_filters(name, page),
            explain=explain,
        )
    except RagbridgeError as exc:
        return ctx.render("search_results.html", error=exc.message)
    took = round((time.perf_counter() - started) * 1000, 1)
    terms = frozenset(retriever.analyzer.analyze(query)) if mode != "dense" else frozenset()
    rows = [
        {
            "hit": hit,
            "scores": explain.get(hit.chunk.id, {}),
            "html": highlight(hit.chunk.text, terms, retriever.analyzer),
        }
        for hit in hits
    ]
    return ctx.render("search_results.html", collection=collection, rows=rows, took=took)


@router.get("/chat")
async def chat_page(request: Request, model: str | None = None) -> Response:
    ctx = await context(request)
    problem = None
    try:
        models = [
            str(m["id"]) for m in visible_models(ctx.principal, await ctx.bridge.chat.list_models())
        ]
    except RagbridgeError as exc:  # an unreachable upstream: the RAG models still work
        problem = exc.message
        models = [RAG_PREFIX + c.name for c in await visible_collections(ctx)]
    models.sort(key=lambda m: (not m.startswith(RAG_PREFIX), m))
    return ctx.render(
        "chat.html",
        models=models,
        selected=chosen(model, models),
        problem=problem,
        extractive=get_settings(request).upstream_base_url is None,
    )


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """`POST /v1/chat/completions` for the console's script, authenticated by the session."""
    await context(request)  # session, CSRF, the key's scope and rate limits
    return await openai_api.chat_completions(await _chat_request(request), request)


async def _chat_request(request: Request) -> ChatCompletionRequest:
    """The JSON chat request, checked against the API's schema (400 when it does not fit)."""
    try:
        return ChatCompletionRequest.model_validate(await request.json())
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(f"Invalid chat request: {exc}") from exc


@router.post("/chat/inspect")
async def chat_inspect(request: Request) -> Response:
    """Admin only: the passages a RAG turn retrieves and the messages it sends upstream,
    from the same `RagAnswerer.plan` the answer came from (retrievals are cached)."""
    ctx = await context(request, admin=True)
    model = (await _chat_request(request)).model
    ensure_model_access(ctx.principal, model)
    rag_model = parse_rag_model(model)
    rag = ctx.bridge.chat.rag
    if rag_model is None or rag is None:
        return ctx.render("inspect.html", rag=False)
    plan = await rag.plan(rag_model, await request.json(), is_task=False)
    prompt = None
    if plan.upstream_body is not None:
        prompt = json.dumps(plan.upstream_body.get("messages"), ensure_ascii=False, indent=2)
    return ctx.render(
        "inspect.html", hits=plan.hits, prompt=prompt, rag=True, collection=rag_model.collection
    )
