"""The SQLite store's reads run on their own connections: they never wait for a write in
progress, and the vector matrices they search are kept within a byte budget."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ragbridge.store.base import ApiKeyRecord, DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
DIM = 64


def rows(count: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    unit: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


async def put(store: SqliteStore, collection: str, doc_id: str, texts: list[str]) -> None:
    chunks = [NewChunk(text, text.lower(), i, {}) for i, text in enumerate(texts)]
    document = DocumentRecord(doc_id, collection, f"{doc_id}.txt", "v1")
    await store.upsert_document(
        document, chunks, rows(len(texts), zlib.crc32(doc_id.encode()) % 1000)
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "ragbridge.db")
    await opened.open()
    await opened.create_collection("문서", "m", DIM)
    await put(opened, "문서", "a", ["휴가 규정 안내", "annual leave policy"])
    await opened.save_api_key(ApiKeyRecord("webui", "hash-1"))
    yield opened
    await opened.close()


async def test_reads_answer_while_a_write_transaction_is_open(store: SqliteStore) -> None:
    """The writer holds a write transaction (as a large upsert does) until told to stop; every
    kind of read completes meanwhile, and the write lands afterwards."""
    started, release = threading.Event(), threading.Event()

    def long_write() -> None:
        conn = store._db.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE api_keys SET rpm = 1 WHERE name = 'webui'")
        started.set()
        release.wait(timeout=60)
        conn.execute("COMMIT")

    write = asyncio.ensure_future(store._run(long_write))
    await asyncio.to_thread(started.wait, 30)
    try:
        query = rows(1, 7)[0]
        key = await asyncio.wait_for(store.find_api_key("hash-1"), 30)
        info = await asyncio.wait_for(store.get_collection("문서"), 30)
        listed = await asyncio.wait_for(store.list_collections(), 30)
        documents = await asyncio.wait_for(store.list_documents("문서"), 30)
        dense = await asyncio.wait_for(store.dense_search("문서", query, 2), 30)
        keyword = await asyncio.wait_for(store.keyword_search("문서", ["휴가"], 2), 30)
        await asyncio.wait_for(store.ping(), 30)
        assert not write.done()  # the reads did not wait for it
    finally:
        release.set()
    await write
    assert key is not None and key.rpm is None  # the snapshot before the write
    assert info is not None and info.document_count == 1
    assert [c.name for c in listed] == ["문서"]
    assert [d.id for d in documents] == ["a"]
    assert len(dense) == 2
    assert [h.chunk.text for h in keyword] == ["휴가 규정 안내"]
    after = await store.find_api_key("hash-1")
    assert after is not None and after.rpm == 1


async def test_vector_cache_stays_within_its_byte_budget(tmp_path: Path) -> None:
    """Three collections of 3000 vectors each (~0.8 MB apiece) with room for two: searches
    stay right, and the cache never holds more than its budget."""
    budget = 2 * 3000 * (DIM * 4 + 9) + 1
    store = SqliteStore(tmp_path / "ragbridge.db", vector_cache_bytes=budget)
    await store.open()
    try:
        for name in ("one", "two", "three"):
            await store.create_collection(name, "m", DIM)
            await put(store, name, f"{name}-doc", [f"{name} {i}" for i in range(3000)])
        for _ in range(2):
            for name in ("one", "two", "three"):
                target = rows(3000, zlib.crc32(f"{name}-doc".encode()) % 1000)[1234]
                hits = await store.dense_search(name, target, 1)
                assert [h.chunk.text for h in hits] == [f"{name} 1234"]
                assert 0 < store.vectors.nbytes <= budget
    finally:
        await store.close()


async def test_a_write_keeps_the_cached_matrix_current(store: SqliteStore) -> None:
    """Our own writes update the cached matrix (no reload): a new document is found at once."""
    await store.dense_search("문서", rows(1, 1)[0], 1)  # cache the matrix
    before = store.vectors.nbytes
    await put(store, "문서", "b", ["새 문서"])
    target = rows(1, zlib.crc32(b"b") % 1000)[0]
    hits = await store.dense_search("문서", target, 1)
    assert [h.chunk.text for h in hits] == ["새 문서"]
    assert store.vectors.nbytes == before  # updated in place, not read again
