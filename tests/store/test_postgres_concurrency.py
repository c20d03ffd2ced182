"""Several replicas (separate pools) writing to one PostgreSQL store at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import psycopg
import pytest

from ragbridge.errors import NotFound
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.postgres import PostgresStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

DIM = 8


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores with their own connection pools, like two ragbridge processes."""
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await first.open()
    await second.open()
    await first.create_collection("shared", "test-model", DIM)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def version(doc_id: str, tag: str, chunk_count: int) -> tuple[DocumentRecord, list[NewChunk]]:
    """One version of a document: every chunk says which version it belongs to."""
    document = DocumentRecord(
        id=doc_id, collection="shared", source=f"{doc_id}.txt", content_hash=tag
    )
    chunks = [
        NewChunk(text=f"{tag} part {i}", keywords=f"{tag} part", position=i, metadata={"v": tag})
        for i in range(chunk_count)
    ]
    return document, chunks


def vectors(count: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


async def stored_rows(url: str) -> dict[str, list[tuple[str, int]]]:
    """Each document's chunks as (version tag, position), read straight from the tables."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT document_id, metadata->>'v', position FROM chunks ORDER BY 1, 3"
        )
        found: dict[str, list[tuple[str, int]]] = {}
        for doc_id, tag, position in await cur.fetchall():
            found.setdefault(doc_id, []).append((tag, position))
        return found


async def test_same_document_from_two_replicas_ends_as_one_copy(
    replicas: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    first, second = replicas
    for round_no in range(8):
        a_doc, a_chunks = version("doc", f"a{round_no}", 3 + round_no % 4)
        b_doc, b_chunks = version("doc", f"b{round_no}", 6 - round_no % 3)
        await asyncio.gather(
            first.upsert_document(a_doc, a_chunks, vectors(len(a_chunks), round_no)),
            second.upsert_document(b_doc, b_chunks, vectors(len(b_chunks), 100 + round_no)),
        )
        stored = await first.get_document("shared", "doc")
        assert stored is not None
        rows = (await stored_rows(postgres_url))["doc"]
        assert {tag for tag, _ in rows} == {stored.content_hash}, "chunks of two versions mixed"
        assert [position for _, position in rows] == list(range(stored.chunk_count))
        info = await second.get_collection("shared")
        assert info is not None
        assert (info.document_count, info.chunk_count) == (1, stored.chunk_count)
        hits = await second.keyword_search("shared", [stored.content_hash], 20)
        assert len(hits) == stored.chunk_count


async def test_different_documents_in_parallel_keep_exact_counts(
    replicas: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    first, second = replicas

    async def ingest(store: PostgresStore, index: int) -> None:
        doc, chunks = version(f"doc{index}", f"t{index}", 1 + index % 5)
        await store.upsert_document(doc, chunks, vectors(len(chunks), index))

    await asyncio.gather(*(ingest(replicas[i % 2], i) for i in range(20)))
    await asyncio.gather(
        first.delete_document("shared", "doc3"), second.delete_document("shared", "doc4")
    )
    rows = await stored_rows(postgres_url)
    info = await first.get_collection("shared")
    assert info is not None
    assert info.document_count == len(rows) == 18
    assert info.chunk_count == sum(len(chunks) for chunks in rows.values())
    assert sorted(d.id for d in await second.list_documents("shared")) == sorted(rows)


async def test_deleting_a_collection_while_another_replica_ingests(
    replicas: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    first, second = replicas
    doc, chunks = version("doc", "t", 4)
    results = await asyncio.gather(
        first.upsert_document(doc, chunks, vectors(4, 1)),
        second.delete_collection("shared"),
        return_exceptions=True,
    )
    assert results[1] is True
    # Either the ingest committed first (and was deleted with the collection) or it found no
    # collection; never a half-deleted collection.
    assert isinstance(results[0], DocumentRecord | NotFound), results[0]
    assert await first.get_collection("shared") is None
    assert await stored_rows(postgres_url) == {}
