"""PostgreSQL search specifics: per-collection HNSW indexes, exact fallback, BM25 as in SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.postgres import HNSW_MAX_DIMENSION, PostgresStore
from ragbridge.store.sqlite import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def unit_rows(count: int, dim: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


async def fill(store: PostgresStore | SqliteStore, matrix: np.ndarray, per_doc: int) -> None:
    """Documents of `per_doc` chunks; chunk i has metadata {"group": i % 100}."""
    for start in range(0, len(matrix), per_doc):
        doc = DocumentRecord(
            id=f"d{start}", collection="c", source=f"{start}.txt", content_hash="h"
        )
        chunks = [
            NewChunk(
                text=f"chunk {i}", keywords="", position=i - start, metadata={"group": i % 100}
            )
            for i in range(start, min(start + per_doc, len(matrix)))
        ]
        await store.upsert_document(doc, chunks, matrix[start : start + len(chunks)])


async def explain(url: str, statement: str) -> str:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        cur = await conn.execute(f"EXPLAIN {statement}")
        return "\n".join(row[0] for row in await cur.fetchall())


async def test_each_collection_gets_its_own_usable_hnsw_index(
    pg_store: PostgresStore, postgres_url: str
) -> None:
    await pg_store.create_collection("c", "m", 16)
    await pg_store.create_collection("other", "m2", 3)
    query = "[" + ",".join(["0.25"] * 16) + "]"
    plan = await explain(
        postgres_url,
        "SELECT id FROM chunks WHERE collection_id = 1 "
        f"ORDER BY (embedding::vector(16)) <=> '{query}'::vector(16) LIMIT 5",
    )
    assert "chunks_embedding_c1" in plan
    assert await pg_store.delete_collection("c")
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'"
            " AND schemaname = current_schema() AND indexname LIKE 'chunks_embedding_%'"
        )
        assert [row[0] for row in await cur.fetchall()] == ["chunks_embedding_c2"]


async def test_dense_search_matches_brute_force_with_and_without_filters(
    pg_store: PostgresStore,
) -> None:
    dim, count = 16, 3000
    matrix = unit_rows(count, dim, seed=7)
    await pg_store.create_collection("c", "m", dim)
    await fill(pg_store, matrix, per_doc=250)
    queries = unit_rows(10, dim, seed=8)
    recalls = []
    for query in queries:
        truth = np.argsort(-(matrix @ query))[:10]
        hits = await pg_store.dense_search("c", query, 10)
        assert len(hits) == 10
        found = {int(h.chunk.text.split()[1]) for h in hits}
        recalls.append(len(found & set(truth.tolist())) / 10)
        # A selective filter (30 of 3000 chunks): the index finds too few, the exact pass all.
        members = np.flatnonzero(np.arange(count) % 100 == 42)
        exact = members[np.argsort(-(matrix[members] @ query))][:10]
        filtered = await pg_store.dense_search("c", query, 10, {"group": 42})
        assert [int(h.chunk.text.split()[1]) for h in filtered] == exact.tolist()
        assert filtered[0].score == pytest.approx(float(matrix[exact[0]] @ query), abs=1e-5)
    assert np.mean(recalls) >= 0.9


async def test_collections_wider_than_hnsw_allows_are_searched_exactly(
    pg_store: PostgresStore,
) -> None:
    dim = HNSW_MAX_DIMENSION + 48
    matrix = unit_rows(20, dim, seed=3)
    await pg_store.create_collection("c", "wide-model", dim)
    await fill(pg_store, matrix, per_doc=10)
    hits = await pg_store.dense_search("c", matrix[5], 3)
    assert hits[0].chunk.text == "chunk 5"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


KEYWORD_CORPUS = [
    "apple banana apple cherry",
    "banana banana banana",
    "cherry date elder fig grape",
    "apple",
    "서울 날씨 맑음 서울",
    "부산 날씨 흐림 비",
    "date date fig",
    "grape elder elder elder banana apple cherry date",
]


async def test_keyword_scores_equal_sqlite_fts5_bm25(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    sqlite = SqliteStore(tmp_path / "rb.db")
    await sqlite.open()
    try:
        for store in (pg_store, sqlite):
            await store.create_collection("c", "m", 4)
            for i, keywords in enumerate(KEYWORD_CORPUS):
                doc = DocumentRecord(
                    id=f"d{i}", collection="c", source=f"{i}.txt", content_hash="h"
                )
                chunk = NewChunk(text=keywords, keywords=keywords, position=0)
                await store.upsert_document(doc, [chunk], unit_rows(1, 4, seed=i))
        for terms in (["apple"], ["banana", "cherry"], ["elder", "fig", "zzz"], ["서울", "날씨"]):
            expected = {h.chunk.id: h.score for h in await sqlite.keyword_search("c", terms, 20)}
            got = {h.chunk.id: h.score for h in await pg_store.keyword_search("c", terms, 20)}
            assert got.keys() == expected.keys(), terms
            for chunk_id, score in expected.items():
                assert got[chunk_id] == pytest.approx(score, rel=1e-6), terms
    finally:
        await sqlite.close()


async def test_a_keyword_filter_picks_chunks_but_keeps_collection_wide_scores(
    pg_store: PostgresStore,
) -> None:
    """df stays the collection's (as FTS5 keeps it): a filter only drops chunks from the list."""
    await pg_store.create_collection("c", "m", 4)
    for i, keywords in enumerate(KEYWORD_CORPUS * 3):
        doc = DocumentRecord(id=f"d{i}", collection="c", source=f"{i}.txt", content_hash="h")
        chunk = NewChunk(text=keywords, keywords=keywords, position=0, metadata={"part": i % 3})
        await pg_store.upsert_document(doc, [chunk], unit_rows(1, 4, seed=i))
    for terms in (["apple", "date"], ["서울", "날씨", "비"], ["elder", "zzz"]):
        everything = await pg_store.keyword_search("c", terms, 100)
        expected = [(h.chunk.id, h.score) for h in everything if h.chunk.metadata["part"] == 1]
        filtered = await pg_store.keyword_search("c", terms, 100, {"part": 1})
        assert [(h.chunk.id, h.score) for h in filtered] == expected, terms
        assert expected, terms
        top = await pg_store.keyword_search("c", terms, 2, {"part": [0, 2]})
        assert [h.chunk.id for h in top] == [
            h.chunk.id for h in everything if h.chunk.metadata["part"] != 1
        ][:2]


async def test_the_exact_fallback_stays_exact_once_statements_are_prepared(
    postgres_url: str,
) -> None:
    """psycopg prepares a statement after 5 uses and a cached plan ignores `enable_indexscan`:
    on one connection with generic plans forced, the fallback stays exact and full."""
    info = conninfo_to_dict(postgres_url)
    info["options"] = f"{info.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
    store = PostgresStore(
        make_conninfo("", **info)
    )  # one at a time: the pool reuses one connection
    await store.open()
    try:
        dim, count = 16, 1000
        matrix = unit_rows(count, dim, seed=11)
        await store.create_collection("c", "m", dim)
        await fill(store, matrix, per_doc=250)
        members = np.flatnonzero(np.arange(count) % 100 == 42)  # 10 chunks: HNSW finds fewer
        for query in unit_rows(8, dim, seed=12):
            exact = members[np.argsort(-(matrix[members] @ query))][:5]
            hits = await store.dense_search("c", query, 5, {"group": 42})
            assert [int(h.chunk.text.split()[1]) for h in hits] == exact.tolist()
            assert len(await store.dense_search("c", query, 5)) == 5
    finally:
        await store.close()
