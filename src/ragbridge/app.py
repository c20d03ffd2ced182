"""`create_app(settings)`: builds every service once, puts it on `app.state`, mounts the routers.

Each service is created in `lifespan` and closed when the app stops; nothing is global.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from ragbridge import __version__
from ragbridge.api import collections as collections_api
from ragbridge.api import embeddings as embeddings_api
from ragbridge.api import keys as keys_api
from ragbridge.api import metrics as metrics_api
from ragbridge.api import openai as openai_api
from ragbridge.api import ops
from ragbridge.api.errors import install_error_handlers
from ragbridge.api.middleware import install_middleware
from ragbridge.api.security import check_bind_safety
from ragbridge.api.shutdown import ShutdownGate
from ragbridge.cache import create_cache
from ragbridge.cache.embeddings import SharedQueryEmbeddings
from ragbridge.cache.retrieval import CachedRetriever
from ragbridge.chat import ChatService
from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.remote import RemoteEmbedder
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.llm.cache import ResponseCache
from ragbridge.llm.upstream import UpstreamClient
from ragbridge.logs import configure_logging
from ragbridge.metrics import Metrics
from ragbridge.rag import RagAnswerer
from ragbridge.ratelimit_redis import create_rate_limiter
from ragbridge.retrieval.hybrid import FusionConfig, HybridRetriever
from ragbridge.retrieval.rerank import create_reranker
from ragbridge.sample import sample_in_background
from ragbridge.settings import Settings
from ragbridge.store import open_store

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ragbridge ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings()
    check_bind_safety(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.exit_stack = stack
            # Each subsystem wires its services below its own marker; keep sections short.
            # [logging]
            configure_logging(settings.log_level, settings.log_json)
            # [store]
            app.state.store = await open_store(settings)
            stack.push_async_callback(app.state.store.close)
            # [embedder]
            app.state.embedder = create_embedder(settings)
            stack.push_async_callback(app.state.embedder.close)
            if isinstance(app.state.embedder, RemoteEmbedder):
                await app.state.embedder.discover()  # the dimension; warns if the API is down
            # [cache]
            app.state.cache = create_cache(settings, app.state.metrics)
            stack.push_async_callback(app.state.cache.close)
            if settings.redis_url:  # replicas share query vectors (each keeps its own LRU too)
                app.state.embedder = SharedQueryEmbeddings(
                    app.state.embedder, app.state.cache, settings.cache_ttl, app.state.metrics
                )
            # [retriever]
            reranker = create_reranker(settings)
            if reranker is not None:
                stack.push_async_callback(reranker.close)
            app.state.retriever = HybridRetriever(
                app.state.store,
                app.state.embedder,
                reranker=reranker,
                config=FusionConfig.from_settings(settings),
                metrics=app.state.metrics,
            )
            app.state.pipeline = IngestPipeline(
                app.state.store, app.state.embedder, settings, app.state.metrics
            )
            # [upstream]
            app.state.upstream = (
                UpstreamClient(settings, app.state.metrics) if settings.upstream_enabled else None
            )
            if app.state.upstream is not None:
                stack.push_async_callback(app.state.upstream.aclose)
            # [chat]
            retrieval = CachedRetriever(
                app.state.retriever,
                app.state.store,
                app.state.cache,
                settings.cache_ttl,
                app.state.metrics,
            )
            responses = ResponseCache(app.state.cache, settings.cache_ttl, app.state.metrics)
            app.state.chat = ChatService(
                settings,
                app.state.upstream,
                rag=RagAnswerer(settings, app.state.store, retrieval, app.state.upstream),
                responses=responses if settings.response_cache else None,
            )
            # [sample]
            if settings.sample_collection:
                await stack.enter_async_context(
                    sample_in_background(app.state.store, app.state.pipeline)
                )
            # [security]
            app.state.rate_limiter = create_rate_limiter(settings, app.state.metrics)
            stack.push_async_callback(app.state.rate_limiter.close)
            yield

    app = FastAPI(
        title="ragbridge",
        version=__version__,
        description="Self-hosted RAG server with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # [middleware]
    app.state.metrics = Metrics()
    app.state.shutdown_gate = ShutdownGate()
    install_middleware(app, settings, app.state.metrics, app.state.shutdown_gate)
    app.include_router(ops.router)
    # [routers]
    app.include_router(collections_api.router)
    app.include_router(embeddings_api.router)
    app.include_router(metrics_api.router)
    app.include_router(keys_api.router)
    app.include_router(openai_api.router)
    return app
