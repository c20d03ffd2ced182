"""`create_app(settings)`: opens the Python API (`ragbridge.open`) once, as `app.state.ragbridge`,
and mounts the routers; each service starts in `lifespan` and closes with it: nothing is global."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route

from ragbridge import __version__
from ragbridge.api import collections, embeddings, keys, openai, ops, tools
from ragbridge.api.envelope import install_error_handlers
from ragbridge.api.mcp import McpEndpoint
from ragbridge.api.middleware import install_middleware
from ragbridge.api.secrets_policy import check_secrets, ensure_bootstrap_keys
from ragbridge.api.security import check_bind_safety
from ragbridge.api.shutdown import ShutdownGate
from ragbridge.bridge import open as open_ragbridge
from ragbridge.llm.local.model import check_local_model
from ragbridge.sample import sample_in_background
from ragbridge.service.log_format import configure_logging
from ragbridge.service.rate_limits_redis import create_rate_limiter
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
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
        """Open the Python API's `Ragbridge` and what only a server needs: bootstrap keys, rate
        limits, the sample collection, the warm start, MCP sessions; closed in reverse."""
        state = app.state
        configure_logging(settings.log_level, settings.log_json)
        async with AsyncExitStack() as stack:
            bridge = await stack.enter_async_context(open_ragbridge(settings, metrics=metrics))
            await ensure_bootstrap_keys(bridge.store, settings.bootstrap_keys)
            bridge.chat  # noqa: B018  # builds the chat side now: a local model loads as we serve
            state.ragbridge = bridge
            state.rate_limiter = create_rate_limiter(settings, metrics)
            stack.push_async_callback(state.rate_limiter.close)
            if settings.sample_collection:
                await stack.enter_async_context(sample_in_background(bridge.store, bridge.pipeline))
            state.warmth = Warmth() if settings.warm_start else Warmth("skipped", "skipped")
            if settings.warm_start:  # no cold start: model and vectors load while we serve
                await stack.enter_async_context(warming(state.warmth, bridge.retriever))
            await stack.enter_async_context(mcp.server.session_manager.run())
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
    for api in (ops, collections, embeddings, keys, openai):
        app.include_router(api.router)
    # Tools for tool-calling models: an OpenAPI tool server and an MCP server (same tools).
    app.mount(tools.PREFIX, tools.create_tools_app(app.state))
    app.router.routes.append(Route(McpEndpoint.PATH, mcp, methods=["GET", "POST", "DELETE"]))
    if settings.console:
        from ragbridge.console import install_console

        install_console(app)
    return app
