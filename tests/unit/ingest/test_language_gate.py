"""No vectors for text the configured embedder cannot read (English-only MiniLM and Korean),
unless asked for; headings are carried into the chunk of their section."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.retrieval.analyzer import analyze
from ragbridge.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

KOREAN = "# 연차휴가\n\n입사 후 1년이 지난 직원에게는 연 15일의 유급 연차휴가가 주어집니다.\n"
ENGLISH = "# Annual leave\n\nEmployees get 15 days of paid annual leave after one year.\n"


async def vectors_of(
    store: SqliteStore, embedder: Embedder, source: str
) -> list[tuple[float, dict[str, object]]]:
    query = await embedder.embed_query("leave")
    hits = await store.dense_search("kb", query, 100, filters={"source": source})
    return [(hit.score, hit.chunk.metadata) for hit in hits]


async def test_korean_gets_no_vector_from_an_english_only_model(
    make_pipeline: Callable[..., IngestPipeline], store: SqliteStore, embedder: Embedder
) -> None:
    assert not embedder.multilingual
    pipeline = make_pipeline()
    await pipeline.ingest_bytes("kb", "ko.md", KOREAN.encode())
    await pipeline.ingest_bytes("kb", "en.md", ENGLISH.encode())
    ((ko_score, ko_meta),) = await vectors_of(store, embedder, "ko.md")
    ((en_score, en_meta),) = await vectors_of(store, embedder, "en.md")
    assert ko_meta["dense"] is False and ko_score == 0.0  # a zero vector: never computed
    assert "dense" not in en_meta and en_score > 0.2
    hits = await store.keyword_search("kb", analyze("유급 연차휴가"), 10)
    assert [h.chunk.metadata["source"] for h in hits] == ["ko.md"]  # still found by keyword


async def test_embed_unreadable_embeds_everything(
    make_pipeline: Callable[..., IngestPipeline], store: SqliteStore, embedder: Embedder
) -> None:
    pipeline = make_pipeline(embed_unreadable=True)
    await pipeline.ingest_bytes("kb", "ko.md", KOREAN.encode())
    ((score, meta),) = await vectors_of(store, embedder, "ko.md")
    assert "dense" not in meta and not np.isclose(score, 0.0)


async def test_a_bare_heading_is_carried_into_its_section(
    make_pipeline: Callable[..., IngestPipeline], store: SqliteStore
) -> None:
    text = "# Operating ragbridge\n\n## Install\n\nRun make run to install and serve.\n"
    await make_pipeline().ingest_bytes("kb", "ops.md", text.encode())
    chunks = await store.keyword_search("kb", ["oper"], 10)
    assert len(chunks) == 1
    assert chunks[0].chunk.text.startswith("Operating ragbridge\n\nInstall\n\nRun make run")
