"""What only the SQLite store promises: its file, persistence, a failure inside a transaction,
and vectors kept in step with writes made by another connection or process."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from ragbridge.settings import Settings
from ragbridge.store import open_store
from ragbridge.store.base import DocumentRecord, NewChunk, SearchHit
from ragbridge.store.sqlite import SqliteStore
from tests.support.stores import opened

pytestmark = pytest.mark.anyio

DIM = 4


def unit(*axes: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[list(axes)] = 1.0
    return vector / np.linalg.norm(vector)


def chunks(*texts: str) -> list[NewChunk]:
    return [NewChunk(text, text.lower(), i, {"i": i}) for i, text in enumerate(texts)]


def doc(doc_id: str, version: str = "v1") -> DocumentRecord:
    return DocumentRecord(doc_id, "docs", f"{doc_id}.md", version)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with opened(SqliteStore(tmp_path / "ragbridge.db")) as store:
        await store.create_collection("docs", "m", DIM)
        yield store


async def test_open_store_uses_one_wal_file_in_data_dir(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        assert isinstance(store, SqliteStore)
        await store.ping()
    finally:
        await store.close()
    db = settings.data_dir / "ragbridge.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_everything_survives_reopen(store: SqliteStore) -> None:
    await store.upsert_document(
        doc("a"), chunks("alpha one", "beta two"), np.stack([unit(0), unit(1)])
    )
    await store.close()

    reopened = SqliteStore(store.path)
    await reopened.open()
    try:
        assert [d.id for d in await reopened.list_documents("docs")] == ["a"]
        dense = await reopened.dense_search("docs", unit(1), 1)
        assert [h.chunk.text for h in dense] == ["beta two"]
        keyword = await reopened.keyword_search("docs", ["alpha"], 5)
        assert [h.chunk.text for h in keyword] == ["alpha one"]
    finally:
        await reopened.close()


async def test_failure_midway_through_a_write_rolls_back(store: SqliteStore) -> None:
    original = await store.upsert_document(doc("a"), chunks("old text"), unit(0)[None, :])
    await store.dense_search("docs", unit(0), 5)  # vectors now cached in memory
    # A trigger fails the third chunk insert: old chunks are already deleted, two new inserted.
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER fail_third BEFORE INSERT ON chunks WHEN NEW.position = 2"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    vectors = np.stack([unit(1), unit(2), unit(3)])
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await store.upsert_document(doc("a", "v2"), chunks("new a", "new b", "new c"), vectors)

    assert await store.get_document("docs", "a") == original
    assert [h.chunk.text for h in await store.dense_search("docs", unit(1), 5)] == ["old text"]
    assert await store.keyword_search("docs", ["new"], 5) == []
    assert [h.chunk.text for h in await store.keyword_search("docs", ["old"], 5)] == ["old text"]


async def test_writes_from_another_connection_reach_cached_vectors(store: SqliteStore) -> None:
    await store.upsert_document(doc("a"), chunks("first"), unit(0)[None, :])
    assert len(await store.dense_search("docs", unit(0), 5)) == 1  # cache loaded

    other = SqliteStore(store.path)  # another connection, as another process would have
    await other.open()
    try:
        await other.upsert_document(doc("b"), chunks("second"), unit(0, 1)[None, :])
        hits = await store.dense_search("docs", unit(0), 5)
        assert [h.chunk.text for h in hits] == ["first", "second"]

        await other.delete_document("docs", "a")
        assert [h.chunk.text for h in await store.dense_search("docs", unit(0), 5)] == ["second"]
        # Our own writes keep our cache current without a reload, and theirs see them.
        await store.upsert_document(doc("c"), chunks("third"), unit(0)[None, :])
        assert [h.chunk.text for h in await store.dense_search("docs", unit(0), 1)] == ["third"]
        assert [h.chunk.text for h in await other.dense_search("docs", unit(0), 1)] == ["third"]
    finally:
        await other.close()


async def test_keyword_terms_keep_accents_and_case_folding(store: SqliteStore) -> None:
    await store.upsert_document(doc("a"), chunks("café", "cafe"), np.stack([unit(0), unit(1)]))
    assert [h.chunk.text for h in await store.keyword_search("docs", ["café"], 5)] == ["café"]
    assert [h.chunk.text for h in await store.keyword_search("docs", ["cafe"], 5)] == ["cafe"]


async def test_many_updates_keep_the_vector_cache_exact(store: SqliteStore) -> None:
    """Enough replacements to trigger compaction of the in-memory matrix; results stay exact."""
    rng = np.random.default_rng(7)
    latest: dict[str, np.ndarray] = {}
    await store.dense_search("docs", unit(0), 1)  # cache loaded before the writes
    for round_ in range(6):
        for i in range(20):
            vectors = rng.normal(size=(40, DIM)).astype(np.float32)
            texts = [f"d{i} r{round_} c{j}" for j in range(40)]
            await store.upsert_document(doc(f"d{i}", f"r{round_}"), chunks(*texts), vectors)
            latest[f"d{i}"] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = rng.normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    hits = await store.dense_search("docs", query, 800)
    expected = np.sort(np.concatenate(list(latest.values())) @ query)[::-1]
    assert len(hits) == 800
    assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-5)
    assert all(" r5 " in h.chunk.text for h in hits)


async def test_cached_filter_results_follow_writes(store: SqliteStore) -> None:
    def texts(hits: list[SearchHit]) -> list[str]:
        return sorted(h.chunk.text for h in hits)

    await store.upsert_document(doc("a"), chunks("one", "two"), np.stack([unit(0), unit(1)]))
    assert texts(await store.dense_search("docs", unit(0), 5, {"i": 1})) == ["two"]

    await store.upsert_document(doc("b"), chunks("three", "four"), np.stack([unit(0), unit(1)]))
    assert texts(await store.dense_search("docs", unit(0), 5, {"i": 1})) == ["four", "two"]

    other = SqliteStore(store.path)
    await other.open()
    try:
        await other.delete_document("docs", "a")
    finally:
        await other.close()
    assert texts(await store.dense_search("docs", unit(0), 5, {"i": 1})) == ["four"]
