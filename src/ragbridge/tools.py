"""The tools ragbridge offers tool-calling models (`list_collections`, `search`, `get_document`),
behind both `/tools` and `/mcp`. Every call runs as a `Principal`: a collection out of its scope
is "not found", exactly like a missing one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from ragbridge.api.security import Principal, ensure_collection_access
from ragbridge.citations import chunk_url, passage_url
from ragbridge.errors import NotFound, collection_not_found
from ragbridge.prompts import page_index, source_name
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import RetrievalMode, Settings
from ragbridge.store.base import ChunkRecord, DocumentRecord, SearchHit, Store, chunk_id

MAX_TOP_K = 50
DEFAULT_MAX_CHUNKS = 50


class SearchArgs(BaseModel):
    """Arguments of `search`."""

    collection: str = Field(description="The collection to search (see list_collections).")
    query: str = Field(min_length=1, description="What to look for, in any language.")
    top_k: int | None = Field(
        None, ge=1, le=MAX_TOP_K, description="How many passages (default: the server's)."
    )
    mode: RetrievalMode | None = Field(
        None, description="hybrid (default), dense (meaning) or keyword (exact words)."
    )
    filters: dict[str, Any] | None = Field(
        None,
        description='Passage metadata that must match, e.g. {"name": "guide.pdf"}; a list '
        "value means any of.",
    )


class DocumentArgs(BaseModel):
    """Arguments of `get_document`."""

    collection: str = Field(description="The document's collection.")
    document_id: str = Field(min_length=1, description="A document_id from search results.")
    first_chunk: int = Field(0, ge=0, description="Position of the first passage to return.")
    max_chunks: int = Field(
        DEFAULT_MAX_CHUNKS, ge=1, le=1000, description="At most this many passages."
    )


def _page(chunk: ChunkRecord) -> int | None:
    """The 1-based page of a passage, when its document has pages."""
    page = page_index(chunk)
    return None if page is None else page + 1


def _headings(chunk: ChunkRecord) -> list[str]:
    headings = chunk.metadata.get("headings")
    return [str(h) for h in headings] if isinstance(headings, list) else []


@dataclass(frozen=True)
class Toolbox:
    """The three tools over one store and retriever; `base_url` roots the passage URLs, which
    open the web console's page when it is served (`settings.console`), else the JSON view."""

    settings: Settings
    store: Store
    retriever: HybridRetriever
    base_url: str

    async def list_collections(self, principal: Principal) -> dict[str, Any]:
        """The collections `principal` may search, with their sizes."""
        infos = [c for c in await self.store.list_collections() if principal.can_access(c.name)]
        return {
            "collections": [
                {
                    "name": info.name,
                    "documents": info.document_count,
                    "passages": info.chunk_count,
                    "description": str(info.metadata.get("description", "")),
                }
                for info in infos
            ]
        }

    async def search(self, principal: Principal, args: SearchArgs) -> dict[str, Any]:
        """The collection's best passages for the query, best first, numbered from 1."""
        ensure_collection_access(principal, args.collection)
        hits = await self.retriever.search(
            args.collection,
            args.query,
            top_k=args.top_k or self.settings.top_k,
            mode=args.mode or self.settings.retrieval_mode,
            filters=args.filters,
            score_threshold=self.settings.score_threshold,
        )
        return {
            "collection": args.collection,
            "query": args.query,
            "passages": [self._passage(n, hit) for n, hit in enumerate(hits, start=1)],
        }

    async def get_document(self, principal: Principal, args: DocumentArgs) -> dict[str, Any]:
        """A document's record and its passages in order (a window of them for long ones)."""
        record, chunks = await self.read_document(
            principal, args.collection, args.document_id, args.first_chunk, args.max_chunks
        )
        shown = args.first_chunk + len(chunks)
        return {
            "collection": record.collection,
            "document_id": record.id,
            "source": record.source,
            "title": record.title,
            "chunk_count": record.chunk_count,
            "url": self.document_url(record),
            "chunks": [self.chunk_json(chunk) for chunk in chunks],
            "truncated": shown < record.chunk_count,
        }

    async def read_document(
        self,
        principal: Principal,
        collection: str,
        document_id: str,
        first: int = 0,
        limit: int | None = None,
    ) -> tuple[DocumentRecord, list[ChunkRecord]]:
        """A document and its chunks `first..first+limit` (all by default); 404 outside scope."""
        ensure_collection_access(principal, collection)
        if await self.store.get_collection(collection) is None:
            raise collection_not_found(collection)
        record = await self.store.get_document(collection, document_id)
        if record is None:
            raise NotFound(
                f"Document '{document_id}' not found in collection '{collection}'.",
                param="document_id",
                code="not_found",
            )
        last = record.chunk_count if limit is None else min(record.chunk_count, first + limit)
        ids = [chunk_id(collection, record, index) for index in range(first, last)]
        return record, await self.store.get_chunks(collection, ids)

    def document_url(self, record: DocumentRecord) -> str:
        """The document's page (console) or JSON view."""
        url = passage_url(
            self.base_url, record.collection, record.id, 0, console=self.settings.console
        )
        return url.partition("#")[0]

    def chunk_json(self, chunk: ChunkRecord) -> dict[str, Any]:
        """One stored passage with its 1-based page, headings and link."""
        return {
            "position": chunk.position,
            "chunk_id": chunk.id,
            "text": chunk.text,
            "page": _page(chunk),
            "headings": _headings(chunk),
            "url": chunk_url(self.base_url, chunk, console=self.settings.console),
        }

    def _passage(self, number: int, hit: SearchHit) -> dict[str, Any]:
        chunk = hit.chunk
        return {
            "n": number,
            "text": chunk.text,
            "source": source_name(hit),
            "page": _page(chunk),
            "headings": _headings(chunk),
            "score": round(float(hit.score), 4),
            "document_id": chunk.document_id,
            "position": chunk.position,
            "url": chunk_url(self.base_url, chunk, console=self.settings.console),
        }
