"""Collections, their documents, and search over them: `/v1/collections…` and `/v1/search`."""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from ragbridge.api.deps import get_ragbridge, get_store
from ragbridge.api.security import (
    Principal,
    ensure_collection_access,
    require_admin,
    require_collection,
    require_principal,
)
from ragbridge.api.tools import toolbox_for
from ragbridge.api.uploads import read_upload
from ragbridge.errors import (
    DocumentError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    collection_not_found,
)
from ragbridge.settings import RetrievalMode
from ragbridge.store.base import CollectionInfo, DocumentRecord, SearchHit, Store

COLLECTION_NAME = re.compile(r"^\w[\w.-]{0,63}$")
"""Letters (any script), digits, `_`, `.`, `-`; no `/`, so `rag/<collection>` model ids parse."""
UPLOAD_FIELD = "file"

router = APIRouter(tags=["collections"], dependencies=[Depends(require_principal)])


class CreateCollection(BaseModel):
    name: str = Field(description="Letters, digits, `_`, `.`, `-`; at most 64.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchRequest(BaseModel):
    collection: str
    query: str = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, le=100, description="Default RAGBRIDGE_TOP_K.")
    mode: RetrievalMode | None = Field(None, description="Default RAGBRIDGE_RETRIEVAL_MODE.")
    filters: dict[str, Any] | None = Field(
        None, description='Chunk metadata equality, e.g. {"name": "guide.pdf", "page": [1, 2]}.'
    )
    score_threshold: float | None = Field(
        None, description="Drop results scoring below this; default RAGBRIDGE_SCORE_THRESHOLD."
    )


def check_collection_name(name: str) -> str:
    """`name` if it may name a collection, else `InvalidRequest` saying what is allowed."""
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"Invalid collection name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit.",
            param="name",
            code="invalid_collection_name",
        )
    return name


def collection_json(info: CollectionInfo) -> dict[str, Any]:
    created_at = int(info.created_at)
    return {"id": info.name, "object": "collection", **asdict(info), "created_at": created_at}


def document_json(record: DocumentRecord) -> dict[str, Any]:
    times = {"created_at": int(record.created_at), "updated_at": int(record.updated_at)}
    return {**asdict(record), "object": "document", **times}


def hit_json(rank: int, hit: SearchHit) -> dict[str, Any]:
    chunk = hit.chunk
    return {
        "object": "search.result",
        "rank": rank,
        "score": round(hit.score, 6),
        "text": chunk.text,
        "chunk_id": chunk.id,
        "document_id": chunk.document_id,
        "source": chunk.metadata.get("source"),
        "name": chunk.metadata.get("name", chunk.metadata.get("source")),
        "position": chunk.position,
        "metadata": chunk.metadata,
    }


async def existing_collection(store: Store, name: str) -> CollectionInfo:
    info = await store.get_collection(name)
    if info is None:
        raise collection_not_found(name)
    return info


@router.get("/v1/collections")
async def list_collections(request: Request, store: Store = Depends(get_store)) -> dict[str, Any]:
    """Collections this key may use."""
    principal: Principal = request.state.principal
    infos = [c for c in await store.list_collections() if principal.can_access(c.name)]
    return {"object": "list", "data": [collection_json(c) for c in infos]}


@router.post("/v1/collections", status_code=201, dependencies=[Depends(require_admin)])
async def create_collection(
    body: CreateCollection, request: Request, response: Response
) -> dict[str, Any]:
    """Create a collection for the server's embedding model; 200 if it exists already (409
    if it was made with another model)."""
    store, embedder = get_store(request), get_ragbridge(request).embedder
    name = check_collection_name(body.name)
    existing = await store.get_collection(name)
    try:
        dimension = await asyncio.to_thread(lambda: embedder.dimension)  # may load the model
    except ServiceUnavailable:  # a remote model tells its dimension by answering once
        dimension = int((await embedder.embed_documents(["ragbridge"])).shape[1])
    info = await store.create_collection(name, embedder.name, dimension, body.metadata)
    if existing is not None:
        response.status_code = 200
    return collection_json(info)


