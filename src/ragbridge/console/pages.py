"""Console pages for collections and their documents: list, create, upload, view, delete; each
goes through what the `/v1/collections` routes call (`check_collection_name`, `read_upload`...).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ragbridge.api.collections import UPLOAD_FIELD, check_collection_name
from ragbridge.api.deps import get_settings
from ragbridge.api.uploads import read_upload
from ragbridge.console.render import Ctx, context
from ragbridge.console.session import ConsoleRefused
from ragbridge.errors import RagbridgeError
from ragbridge.rag import RAG_PREFIX
from ragbridge.store.base import CollectionInfo, DocumentRecord, chunk_id

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


async def visible_collection(ctx: Ctx, name: str) -> CollectionInfo:
    """The collection, or the console's 404 when it is absent or outside the key's scope."""
    info = await ctx.bridge.collection(name) if ctx.principal.can_access(name) else None
    if info is None:
        raise ConsoleRefused(404, "not_found")
    return info


async def visible_collections(ctx: Ctx) -> list[CollectionInfo]:
    return [c for c in await ctx.bridge.collections() if ctx.principal.can_access(c.name)]


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/collections", status_code=303)


@router.get("/collections")
async def collections(request: Request, error: str | None = None) -> Response:
    ctx = await context(request)
    rows: list[dict[str, Any]] = []
    for info in await visible_collections(ctx):
        documents = await ctx.bridge.documents(info.name)
        rows.append(
            {
                "info": info,
                "model_id": RAG_PREFIX + info.name,
                "vector_bytes": info.chunk_count * info.dimension * 4,
                "updated": max((d.updated_at for d in documents), default=info.created_at),
            }
        )
    return ctx.render("collections.html", rows=rows, error=error)


@router.post("/collections")
async def create_collection(request: Request) -> Response:
    ctx = await context(request, admin=True)
    name = str((await request.form()).get("name", "")).strip()
    try:
        await ctx.bridge.create_collection(check_collection_name(name))
    except RagbridgeError as exc:
        response = await collections(request, error=exc.message)
        response.status_code = exc.status
        return response
    return RedirectResponse(f"/collections/{name}", status_code=303)


@router.get("/collections/{name}/delete")
async def confirm_delete_collection(request: Request, name: str) -> Response:
    ctx = await context(request, admin=True)
    await visible_collection(ctx, name)
    return ctx.render(
        "confirm.html", what=name, detail_key="confirm_collection", back="/collections"
    )


@router.post("/collections/{name}/delete")
async def delete_collection(request: Request, name: str) -> Response:
    ctx = await context(request, admin=True)
    await visible_collection(ctx, name)
    await ctx.bridge.delete_collection(name)
    return RedirectResponse("/collections", status_code=303)


@router.get("/collections/{name}")
async def documents(request: Request, name: str, page: int = 1) -> Response:
    ctx = await context(request)
    info = await visible_collection(ctx, name)
    records = sorted(await ctx.bridge.documents(name), key=lambda d: d.source.lower())
    pages = max(1, math.ceil(len(records) / PAGE_SIZE))
    page = min(max(1, page), pages)
    shown = records[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    template = "documents_table.html" if request.headers.get("hx-request") else "documents.html"
    return ctx.render(
        template,
        info=info,
        model_id=RAG_PREFIX + name,
        documents=shown,
        page=page,
        pages=pages,
        total=len(records),
    )


@router.post("/collections/{name}/upload")
async def upload(request: Request, name: str) -> Response:
    """One file from the drop zone (the script sends each file in its own request): the same
    steps as `POST /v1/collections/{name}/documents`, answered as JSON for the progress row."""
    ctx = await context(request, admin=True)
    if not ctx.principal.can_access(name):
        raise ConsoleRefused(404, "not_found")
    try:
        if await ctx.bridge.collection(name) is None:
            check_collection_name(name)
        file = await read_upload(request, UPLOAD_FIELD, get_settings(request).max_upload_bytes)
        result = await ctx.bridge.ingest_bytes(name, file.filename, file.data)
    except RagbridgeError as exc:
        return JSONResponse({"status": "failed", "error": exc.message}, status_code=exc.status)
    body = {
        "file": file.filename,
        "status": result.status,
        "chunks": result.chunks,
        "error": result.error,
        "documents": [d.id for d in result.documents],
    }
    return JSONResponse(body, status_code=422 if result.status == "failed" else 200)


async def visible_document(ctx: Ctx, name: str, document_id: str) -> DocumentRecord:
    await visible_collection(ctx, name)
    record = await ctx.bridge.document(name, document_id)
    if record is None:
        raise ConsoleRefused(404, "not_found")
    return record


@router.get("/collections/{name}/documents/{document_id}")
async def document(request: Request, name: str, document_id: str) -> Response:
    """A document's chunks in order, each at `#chunk-{position}` (citations link there)."""
    ctx = await context(request)
    record = await visible_document(ctx, name, document_id)
    ids = [chunk_id(name, record, index) for index in range(record.chunk_count)]
    chunks = sorted(await ctx.bridge.store.get_chunks(name, ids), key=lambda c: c.position)
    pages = {c.metadata["page"] for c in chunks if isinstance(c.metadata.get("page"), int)}
    return ctx.render(
        "document.html", collection=name, doc=record, chunks=chunks, page_count=len(pages)
    )


@router.get("/collections/{name}/chunks/{chunk}")
async def chunk_link(request: Request, name: str, chunk: str) -> Response:
    """Where a citation's chunk id lives: redirects to its place in the document view."""
    ctx = await context(request)
    await visible_collection(ctx, name)
    found = await ctx.bridge.store.get_chunks(name, [chunk])
    if not found:
        raise ConsoleRefused(404, "not_found")
    target = f"/collections/{name}/documents/{found[0].document_id}#chunk-{found[0].position}"
    return RedirectResponse(target, status_code=303)


@router.get("/collections/{name}/documents/{document_id}/delete")
async def confirm_delete_document(request: Request, name: str, document_id: str) -> Response:
    ctx = await context(request, admin=True)
    record = await visible_document(ctx, name, document_id)
    back = f"/collections/{name}"
    return ctx.render("confirm.html", what=record.source, detail_key="confirm_document", back=back)


@router.post("/collections/{name}/documents/{document_id}/delete")
async def delete_document(request: Request, name: str, document_id: str) -> Response:
    ctx = await context(request, admin=True)
    await visible_document(ctx, name, document_id)
    await ctx.bridge.delete_document(name, document_id)
    return RedirectResponse(f"/collections/{name}", status_code=303)
