"""`create_app(settings)`: builds every service once, puts it on `app.state`, mounts the routers.

Each service is created in `lifespan` and closed when the app stops; nothing is global.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.routing import Route

from ragbridge import __version__
from ragbridge.api import collections as collections_api
from ragbridge.api import embeddings as embeddings_api
from ragbridge.api import keys as keys_api
from ragbridge.api import metrics as metrics_api
from ragbridge.api import openai as openai_api
from ragbridge.api import ops
from ragbridge.api import tools as tools_api
from ragbridge.api.envelope import install_error_handlers
from ragbridge.api.mcp import McpEndpoint
from ragbridge.api.middleware import install_middleware
from ragbridge.api.secrets_policy import check_secrets, ensure_bootstrap_keys
from ragbridge.api.security import check_bind_safety
from ragbridge.api.shutdown import ShutdownGate
from ragbridge.cache import create_cache
from ragbridge.cache.embeddings import SharedQueryEmbeddings
from ragbridge.cache.retrieval import CachedRetriever
from ragbridge.chat import ChatService
from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.remote import RemoteEmbedder
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.llm.backend import ChatBackend
from ragbridge.llm.cache import ResponseCache
from ragbridge.llm.local.model import LocalModel, check_local_model
from ragbridge.llm.router import ModelRouter
from ragbridge.llm.upstream import UpstreamClient, UpstreamConfig
from ragbridge.rag import RagAnswerer
from ragbridge.retrieval.hybrid import FusionConfig, HybridRetriever
from ragbridge.retrieval.rerank import create_reranker
from ragbridge.sample import sample_in_background
from ragbridge.service.log_format import configure_logging
from ragbridge.service.rate_limits_redis import create_rate_limiter
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from ragbridge.store import open_store
from ragbridge.warmup import Warmth, warming


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ragbridge ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings()
    check_bind_safety(settings)
    check_secrets(settings)
    check_local_model(settings)
    metrics = Metrics()
    mcp = McpEndpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _start_services(app.state, settings, metrics, stack)
            await stack.enter_async_context(mcp.run())
            yield

    app = FastAPI(
        title="ragbridge",
        version=__version__,
        description="Self-hosted RAG server with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.shutdown_gate = ShutdownGate()
    install_error_handlers(app)
    install_middleware(app, settings, metrics, app.state.shutdown_gate)
    for api in (ops, collections_api, embeddings_api, metrics_api, keys_api, openai_api):
        app.include_router(api.router)
    # Tools for tool-calling models: an OpenAPI tool server and an MCP server (same tools).
    app.mount(tools_api.PREFIX, tools_api.create_tools_app(app.state))
    app.router.routes.append(Route(McpEndpoint.PATH, mcp, methods=["GET", "POST", "DELETE"]))
    if settings.console:
        from ragbridge.console import install_console

        install_console(app)
    return app


async def _start_services(
    state: State, settings: Settings, metrics: Metrics, stack: AsyncExitStack
) -> None:
    """Open the store, models and clients in dependency order; `stack` closes them in reverse."""
    configure_logging(settings.log_level, settings.log_json)
    store = await open_store(settings)
    stack.push_async_callback(store.close)
    await ensure_bootstrap_keys(store, settings.bootstrap_keys)

    embedder: Embedder = create_embedder(settings)
    stack.push_async_callback(embedder.close)
    if isinstance(embedder, RemoteEmbedder):
        await embedder.discover()  # the dimension; warns if the API is down

    cache = create_cache(settings, metrics)
    stack.push_async_callback(cache.close)
    if settings.redis_url:  # replicas share query vectors (each keeps its own LRU too)
        embedder = SharedQueryEmbeddings(embedder, cache, settings.cache_ttl, metrics)

    reranker = create_reranker(settings)
    if reranker is not None:
        stack.push_async_callback(reranker.close)
    retriever = HybridRetriever(
        store,
        embedder,
        reranker=reranker,
        config=FusionConfig.from_settings(settings),
        metrics=metrics,
    )
    pipeline = IngestPipeline(store, embedder, settings, metrics)

    upstream = (
        UpstreamClient(UpstreamConfig.from_settings(settings), metrics)
        if settings.upstream_enabled
        else None
    )
    if upstream is not None:
        stack.push_async_callback(upstream.aclose)
    backend: ChatBackend | None = upstream
    router: ModelRouter | None = None
    if settings.local_model is not None:  # served in-process, beside any remote upstream
        local = LocalModel(settings, metrics)
        local.start()  # loads on its worker thread; requests wait for it
        stack.push_async_callback(local.aclose)
        backend = router = ModelRouter(local, upstream)
    state.local_model = router.local if router is not None else None
    cached_retriever = CachedRetriever(retriever, store, cache, settings.cache_ttl, metrics)
    responses = ResponseCache(cache, settings.cache_ttl, metrics)

    rate_limiter = create_rate_limiter(settings, metrics)
    stack.push_async_callback(rate_limiter.close)

    state.store = store
    state.embedder = embedder
    state.cache = cache
    state.retriever = retriever
    state.pipeline = pipeline
    state.upstream = upstream
    state.chat = ChatService(
        settings,
        backend,
        rag=RagAnswerer(
            settings,
            store,
            cached_retriever,
            backend,
            context_window=router.context_window if router is not None else None,
        ),
        responses=responses if settings.response_cache else None,
        console_links=settings.console,
    )
    state.rate_limiter = rate_limiter
    if settings.sample_collection:
        await stack.enter_async_context(sample_in_background(store, pipeline))
    state.warmth = Warmth() if settings.warm_start else Warmth("skipped", "skipped")
    if settings.warm_start:  # no cold start: model and vectors load while we already serve
        await stack.enter_async_context(warming(state.warmth, retriever))