@router.get("/v1/collections/{name}", dependencies=[Depends(require_collection)])
async def get_collection(name: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    return collection_json(await existing_collection(store, name))


@router.delete(
    "/v1/collections/{name}", dependencies=[Depends(require_collection), Depends(require_admin)]
)
async def delete_collection(name: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    """Delete a collection with all its documents, chunks and vectors."""
    if not await store.delete_collection(name):
        raise collection_not_found(name)
    return {"id": name, "object": "collection.deleted", "deleted": True}


@router.post(
    "/v1/collections/{name}/documents",
    dependencies=[Depends(require_collection), Depends(require_admin)],
)
async def upload_document(name: str, request: Request, response: Response) -> dict[str, Any]:
    """Ingest one uploaded file (multipart field `file`) into the collection, creating it if
    new: 201 when added, 200 when updated or unchanged."""
    bridge = get_ragbridge(request)
    if await bridge.collection(name) is None:
        check_collection_name(name)
    upload = await read_upload(request, UPLOAD_FIELD, bridge.settings.max_upload_bytes)
    result = await bridge.ingest_bytes(name, upload.filename, upload.data)
    if result.status == "failed":
        raise DocumentError(result.error or f"{upload.filename}: could not be ingested.")
    response.status_code = 201 if result.status == "added" else 200
    answer = {
        "object": "ingest.result",
        "file": upload.filename,
        "status": result.status,
        "chunks": result.chunks,
        "removed": result.removed,
        "documents": [document_json(d) for d in result.documents],
    }
    if result.warning:  # the parser's warnings about the file, as one line
        answer["warning"] = result.warning
    return answer


@router.get("/v1/collections/{name}/documents", dependencies=[Depends(require_collection)])
async def list_documents(name: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    await existing_collection(store, name)
    return {"object": "list", "data": [document_json(d) for d in await store.list_documents(name)]}


@router.get(
    "/v1/collections/{name}/documents/{document_id}", dependencies=[Depends(require_collection)]
)
async def get_document(name: str, document_id: str, request: Request) -> dict[str, Any]:
    """A document with all its passages in order: where cited passages link to (each as
    `#chunk-{position}`) when the web console is absent."""
    toolbox = toolbox_for(request)
    record, chunks = await toolbox.read_document(request.state.principal, name, document_id)
    return {
        **document_json(record),
        "url": toolbox.document_url(record),
        "chunks": [toolbox.chunk_json(chunk) for chunk in chunks],
    }


@router.delete(
    "/v1/collections/{name}/documents/{document_id}",
    dependencies=[Depends(require_collection), Depends(require_admin)],
)
async def delete_document(
    name: str, document_id: str, store: Store = Depends(get_store)
) -> dict[str, Any]:
    """Delete a document with its chunks and vectors."""
    await existing_collection(store, name)
    if not await store.delete_document(name, document_id):
        raise NotFound(
            f"Document '{document_id}' not found in collection '{name}'.",
            param="document_id",
            code="not_found",
        )
    return {"id": document_id, "object": "document.deleted", "deleted": True}


@router.post("/v1/search")
async def search(body: SearchRequest, request: Request) -> dict[str, Any]:
    """The collection's best passages for `query`, best first."""
    ensure_collection_access(request.state.principal, body.collection)
    bridge = get_ragbridge(request)
    settings = bridge.settings
    mode = body.mode or settings.retrieval_mode
    hits = await bridge.retriever.search(
        body.collection,
        body.query,
        top_k=body.top_k or settings.top_k,
        mode=mode,
        filters=body.filters,
        score_threshold=(
            settings.score_threshold if body.score_threshold is None else body.score_threshold
        ),
    )
    return {
        "object": "list",
        "collection": body.collection,
        "mode": mode,
        "data": [hit_json(rank, hit) for rank, hit in enumerate(hits, start=1)],
    }
