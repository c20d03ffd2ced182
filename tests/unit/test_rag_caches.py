"""The response cache (temperature-0 completions, streamed ones rebuilt from chunks), finished
answers as chunks, and cached retrievals that never outlive the documents they point at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragbridge.cache.memory import MemoryCache
from ragbridge.cache.retrieval import CachedRetriever
from ragbridge.llm.cache import ResponseCache, is_deterministic
from ragbridge.llm.chunks import CompletionAssembler, completion_chunks, finished_completion
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import FusionConfig
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import RetrievalMode
from ragbridge.store.base import (
    CollectionInfo,
    DocumentRecord,
    MetadataFilter,
    NewChunk,
    SearchHit,
)
from ragbridge.store.sqlite import SqliteStore

BODY: dict[str, Any] = {
    "model": "llama3.1",
    "messages": [{"role": "system", "content": "[1] passage"}, {"role": "user", "content": "q"}],
    "temperature": 0,
    "max_tokens": 50,
}


@pytest.mark.parametrize(
    ("temperature", "cacheable"),
    [(0, True), (0.0, True), (0.2, False), (1, False), (None, False), (False, False)],
)
def test_only_temperature_zero_is_cached(temperature: object, cacheable: bool) -> None:
    assert is_deterministic({**BODY, "temperature": temperature}) is cacheable


def test_the_key_ignores_delivery_but_not_the_prompt() -> None:
    key = ResponseCache.key(BODY)

    assert ResponseCache.key({**BODY, "stream": True, "stream_options": {"x": 1}}) == key
    assert ResponseCache.key({**BODY, "model": "other"}) != key
    assert ResponseCache.key({**BODY, "max_tokens": 51}) != key
    other_passages = [{"role": "system", "content": "[1] other"}, BODY["messages"][1]]
    assert ResponseCache.key({**BODY, "messages": other_passages}) != key


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_completions_round_trip_and_lookups_are_counted() -> None:
    metrics = Metrics()
    cache = ResponseCache(MemoryCache(16), ttl=60, metrics=metrics)
    completion = finished_completion("llama3.1", "Answer [1].", prompt_tokens=12)

    assert await cache.get(BODY) is None
    await cache.put(BODY, completion)
    await cache.put({**BODY, "model": "x"}, {"choices": []})  # an empty answer is not kept

    assert await cache.get({**BODY, "stream": True}) == completion
    assert await cache.get({**BODY, "model": "x"}) is None
    hits = metrics.cache_lookups.labels("response", "hit")._value.get()
    misses = metrics.cache_lookups.labels("response", "miss")._value.get()
    assert (hits, misses) == (1, 2)


def _stream(
    *deltas: dict[str, Any], finish: str | None = "stop", usage: bool = False
) -> list[dict[str, Any]]:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    if finish:
        chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        chunks.append({**head, "choices": [], "usage": {"prompt_tokens": 3, "total_tokens": 5}})
    return chunks


def _assemble(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    assembler = CompletionAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.completion()


def test_a_streamed_text_answer_is_rebuilt() -> None:
    payloads = _stream(
        {"role": "assistant", "content": ""}, {"content": "한라산"}, {"content": " [1]"}
    )

    assert _assemble(payloads + _stream(finish=None, usage=True)[-1:]) == {
        "id": "c1",
        "created": 7,
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "한라산 [1]"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 5},
    }


def test_streams_that_cannot_be_rebuilt_faithfully_are_not() -> None:
    call = {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}]}
    assert _assemble(_stream({"content": "a"}, call, finish="tool_calls")) is None
    assert _assemble(_stream({"content": "cut off"}, finish=None)) is None
    assert _assemble([{"choices": ["not a choice"]}, *_stream({"content": "a"})]) is None
    assert _assemble([]) is None


def test_a_finished_answer_streams_a_word_at_a_time() -> None:
    text = "Retrieved:\n\n> 한라산은 제주도에 있습니다. [1]\n> — hallasan.txt"
    completion = finished_completion("rag/docs", text, prompt_tokens=9)
    chunks = completion_chunks(completion, include_usage=True, by_word=True)

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert "".join(pieces) == text
    assert len(pieces) == len(text.split())
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == completion["usage"]
    assert {c["id"] for c in chunks} == {completion["id"]}
    assert completion["usage"]["completion_tokens"] > 0
    assert completion_chunks(completion, include_usage=False, by_word=True)[-1]["choices"][0][
        "finish_reason"
    ]

    assembler = CompletionAssembler()  # and back: the same answer
    for chunk in chunks:
        assembler.add(chunk)
    assert assembler.completion() == completion


class CountingRetriever:
    """The real hybrid retriever, counting how often it is asked."""

    def __init__(self, retriever: HybridRetriever) -> None:
        self.retriever = retriever
        self.calls = 0

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
        self.calls += 1
        return await self.retriever.search(
            collection,
            query,
            top_k=top_k,
            mode=mode,
            filters=filters,
            score_threshold=score_threshold,
            collection_info=collection_info,
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "ragbridge.db")
    await store.open()
    await store.create_collection("notes", "test-model", 4)
    yield store
    await store.close()


async def _put(store: SqliteStore, doc_id: str, text: str) -> None:
    document = DocumentRecord(doc_id, "notes", f"{doc_id}.txt", content_hash=text)
    chunk = NewChunk(text, Analyzer().keywords(text), 0, {"name": f"{doc_id}.txt"})
    vector = np.ones((1, 4), dtype=np.float32) / 2
    await store.upsert_document(document, [chunk], vector)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_cached_retrievals_are_checked_against_the_store(store: SqliteStore) -> None:
    await _put(store, "valve", "The Aurora valve is inspected every 90 days.")
    await _put(store, "pump", "The Borealis pump is mounted above the floor.")
    counting = CountingRetriever(
        HybridRetriever(
            store,
            embedder=None,
            config=FusionConfig(dense_weight=1, min_similarity=0, cosine_origin=0),
        )
    )  # type: ignore[arg-type]
    metrics = Metrics()
    cached = CachedRetriever(counting, store, MemoryCache(64), ttl=60, metrics=metrics)

    async def ask(query: str = "Aurora valve inspection") -> list[str]:
        hits = await cached.search("notes", query, mode="keyword")
        return [hit.chunk.text for hit in hits]

    first = await ask()
    assert first[0].startswith("The Aurora valve") and await ask() == first
    assert counting.calls == 1  # the repeat came from the cache
    assert metrics.cache_lookups.labels("retrieval", "hit")._value.get() == 1

    await _put(store, "valve", "The Aurora valve is inspected every 30 days now.")  # same counts
    assert (await ask())[0] == "The Aurora valve is inspected every 30 days now."
    assert counting.calls == 2  # the cached chunk was replaced: a miss

    await _put(store, "badge", "The Aurora valve badge is orange.")  # another document
    assert "The Aurora valve badge is orange." in await ask()
    assert counting.calls == 3

    await store.delete_document("notes", "badge")  # back to the documents of the 2nd search,
    assert await ask() == ["The Aurora valve is inspected every 30 days now."]
    assert counting.calls == 3  # whose cached result is still right
    assert await ask("Borealis pump") == ["The Borealis pump is mounted above the floor."]
    assert counting.calls == 4
    assert await ask("zeppelin") == [] and await ask("zeppelin") == [] and counting.calls == 5
