"""The MCP server at `/mcp` (Streamable HTTP, official `mcp` SDK, stateless): the tool server's
tools for any MCP client, run as the Bearer key checked (and rate limited) before the SDK sees the
request, so a scoped key sees only its collections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ragbridge import __version__
from ragbridge.api.envelope import ragbridge_error_response
from ragbridge.api.security import Principal, authorize_bearer
from ragbridge.api.tools import toolbox_for
from ragbridge.errors import RagbridgeError, Unauthorized
from ragbridge.settings import RetrievalMode
from ragbridge.tools import DEFAULT_MAX_CHUNKS, DocumentArgs, SearchArgs, Toolbox

INSTRUCTIONS = (
    "Search the user's own documents kept in ragbridge. Call list_collections to see the "
    "collections, search to find passages (any language), and get_document to read more of a "
    "document. Cite what you use by its source and page."
)


async def _call(
    ctx: Context, tool: Callable[[Toolbox, Principal], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run `tool` as the key `McpEndpoint` authorised; its errors (not found, bad arguments)
    become tool errors with the message the OpenAPI tool server's envelope has."""
    request = ctx.request_context.request
    try:
        if not isinstance(request, Request) or not hasattr(request.state, "principal"):
            raise Unauthorized("This tool call came without an authorised HTTP request.")
        return await tool(toolbox_for(request), request.state.principal)
    except RagbridgeError as exc:
        raise ToolError(exc.message) from exc
    except ValidationError as exc:
        raise ToolError(str(exc)) from exc


def create_mcp_server() -> MCPServer:
    """An MCP server with ragbridge's tools (each call delegates to `ragbridge.tools`)."""
    server: MCPServer = MCPServer(
        name="ragbridge", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )

    @server.tool(name="list_collections")
    async def list_collections(ctx: Context) -> dict[str, Any]:
        """List the document collections you can search, with their sizes."""
        return await _call(ctx, lambda tools, key: tools.list_collections(key))

    @server.tool(name="search")
    async def search(
        ctx: Context,
        collection: str,
        query: str,
        top_k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Search one collection of the user's documents (any language, Korean included): the
        best passages first, each with text, source, page, headings, score and a URL.
        mode: hybrid (default), dense or keyword; filters: passage metadata to match,
        e.g. {"name": "guide.pdf"}."""
        return await _call(
            ctx,
            lambda tools, key: tools.search(
                key,
                SearchArgs(
                    collection=collection, query=query, top_k=top_k, mode=mode, filters=filters
                ),
            ),
        )

    @server.tool(name="get_document")
    async def get_document(
        ctx: Context,
        collection: str,
        document_id: str,
        first_chunk: int = 0,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> dict[str, Any]:
        """Read a document (a document_id from search) passage by passage, in order: at most
        max_chunks passages from first_chunk."""
        return await _call(
            ctx,
            lambda tools, key: tools.get_document(
                key,
                DocumentArgs(
                    collection=collection,
                    document_id=document_id,
                    first_chunk=first_chunk,
                    max_chunks=max_chunks,
                ),
            ),
        )

    return server


class McpEndpoint:
    """The ASGI endpoint at `/mcp`: API key first, then the SDK's Streamable HTTP transport."""

    PATH = "/mcp"

    def __init__(self) -> None:
        self.server = create_mcp_server()
        # Host checks are the app's business (one policy for every route), not the SDK's.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.server.streamable_http_app(
            streamable_http_path=self.PATH, stateless_http=True, transport_security=security
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await authorize_bearer(request)
        except RagbridgeError as exc:
            await ragbridge_error_response(exc)(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)
