"""`create_app(settings)`: builds every service once, puts it on `app.state`, mounts the routers.

Each service is created in `lifespan` and closed when the app stops; nothing is global.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from ragbridge import __version__
from ragbridge.api import ops
from ragbridge.api.errors import install_error_handlers
from ragbridge.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ragbridge ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.exit_stack = stack
            # Each subsystem wires its services below its own marker; keep sections short.
            # [logging]
            # [store]
            # [embedder]
            # [retriever]
            # [upstream]
            # [chat]
            # [security]
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
    app.include_router(ops.router)
    # [routers]
    return app
