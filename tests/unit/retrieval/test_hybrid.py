"""Fusion math, language gating and the retriever's argument checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from ragbridge.embeddings.local import LocalEmbedder
from ragbridge.errors import EmbeddingMismatch, InvalidRequest, NotFound
from ragbridge.retrieval.fusion import Ranking, reciprocal_rank_fusion, relative_score_fusion
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import RetrievalMode
from ragbridge.store.sqlite import SqliteStore
from ragbridge.text.scripts import dense_reads_query, latin_share

pytestmark = pytest.mark.anyio

Fusion = Callable[[Sequence[Ranking]], list[tuple[str, float]]]


def relative(rankings: Sequence[Ranking]) -> list[tuple[str, float]]:
    return relative_score_fusion(rankings, depth=50)


def ranked(*ids: str) -> list[tuple[str, float]]:
    """Ids with made-up descending scores (RRF looks only at the order)."""
    return [(item, 10.0 - i) for i, item in enumerate(ids)]


def test_rrf_sums_weighted_reciprocal_ranks_normalised_to_one() -> None:
    fused = dict(reciprocal_rank_fusion([(ranked("a", "b", "c"), 1.0), (ranked("b", "a"), 1.0)]))
    best = 2 / 61
    assert fused["a"] == pytest.approx((1 / 61 + 1 / 62) / best)
    assert fused["b"] == pytest.approx((1 / 62 + 1 / 61) / best)
    assert fused["c"] == pytest.approx((1 / 63) / best)


def test_rrf_first_everywhere_scores_one_and_order_is_by_score() -> None:
    fused = reciprocal_rank_fusion([(ranked("x", "y"), 1.0), (ranked("x", "z", "y"), 2.0)], k=10)
    assert fused[0] == ("x", pytest.approx(1.0))
    assert [item for item, _ in fused] == ["x", "y", "z"]
    assert all(0.0 < score <= 1.0 for _, score in fused)


def test_relative_fusion_averages_scores_relative_to_each_lists_best() -> None:
    dense = [("a", 0.8), ("b", 0.4)]
    keyword = [("b", 20.0), ("c", 15.0), ("a", 5.0)]
    fused = dict(relative_score_fusion([(dense, 1.0), (keyword, 1.0)], depth=2))
    assert fused["a"] == pytest.approx((1.0 + 0.25) / 2)
    assert fused["b"] == pytest.approx((0.5 + 1.0) / 2)
    # c is missing from the full dense list: it gets that list's lowest relative score, 0.5
    assert fused["c"] == pytest.approx((0.5 + 0.75) / 2)


def test_relative_fusion_scores_no_match_in_a_short_list_as_zero() -> None:
    dense = [("a", 0.36), ("b", 0.31), ("c", 0.2)]
    keyword = [("b", 12.0)]  # only b matched a term, out of 3 asked for
    fused = relative_score_fusion([(dense, 1.0), (keyword, 1.0)], depth=3)
    assert fused[0] == ("b", pytest.approx((0.31 / 0.36 + 1.0) / 2))
    assert dict(fused)["a"] == pytest.approx(0.5)


def test_relative_fusion_keeps_how_far_ahead_a_hit_is() -> None:
    # Both lists rank d1 second, each almost level with its first: relative fusion puts it on
    # top, RRF (which sees only ranks) puts it last.
    dense = [("d0", 0.60), ("d1", 0.59), ("d2", 0.2)]
    keyword = [("d2", 30.0), ("d1", 29.0), ("d0", 1.0)]
    relative = relative_score_fusion([(dense, 1.0), (keyword, 1.0)], depth=3)
    assert relative[0][0] == "d1"
    rrf = dict(reciprocal_rank_fusion([(dense, 1.0), (keyword, 1.0)]))
    assert min(rrf, key=rrf.__getitem__) == "d1"


@pytest.mark.parametrize("fuse", [relative, reciprocal_rank_fusion])
def test_weight_zero_ignores_a_list_and_an_empty_list_halves_the_scale(fuse: Fusion) -> None:
    only_keyword = fuse([(ranked("noise1", "noise2"), 0.0), (ranked("a", "b"), 1.0)])
    assert [item for item, _ in only_keyword] == ["a", "b"]
    assert only_keyword[0][1] == pytest.approx(1.0)
    nothing_from_keyword = fuse([(ranked("a", "b"), 1.0), ([], 1.0)])
    assert nothing_from_keyword[0] == ("a", pytest.approx(0.5))


@pytest.mark.parametrize("fuse", [relative, reciprocal_rank_fusion])
def test_heavier_weight_wins_a_disagreement(fuse: Fusion) -> None:
    fused = fuse([(ranked("d"), 1.5), (ranked("k"), 1.0)])
    assert [item for item, _ in fused] == ["d", "k"]


@pytest.mark.parametrize("fuse", [relative, reciprocal_rank_fusion])
def test_fusing_nothing_is_empty(fuse: Fusion) -> None:
    assert fuse([([], 1.0), ([], 1.0)]) == []


@pytest.mark.parametrize(
    ("query", "share"),
    [
        ("What does the policy say?", 1.0),
        ("회사의 휴가 정책은?", 0.0),
        ("Python에서 asyncio 사용법", 0.5),
        ("Docker 이미지는 어떻게 만들어지나요?", 0.25),
        ("2024 / 429", 1.0),
        ("Привет мир", 0.0),
        ("café crème brûlée", 1.0),
    ],
)
def test_latin_share_counts_words_by_script(query: str, share: float) -> None:
    assert latin_share(query) == pytest.approx(share)


def test_english_only_models_do_not_read_mostly_korean_queries() -> None:
    assert dense_reads_query(False, "What is the leave policy?")
    assert not dense_reads_query(False, "연차 휴가는 며칠인가요?")
    assert not dense_reads_query(False, "Docker 이미지는 어떻게 만들어지나요?")
    assert dense_reads_query(True, "연차 휴가는 며칠인가요?")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def retriever(store: SqliteStore) -> AsyncIterator[HybridRetriever]:
    embedder = LocalEmbedder()  # loads its model only if a test embeds
    await store.create_collection("docs", embedder.name, 384)
    yield HybridRetriever(store, embedder)
    await embedder.close()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"mode": "fuzzy"}, "mode"),
        ({"top_k": 0}, "top_k"),
        ({"query": "   "}, "query"),
    ],
)
async def test_bad_arguments_are_invalid_requests(
    retriever: HybridRetriever, kwargs: dict[str, object], param: str
) -> None:
    args: dict[str, object] = {"query": "leave policy", **kwargs}
    query = str(args.pop("query"))
    with pytest.raises(InvalidRequest) as caught:
        await retriever.search("docs", query, **args)  # type: ignore[arg-type]
    assert caught.value.param == param


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
async def test_unknown_collection_is_not_found(
    retriever: HybridRetriever, mode: RetrievalMode
) -> None:
    with pytest.raises(NotFound):
        await retriever.search("nope", "leave policy", mode=mode)


async def test_empty_collection_finds_nothing_by_keyword(retriever: HybridRetriever) -> None:
    assert await retriever.search("docs", "leave policy", mode="keyword") == []


async def test_collection_of_another_model_is_a_clear_mismatch(
    store: SqliteStore, retriever: HybridRetriever
) -> None:
    await store.create_collection("other", "some-other-model", 384)
    with pytest.raises(EmbeddingMismatch, match="some-other-model"):
        await retriever.search("other", "leave policy", mode="hybrid")
    assert await retriever.search("other", "leave policy", mode="keyword") == []
