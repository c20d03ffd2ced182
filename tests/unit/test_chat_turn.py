"""A chat turn is resolved once: one read of the collection row per streamed RAG turn, the
model id parsed once, the prompt estimated once; the stream is parsed chunks, encoded once.

A real SQLite store with Korean passages behind the real (cached) hybrid retriever; no upstream,
so the answer is extractive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ragbridge.cache.memory import MemoryCache
from ragbridge.cache.retrieval import CachedRetriever
from ragbridge.chat import ChatService, ChatTurn, Everyone
from ragbridge.errors import NotFound
from ragbridge.llm.sse import encode_event
from ragbridge.rag import RagAnswerer
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import FusionConfig
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.service.rate_limits import Limits
from ragbridge.settings import Settings
from ragbridge.store.base import CollectionInfo, DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

PASSAGES = {
    "hallasan.txt": "한라산은 제주도에 있는 산으로 높이는 1,947미터입니다. "
    "정상에는 백록담이 있습니다.",
    "filter.txt": "보레알리스 펌프는 매년 3월에 필터를 교체해야 합니다.",
}
QUESTION = "한라산의 높이는 몇 미터인가요?"


class CountingStore(SqliteStore):
    """The real SQLite store, counting reads of a collection's row."""

    collection_reads = 0

    async def get_collection(self, name: str) -> CollectionInfo | None:
        self.collection_reads += 1
        return await super().get_collection(name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = CountingStore(tmp_path / "ragbridge.db")
    await store.open()
    await store.create_collection("docs", "test-model", 4)
    for name, text in PASSAGES.items():
        document = DocumentRecord(name, "docs", name, content_hash=text)
        chunk = NewChunk(text, Analyzer().keywords(text), 0, {"name": name})
        await store.upsert_document(document, [chunk], np.ones((1, 4), dtype=np.float32) / 2)
    yield store
    await store.close()


def _chat(store: CountingStore, tmp_path: Path) -> ChatService:
    settings = Settings(data_dir=tmp_path, database_url=None, retrieval_mode="keyword")
    retriever = HybridRetriever(
        store, embedder=None, config=FusionConfig(dense_weight=1, min_similarity=0, cosine_origin=0)
    )  # type: ignore[arg-type]  # keyword only
    cached = CachedRetriever(retriever, store, MemoryCache(16), ttl=60)
    return ChatService(None, rag=RagAnswerer(settings, store, cached, None))


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "rag/docs", "messages": [{"role": "user", "content": QUESTION}], **extra}


async def test_a_streamed_rag_turn_reads_the_collection_once(
    store: CountingStore, tmp_path: Path
) -> None:
    chat = _chat(store, tmp_path)
    for _ in range(2):  # a retrieval cache miss, then a hit
        store.collection_reads = 0
        turn = await chat.turn(_body(stream=True), {}, prompt_tokens=11)
        chunks = [chunk async for chunk in chat.stream(turn)]
        assert store.collection_reads == 1

    assert turn.rag is not None and turn.rag.collection == "docs"
    assert turn.collection is not None and turn.collection.document_count == 2
    sources = [c for c in chunks if "event" in c]
    assert [s["event"]["data"]["source"]["name"] for s in sources] == ["hallasan.txt"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "1,947미터" in text and "[1]" in text
    assert {c["model"] for c in chunks} == {"rag/docs"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    for chunk in chunks:  # what the API sends: each chunk encoded once, Korean as UTF-8
        event = encode_event(chunk)
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        assert orjson.loads(event[6:-2]) == chunk
    assert "한라산".encode() in b"".join(encode_event(c) for c in sources)


async def test_the_turn_carries_the_arrival_estimate_and_is_frozen(
    store: CountingStore, tmp_path: Path
) -> None:
    turn = await _chat(store, tmp_path).turn(_body(), {}, prompt_tokens=11)
    completion = await _chat(store, tmp_path).complete(turn)

    assert completion["usage"]["prompt_tokens"] == 11  # the estimate made on arrival, reused
    assert completion["sources"][0]["source"]["name"] == "hallasan.txt"
    with pytest.raises(dataclasses.FrozenInstanceError):
        turn.prompt_tokens = 0  # type: ignore[misc]
    assert isinstance(turn, ChatTurn) and turn.caller == Everyone()


@dataclasses.dataclass(frozen=True)
class Scoped:
    name: str = "팀-키"
    limits: Limits = dataclasses.field(default_factory=Limits)

    def can_access(self, collection: str) -> bool:
        return collection == "other"


async def test_a_collection_outside_the_callers_scope_is_not_even_read(
    store: CountingStore, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="rag/docs"):
        await _chat(store, tmp_path).turn(_body(), {}, caller=Scoped())
    assert store.collection_reads == 0
    with pytest.raises(NotFound, match="rag/없는-컬렉션"):
        await _chat(store, tmp_path).turn(_body(model="rag/없는-컬렉션"), {})
