"""Identical retrievals served from the cache, never stale after an ingest or a delete.

The key holds the collection's creation time and document and chunk counts (the store is the truth
every replica shares); the value is only chunk ids and scores, read back from the store on a hit,
so a hit whose chunks are gone (a changed document gets new ids) is a miss. What a hit can miss, an
in-place edit that keeps the counts, lasts at most `cache_ttl` seconds (docs/retrieval.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ragbridge.cache.base import Cache, cache_key
from ragbridge.errors import collection_not_found
from ragbridge.retrieval.base import Retriever
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import RetrievalMode
from ragbridge.store.base import CollectionInfo, MetadataFilter, SearchHit, Store

CACHE_NAME = "retrieval"


@dataclass(eq=False)
class CachedRetriever:
    """`retriever` with its results remembered for `ttl` seconds in `cache`."""

    retriever: Retriever
    store: Store
    cache: Cache
    ttl: float
    metrics: Metrics | None = None

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
        """Like `HybridRetriever.search`; a cached result is checked against the store first."""
        info = collection_info or await self.store.get_collection(collection)
        if info is None:
            raise collection_not_found(collection)
        key = cache_key(
            CACHE_NAME,
            collection,
            info.created_at,
            info.document_count,
            info.chunk_count,
            query,
            mode,
            top_k,
            dict(filters) if filters else None,
            score_threshold,
        )
        hits = await self._cached(collection, key)
        if self.metrics is not None:
            self.metrics.count_cache(CACHE_NAME, hits is not None)
        if hits is not None:
            return hits
        hits = await self.retriever.search(
            collection,
            query,
            top_k=top_k,
            mode=mode,
            filters=filters,
            score_threshold=score_threshold,
            collection_info=info,
        )
        ranked = [[hit.chunk.id, hit.score] for hit in hits]
        await self.cache.set(key, json.dumps(ranked).encode(), self.ttl)
        return hits

    async def _cached(self, collection: str, key: str) -> list[SearchHit] | None:
        """The cached hits with their chunks as stored now, or None (absent, or a chunk gone)."""
        data = await self.cache.get(key)
        if data is None:
            return None
        try:
            ranked = [(str(chunk_id), float(score)) for chunk_id, score in json.loads(data)]
        except (ValueError, TypeError):
            return None
        if not ranked:
            return []
        chunks = await self.store.get_chunks(collection, [chunk_id for chunk_id, _ in ranked])
        if len(chunks) != len(ranked):
            return None
        return [SearchHit(chunk, score) for chunk, (_, score) in zip(chunks, ranked, strict=True)]
