"""The rerank client against a scripted rerank endpoint (`httpx.MockTransport`, both wire
dialects), and reranking inside the retriever."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ragbridge.embeddings.local import LocalEmbedder
from ragbridge.errors import UpstreamError
from ragbridge.retrieval.analyzer import analyze
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.retrieval.rerank import (
    LocalCrossEncoder,
    RemoteReranker,
    RerankConfig,
    create_reranker,
)
from ragbridge.retry import RetryPolicy
from ragbridge.settings import Settings
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore
from tests.support.server import free_port

pytestmark = pytest.mark.anyio


def _overlap(query: str, document: str) -> float:
    """The scripted model: the share of the query's words found in the document."""
    words = set(re.findall(r"\w+", query.lower()))
    found = words & set(re.findall(r"\w+", document.lower()))
    return len(found) / max(1, len(words))


def rerank_handler(dialect: str, seen: list[dict[str, Any]]) -> httpx.MockTransport:
    """`cohere`: /v1/rerank with documents → results; `tei`: texts → a bare list; `broken`: 500."""

    def rerank(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/rerank"
        body = json.loads(request.content)
        seen.append({"body": body, "authorization": request.headers.get("authorization")})
        if dialect == "broken":
            return httpx.Response(500, json={"error": "model crashed"})
        if dialect == "tei":
            if "texts" not in body:
                return httpx.Response(422, json={"error": "missing field `texts`"})
            scored = [
                {"index": i, "score": _overlap(body["query"], t)}
                for i, t in enumerate(body["texts"])
            ]
            return httpx.Response(200, json=sorted(scored, key=lambda r: -r["score"]))
        scored = [
            {"index": i, "relevance_score": _overlap(body["query"], d)}
            for i, d in enumerate(body["documents"])
        ]
        scored.sort(key=lambda r: -r["relevance_score"])
        return httpx.Response(
            200, json={"model": body["model"], "results": scored[: body["top_n"]]}
        )

    return httpx.MockTransport(rerank)


URL = "http://rerank.test/v1"
FAST = RetryPolicy(retries=2, base_delay=0.001, max_delay=0.002)


def remote(
    transport: httpx.MockTransport, model: str = "scripted-rerank", **config: Any
) -> RemoteReranker:
    """A reranker whose HTTP goes to `transport` (which holds no connections to close)."""
    client = httpx.AsyncClient(transport=transport)
    return RemoteReranker(
        RerankConfig(base_url=URL, model=model, retry=FAST, **config), client=client
    )


DOCS = ["the cat sat", "a dog and a cat played", "stock prices fell", "dog days"]


@pytest.mark.parametrize("dialect", ["cohere", "tei"])
async def test_scores_come_back_best_first_in_either_dialect(dialect: str) -> None:
    seen: list[dict[str, Any]] = []
    reranker = remote(rerank_handler(dialect, seen), api_key="sk-test")
    try:
        scores = await reranker.rerank("dog cat", DOCS, top_n=2)
        again = await reranker.rerank("stock", DOCS, top_n=1)
    finally:
        await reranker.close()
    assert scores == [(1, 1.0), (0, 0.5)] or scores == [(1, 1.0), (3, 0.5)]
    assert again == [(2, 1.0)]
    assert seen[0]["authorization"] == "Bearer sk-test"
    assert seen[0]["body"]["query"] == "dog cat"
    assert len(seen) == (3 if dialect == "tei" else 2)  # TEI: asked again once, then remembered


async def test_no_documents_needs_no_call() -> None:
    seen: list[dict[str, Any]] = []
    reranker = remote(rerank_handler("cohere", seen))
    assert await reranker.rerank("q", [], top_n=3) == []
    await reranker.close()
    assert seen == []


async def test_server_errors_are_retried_then_upstream_errors() -> None:
    seen: list[dict[str, Any]] = []
    reranker = remote(rerank_handler("broken", seen))
    with pytest.raises(UpstreamError, match="500: model crashed"):
        await reranker.rerank("q", DOCS, top_n=2)
    await reranker.close()
    assert len(seen) == 3  # FAST allows two retries


async def test_an_unreachable_server_is_an_upstream_error() -> None:
    config = RerankConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", retry=FAST)
    unreachable = RemoteReranker(config)
    with pytest.raises(UpstreamError, match="unreachable"):
        await unreachable.rerank("q", DOCS, top_n=2)
    await unreachable.close()


def test_settings_pick_the_reranker(tmp_path: Path) -> None:
    assert create_reranker(Settings(database_url=None)) is None
    remote = create_reranker(
        Settings(rerank_base_url="http://h/v1", rerank_model="bge", upstream_max_retries=1)
    )
    assert isinstance(remote, RemoteReranker)
    assert remote.name == "bge"
    assert remote._retry.retries == 1
    assert create_reranker(Settings(rerank_model=str(tmp_path / "missing"))) is None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    await store.create_collection("pets", "all-MiniLM-L6-v2", 384)
    texts = [
        "cat cat cat cat cat food",
        "my cat met a dog in the park on a sunny afternoon with many friends around",
        "dog leash",
        *("stock prices fell", "rain in spain", "python code", "blue sky", "green tea"),
    ]
    for i, text in enumerate(texts):
        doc = DocumentRecord(f"d{i}", "pets", f"d{i}.txt", f"h{i}")
        chunk = NewChunk(text, " ".join(analyze(text)), 0)
        await store.upsert_document(doc, [chunk], np.ones((1, 384), dtype=np.float32))
    yield store
    await store.close()


async def test_retriever_reorders_by_the_reranker_and_reports_its_scores(
    store: SqliteStore,
) -> None:
    seen: list[dict[str, Any]] = []
    embedder = LocalEmbedder()
    reranker = remote(rerank_handler("cohere", seen))
    plain = await HybridRetriever(store, embedder).search("pets", "cat dog", mode="keyword")
    retriever = HybridRetriever(store, embedder, reranker=reranker)
    reranked = await retriever.search(
        "pets", "cat dog", mode="keyword", top_k=2, score_threshold=0.9
    )
    await reranker.close()
    await embedder.close()
    assert plain[0].chunk.document_id != "d1"  # BM25 favours short, repetitive passages
    assert [h.chunk.document_id for h in reranked] == ["d1"]  # only d1 has both words
    assert reranked[0].score == 1.0
    assert len(seen[0]["body"]["documents"]) == 3


async def test_a_failing_reranker_keeps_the_fused_order(store: SqliteStore) -> None:
    embedder = LocalEmbedder()
    reranker = remote(rerank_handler("broken", []), "m")
    hits = await HybridRetriever(store, embedder, reranker=reranker).search(
        "pets", "cat dog", mode="keyword"
    )
    await reranker.close()
    await embedder.close()
    assert hits[0].chunk.document_id != "d1"
    assert hits[0].score == 1.0


@pytest.mark.slow
async def test_a_local_cross_encoder_directory_scores_every_pair(tmp_path: Path) -> None:
    # A real cross-encoder built offline: the packaged MiniLM with a fresh (untrained) head.
    torch = pytest.importorskip("torch")
    from sentence_transformers import CrossEncoder

    from ragbridge.embeddings.local import packaged_minilm_path

    torch.manual_seed(0)
    CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu").save(str(tmp_path))
    reranker = create_reranker(Settings(rerank_model=str(tmp_path)))
    assert isinstance(reranker, LocalCrossEncoder)
    assert not reranker.multilingual
    scores = await reranker.rerank("cat", ["a cat", "stock prices", "dogs"], top_n=2)
    await reranker.close()
    assert len(scores) == 2
    assert {index for index, _ in scores} <= {0, 1, 2}
    assert scores[0][1] >= scores[1][1]
    assert all(0.0 <= score <= 1.0 for _, score in scores)  # sigmoid of one logit
