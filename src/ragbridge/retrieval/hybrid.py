"""Hybrid retrieval: dense (cosine) and keyword (BM25) candidates, fused (`fusion.py`), optionally
reranked. Why a retriever may be left out for a query, a passage judged by dense search alone, and
the per-embedder relevance floor and dense weight: docs/retrieval.md."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Set as AbstractSet

from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import calibration
from ragbridge.errors import EmbeddingMismatch, InvalidRequest, UpstreamError, collection_not_found
from ragbridge.retrieval.analyzer import Analyzer, default_analyzer
from ragbridge.retrieval.fusion import (
    FusionConfig,
    Ranking,
    from_origin,
    reciprocal_rank_fusion,
    relative_score_fusion,
)
from ragbridge.retrieval.query import bounded_query
from ragbridge.retrieval.rerank import Reranker
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import RetrievalMode
from ragbridge.store.base import CollectionInfo, MetadataFilter, SearchHit, Store
from ragbridge.text.scripts import cross_script, dense_reads_query

log = logging.getLogger(__name__)

MODES: tuple[RetrievalMode, ...] = ("hybrid", "dense", "keyword")


class HybridRetriever:
    """Finds the passages of a collection that answer a query, in any of the three modes."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        reranker: Reranker | None = None,
        analyzer: Analyzer | None = None,
        config: FusionConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.analyzer = analyzer or default_analyzer()
        self.config = config or FusionConfig()
        self.metrics = metrics or Metrics()
        weight, floor = self.config.dense_weight, self.config.min_similarity
        origin = self.config.cosine_origin
        if weight is None or floor is None or origin is None:  # the embedder's, as measured
            measured = calibration(embedder.name)
            weight = measured.dense_weight if weight is None else weight
            floor = measured.min_similarity if floor is None else floor
            origin = measured.cosine_origin if origin is None else origin
        self.dense_weight: float = weight
        self.min_similarity: float = floor
        self.cosine_origin: float = origin

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int = 5,
        mode: RetrievalMode = "hybrid",
        filters: MetadataFilter | None = None,
        score_threshold: float = 0.0,
        explain: dict[str, dict[str, float]] | None = None,
        collection_info: CollectionInfo | None = None,
    ) -> list[SearchHit]:
        """The best `top_k` passages for `query`, best first, each with a score in 0..1.

        The score is what the mode ranks by: cosine similarity (dense), BM25 relative to the
        best hit (keyword), the fused score (hybrid; 1.0 = first for every retriever that read
        the query), or the reranker's relevance when one reordered the hits. Hits scoring 0 are
        dropped, and so are those below `score_threshold`; in hybrid mode also the passages only
        dense search found with a cosine below `min_similarity` (none for an off-topic question;
        dense mode returns the nearest passages, their cosine as the score).
        A dict passed as `explain` receives each candidate's per-retriever scores by chunk id
        (`dense` cosine, `keyword` relative BM25), for the console's search playground. Raises
        `NotFound` for an unknown collection, `EmbeddingMismatch` when dense search would use
        another model's vectors.
        """
        started = time.perf_counter()
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}", param="mode")
        if top_k < 1:
            raise InvalidRequest("top_k must be at least 1", param="top_k")
        if not query.strip():
            raise InvalidRequest("query must not be empty", param="query")
        query = bounded_query(query, self.config.query_max_chars)
        info = collection_info or await self.store.get_collection(collection)  # read once a turn
        if info is None:
            raise collection_not_found(collection)

        use_dense = mode == "dense" or (
            mode == "hybrid" and dense_reads_query(self.embedder.multilingual, query)
        )
        if use_dense and info.embedding_model != self.embedder.name:
            raise EmbeddingMismatch(
                f"collection {collection!r} was embedded with {info.embedding_model!r}, "
                f"but the server embeds with {self.embedder.name!r}; re-ingest it or "
                "search it with mode=keyword",
                code="embedding_mismatch",
            )
        depth = max(self.config.candidates, top_k)
        dense, keyword = await asyncio.gather(
            self._dense(collection, query, depth, filters) if use_dense else _no_hits(),
            self._keyword(collection, query, depth, filters) if mode != "dense" else _no_hits(),
        )

        if explain is not None:
            _explain(explain, dense, keyword)
        if mode == "dense":
            ranked = [SearchHit(h.chunk, max(0.0, min(1.0, h.score))) for h in dense]
        elif mode == "keyword":
            ranked = _relative(keyword)
        else:
            ranked = self._fuse(query, dense, keyword, use_dense, depth)
        if mode == "hybrid" and (unlikely := self._below_floor(dense, keyword)):
            ranked = [hit for hit in ranked if hit.chunk.id not in unlikely]
        ranked = await self._rerank(query, ranked, top_k)
        # A score of 0 matched nothing (no keyword, a cosine at or below 0): never a passage.
        hits = [hit for hit in ranked[:top_k] if hit.score > 0.0 and hit.score >= score_threshold]
        self.metrics.observe_retrieval(mode, time.perf_counter() - started, len(hits))
        return hits

    async def _dense(
        self, collection: str, query: str, depth: int, filters: MetadataFilter | None
    ) -> list[SearchHit]:
        vector = await self.embedder.embed_query(query)
        return await self.store.dense_search(collection, vector, depth, filters)

    async def _keyword(
        self, collection: str, query: str, depth: int, filters: MetadataFilter | None
    ) -> list[SearchHit]:
        terms = await asyncio.to_thread(self.analyzer.analyze, query)  # Kiwi may still be loading
        kept = set(list(dict.fromkeys(terms))[: max(1, self.config.query_max_terms)])
        terms = [term for term in terms if term in kept]
        if not terms:
            return []
        return await self.store.keyword_search(collection, terms, depth, filters)

    def _below_floor(self, dense: list[SearchHit], keyword: list[SearchHit]) -> set[str]:
        """Passages only dense search found, with a cosine under the relevance floor."""
        if self.min_similarity <= 0:
            return set()
        found = {hit.chunk.id for hit in keyword}
        return {h.chunk.id for h in dense if h.score < self.min_similarity} - found

    def _fuse(
        self,
        query: str,
        dense: list[SearchHit],
        keyword: list[SearchHit],
        use_dense: bool,
        depth: int,
    ) -> list[SearchHit]:
        config = self.config
        chunks = {hit.chunk.id: hit.chunk for hit in (*keyword, *dense)}
        cosines = [(h.chunk.id, h.score) for h in dense]
        rankings: list[Ranking] = [
            (from_origin(cosines, self.cosine_origin), self.dense_weight if use_dense else 0.0),
            ([(h.chunk.id, h.score) for h in keyword], config.keyword_weight),
        ]
        # Keyword search cannot see a passage in another script than the query, unless it found
        # it anyway (a mixed query); only a multilingual embedder judges such a passage instead.
        blind: list[AbstractSet[str]] = [set(), set()]
        if use_dense and self.embedder.multilingual:
            found = {h.chunk.id for h in keyword}
            blind[1] = {
                h.chunk.id
                for h in dense
                if h.chunk.id not in found and cross_script(query, h.chunk.text)
            }
        if config.fusion == "rrf":
            fused = reciprocal_rank_fusion(rankings, k=config.rrf_k, blind=blind)
        else:
            fused = relative_score_fusion(rankings, depth, blind=blind)
        return [SearchHit(chunks[chunk_id], score) for chunk_id, score in fused]

    async def _rerank(self, query: str, hits: list[SearchHit], top_k: int) -> list[SearchHit]:
        reranker = self.reranker
        if reranker is None or len(hits) < 2:
            return hits
        if not dense_reads_query(reranker.multilingual, query):
            return hits
        pool = hits[: max(self.config.rerank_depth, top_k)]
        try:
            scores = await reranker.rerank(query, [h.chunk.text for h in pool], len(pool))
        except UpstreamError as exc:
            log.warning("reranking skipped, keeping fused order: %s", exc.message)
            return hits
        return [SearchHit(pool[index].chunk, score) for index, score in scores]


def _explain(
    explain: dict[str, dict[str, float]], dense: list[SearchHit], keyword: list[SearchHit]
) -> None:
    """Record each candidate's dense and keyword scores into `explain`."""
    for hit in dense:
        explain.setdefault(hit.chunk.id, {})["dense"] = hit.score
    for hit in _relative(keyword):
        explain.setdefault(hit.chunk.id, {})["keyword"] = hit.score


async def _no_hits() -> list[SearchHit]:
    """The candidates of a retriever that is not used."""
    return []


def _relative(hits: list[SearchHit]) -> list[SearchHit]:
    """BM25 scores divided by the best one, so the top keyword hit scores 1.0."""
    if not hits or hits[0].score <= 0:
        return hits
    best = hits[0].score
    return [SearchHit(h.chunk, max(0.0, h.score / best)) for h in hits]
