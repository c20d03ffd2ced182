"""Fusing the dense and keyword candidate lists into one ranking, and how (`FusionConfig`):
`relative` (the default; mean of scores divided by each list's best) or `rrf` (reciprocal rank
fusion). Why relative by default: docs/retrieval.md and docs/benchmarks.md (Retrieval quality)."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from ragbridge.retrieval.query import DEFAULT_MAX_CHARS
from ragbridge.settings import RetrievalFusion, Settings

Ranking = tuple[Sequence[tuple[str, float]], float]
"""One retriever's (id, score) candidates, best first, and its weight in the fusion."""


Blind = Sequence[AbstractSet[str]]
"""Per ranking, the items it cannot judge (left out of their mean instead of counting 0)."""


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking], k: float = 60.0, blind: Blind = ()
) -> list[tuple[str, float]]:
    """Weighted RRF: score = Σ weight / (k + rank), rank from 1; the scores themselves unused.

    Divided by the best possible score (first in every list that can judge the item), so 1.0
    means every retriever put the passage first. Ties keep first-seen order.
    """
    ranks = [
        ({item: rank for rank, (item, _) in reversed(list(enumerate(hits, start=1)))}, weight)
        for hits, weight in rankings
    ]
    items = dict.fromkeys(item for hits, weight in rankings if weight > 0 for item, _ in hits)
    fused: dict[str, float] = {}
    for item in items:
        score = best = 0.0
        for index, (rank_of, weight) in enumerate(ranks):
            if weight <= 0 or (index < len(blind) and item in blind[index]):
                continue
            best += weight / (k + 1)
            rank = rank_of.get(item)
            score += weight / (k + rank) if rank else 0.0
        fused[item] = score / best if best else 0.0
    return sorted(fused.items(), key=lambda pair: pair[1], reverse=True)


def relative_score_fusion(
    rankings: Sequence[Ranking], depth: int, blind: Blind = ()
) -> list[tuple[str, float]]:
    """Weighted mean of each list's scores divided by that list's best score.

    `depth` is how many candidates each retriever was asked for. A passage missing from a
    shorter list did not match there at all and gets 0; one missing from a full list ranked
    below all of it and gets its lowest relative score. An empty list still counts in the
    mean, so 1.0 means every retriever put the passage first. Unlike RRF this keeps how far
    ahead a hit is. An item in `blind[i]` is averaged over the other lists only.
    """
    # relative scores, weight, floor, blind set
    lists: list[tuple[dict[str, float], float, float, AbstractSet[str]]] = []
    for index, (hits, weight) in enumerate(rankings):
        if weight > 0:
            best = max((score for _, score in hits), default=0.0)
            relative = {item: max(0.0, score) / max(best, 1e-9) for item, score in hits}
            floor = min(relative.values()) if hits and len(hits) >= depth else 0.0
            lists.append(
                (relative, weight, floor, blind[index] if index < len(blind) else frozenset())
            )
    items = dict.fromkeys(item for relative, _, _, _ in lists for item in relative)
    fused = []
    for item in items:
        judged = [(rel, weight, floor) for rel, weight, floor, off in lists if item not in off]
        total = sum(weight for _, weight, _ in judged)
        score = sum(weight * rel.get(item, floor) for rel, weight, floor in judged)
        fused.append((item, score / total if total else 0.0))
    fused.sort(key=lambda pair: pair[1], reverse=True)
    return fused


def from_origin(dense: Sequence[tuple[str, float]], calibrated: float) -> list[tuple[str, float]]:
    """Dense (id, cosine) candidates, best first, with each cosine counted from the embedder's
    calibrated origin (`Calibration.cosine_origin`), or from just below the lowest candidate's
    cosine when that lies under it, so that every passage dense search found stays positive."""
    if calibrated <= 0 or not dense:
        return list(dense)
    origin = min(calibrated, dense[-1][1] - 1e-3)
    return [(item, cosine - origin) for item, cosine in dense]


@dataclass(frozen=True)
class FusionConfig:
    """How candidate lists are gathered and fused (unset weight, floor, origin: the embedder's)."""

    fusion: RetrievalFusion = "relative"
    candidates: int = 50
    """Passages each retriever contributes before fusion (at least `top_k`)."""
    rrf_k: float = 60.0
    dense_weight: float | None = None
    """None: the embedder's measured weight (`ragbridge.embeddings.names.calibration`)."""
    keyword_weight: float = 1.0
    min_similarity: float | None = None
    """Cosine below which a passage only dense search found is dropped; None: the embedder's."""
    cosine_origin: float | None = None
    """The cosine dense scores are fused from (`from_origin()`); None: the embedder's."""
    rerank_depth: int = 30
    """Fused passages the reranker reorders (at least `top_k`)."""
    query_max_chars: int = DEFAULT_MAX_CHARS
    """A longer query is cut to its beginning and end (`bounded_query`)."""
    query_max_terms: int = 64
    """Most distinct analysed terms one keyword search matches (the first ones)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        return cls(
            fusion=settings.retrieval_fusion,
            dense_weight=settings.retrieval_dense_weight,
            min_similarity=settings.retrieval_min_similarity,
            query_max_chars=settings.retrieval_query_max_chars,
            query_max_terms=settings.retrieval_query_max_terms,
        )
