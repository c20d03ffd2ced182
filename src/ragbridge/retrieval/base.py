"""What every retriever answers to: the hybrid retriever, and the cache in front of it."""

from __future__ import annotations

from typing import Protocol

from ragbridge.settings import RetrievalMode
from ragbridge.store.base import CollectionInfo, MetadataFilter, SearchHit


class Retriever(Protocol):
    """What answers a search: `HybridRetriever`, or this cache in front of it."""

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int = 5,
        mode: RetrievalMode = "hybrid",
        filters: MetadataFilter | None = None,
        score_threshold: float = 0.0,
        collection_info: CollectionInfo | None = None,
    ) -> list[SearchHit]:
        """`collection_info`: the collection's row when the caller read it already (a chat
        turn reads it once at its start), so the search need not read it again."""
        ...
