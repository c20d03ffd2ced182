"""The OpenAPI tool server at `/tools` (Open WebUI's "Tool Servers"): its own spec, paths relative
to `/tools`, one `POST` per tool named by `operationId`, the main app's keys and scopes; the logic,
shared with the MCP server, is `ragbridge.tools`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.datastructures import State

from ragbridge import __version__
from ragbridge.api.deps import get_ragbridge, get_settings
from ragbridge.api.envelope import install_error_handlers
from ragbridge.api.security import require_principal
from ragbridge.citations import public_base_url
from ragbridge.tools import DocumentArgs, SearchArgs, Toolbox

PREFIX = "/tools"

router = APIRouter(dependencies=[Depends(require_principal)])


def toolbox_for(request: Request) -> Toolbox:
    """The tools over this app's store and retriever, linking passages at the caller's URL."""
    settings, bridge = get_settings(request), get_ragbridge(request)
    return Toolbox(settings, bridge.store, bridge.retriever, public_base_url(request, settings))


@router.post("/list_collections", operation_id="list_collections", summary="List collections")
async def list_collections(request: Request) -> dict[str, Any]:
    """List the document collections you can search, with how many documents and passages each
    holds. Call this first when you do not know which collection to search."""
    return await toolbox_for(request).list_collections(request.state.principal)


@router.post("/search", operation_id="search", summary="Search a collection")
async def search(args: SearchArgs, request: Request) -> dict[str, Any]:
    """Search one collection of the user's documents (any language, Korean included) and get
    the best passages, best first: each with its text, source file, page, headings, score and a
    URL that opens it. Cite passages by their source; pass document_id to get_document for
    the surrounding text."""
    return await toolbox_for(request).search(request.state.principal, args)


@router.post("/get_document", operation_id="get_document", summary="Read a document")
async def get_document(args: DocumentArgs, request: Request) -> dict[str, Any]:
    """Read a document of a collection in order, passage by passage (a window of at most
    max_chunks passages from first_chunk), e.g. to see the context of a search result."""
    return await toolbox_for(request).get_document(request.state.principal, args)


def create_tools_app(state: State) -> FastAPI:
    """The tool server app, sharing `state` (services, settings) with the main app."""
    app = FastAPI(
        title="ragbridge tools",
        version=__version__,
        description="Search your ragbridge document collections: list_collections, search, "
        "get_document. Authenticate with a ragbridge API key (Bearer).",
        redoc_url=None,
    )
    app.state = state
    install_error_handlers(app)
    app.include_router(router)
    return app
