"""The PostgreSQL store's write path: one document's rows replaced, or deleted, inside the
caller's transaction, with the collection's counters kept in step. Callers take the documents'
advisory locks first (`lock_documents`), so replicas writing the same document are serialised."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection

from ragbridge.store.base import (
    DocumentRecord,
    NewChunk,
    Vector,
    check_dimension,
    chunk_id,
    chunk_vectors,
)
from ragbridge.store.pg_records import DOCUMENT_COLUMNS, CollectionRow, document_row, jsonb

CHUNK_COPY = (
    "COPY chunks (collection_id, id, document_id, position, text, keywords, keyword_count,"
    " metadata, embedding) FROM STDIN (FORMAT BINARY)"
)
CHUNK_COPY_TYPES = ["int8", "text", "text", "int4", "text", "text", "int4", "jsonb", "vector"]


async def lock_documents(
    conn: AsyncConnection[Any], found: CollectionRow, document_ids: Iterable[str]
) -> None:
    """Transaction-scoped advisory locks on these documents of `found`, in one order."""
    for document_id in sorted(document_ids):
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", [document_id, found.id]
        )


async def write_document(
    conn: AsyncConnection[Any],
    found: CollectionRow,
    document: DocumentRecord,
    chunks: Sequence[NewChunk],
    vectors: Vector,
) -> DocumentRecord:
    """One document's rows, inside the caller's transaction (which holds its lock). Chunk ids
    are made as the embedded store makes them, so copies between stores keep them."""
    now = time.time()
    document_meta = jsonb(document.metadata, f"{document.source}: document metadata")
    matrix = chunk_vectors(document, len(chunks), vectors)
    if chunks:
        check_dimension(document.collection, found.info.dimension, matrix.shape[1])
    keyword_counts = [len(chunk.keywords.split()) for chunk in chunks]
    rows = [
        [found.id, chunk_id(document.collection, document, index), document.id, chunk.position,
         chunk.text, chunk.keywords, keyword_counts[index],
         jsonb(chunk.metadata, f"{document.source}: chunk {index} metadata"), vector]
        for index, (chunk, vector) in enumerate(zip(chunks, matrix, strict=True))
    ]  # fmt: skip
    old = await _delete(conn, found, document.id)
    cur = await conn.execute(
        "INSERT INTO documents AS d (collection_id, id, source, content_hash, title,"
        " metadata, chunk_count, keyword_total, created_at, updated_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {DOCUMENT_COLUMNS}",
        [found.id, document.id, document.source, document.content_hash, document.title,
         document_meta, len(chunks), sum(keyword_counts), old["created_at"] if old else now,
         now],
    )  # fmt: skip
    stored = await cur.fetchone()
    assert stored is not None
    async with conn.cursor().copy(CHUNK_COPY) as copy:
        copy.set_types(CHUNK_COPY_TYPES)
        for row in rows:
            await copy.write_row(row)
    await _add_counts(
        conn,
        found,
        0 if old else 1,
        len(chunks) - (old["chunk_count"] if old else 0),
        sum(keyword_counts) - (old["keyword_total"] if old else 0),
    )
    return document_row(document.collection, stored)


async def delete_document(
    conn: AsyncConnection[Any], found: CollectionRow, document_id: str
) -> bool:
    """Delete one document inside the caller's transaction (which holds its lock)."""
    old = await _delete(conn, found, document_id)
    if old is not None:
        await _add_counts(conn, found, -1, -old["chunk_count"], -old["keyword_total"])
    return old is not None


async def _delete(
    conn: AsyncConnection[Any], found: CollectionRow, document_id: str
) -> dict[str, Any] | None:
    """Delete a document's row (its chunks cascade); the old row's counts, or None."""
    cur = await conn.execute(
        "DELETE FROM documents WHERE collection_id = %s AND id = %s"
        " RETURNING chunk_count, keyword_total, created_at",
        [found.id, document_id],
    )
    old: dict[str, Any] | None = await cur.fetchone()
    return old


async def _add_counts(
    conn: AsyncConnection[Any], found: CollectionRow, documents: int, chunks: int, keywords: int
) -> None:
    await conn.execute(
        "UPDATE collections SET document_count = document_count + %s,"
        " chunk_count = chunk_count + %s, keyword_total = keyword_total + %s WHERE id = %s",
        [documents, chunks, keywords, found.id],
    )
