"""The PostgreSQL store's write path: one document's rows replaced, or deleted, inside the
caller's transaction, with the collection's counters kept in step. Callers take the documents'
advisory locks first (`lock_documents`), so replicas writing the same document are serialised."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection

from ragbridge.store.base import DocumentRecord, NewChunk, Vector
from ragbridge.store.pg_records import (
    CHUNK_COPY,
    CHUNK_COPY_TYPES,
    DOCUMENT_COLUMNS,
    KEYWORD_COUNT_COLUMN,
    CollectionRow,
    check_vectors,
    chunk_rows,
    document_row,
    jsonb,
)


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
    """One document's rows, inside the caller's transaction (which holds its lock)."""
    now = time.time()
    document_meta = jsonb(document.metadata, f"{document.source}: document metadata")
    matrix = check_vectors(vectors, len(chunks), found.info)
    rows = chunk_rows(found.id, document, chunks, matrix)
    keyword_total = sum(row[KEYWORD_COUNT_COLUMN] for row in rows)
    cur = await conn.execute(
        "DELETE FROM documents WHERE collection_id = %s AND id = %s"
        " RETURNING chunk_count, keyword_total, created_at",
        [found.id, document.id],
    )
    old = await cur.fetchone()
    cur = await conn.execute(
        "INSERT INTO documents AS d (collection_id, id, source, content_hash, title,"
        " metadata, chunk_count, keyword_total, created_at, updated_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {DOCUMENT_COLUMNS}",
        [found.id, document.id, document.source, document.content_hash, document.title,
         document_meta, len(chunks), keyword_total, old["created_at"] if old else now,
         now],
    )  # fmt: skip
    stored = await cur.fetchone()
    assert stored is not None
    async with conn.cursor().copy(CHUNK_COPY) as copy:
        copy.set_types(CHUNK_COPY_TYPES)
        for row in rows:
            await copy.write_row(row)
    await conn.execute(
        "UPDATE collections SET document_count = document_count + %s,"
        " chunk_count = chunk_count + %s, keyword_total = keyword_total + %s"
        " WHERE id = %s",
        [
            0 if old else 1,
            len(chunks) - (old["chunk_count"] if old else 0),
            keyword_total - (old["keyword_total"] if old else 0),
            found.id,
        ],
    )
    return document_row(document.collection, stored)


async def delete_document(
    conn: AsyncConnection[Any], found: CollectionRow, document_id: str
) -> bool:
    """Delete one document inside the caller's transaction (which holds its lock)."""
    cur = await conn.execute(
        "DELETE FROM documents WHERE collection_id = %s AND id = %s"
        " RETURNING chunk_count, keyword_total",
        [found.id, document_id],
    )
    old = await cur.fetchone()
    if old is None:
        return False
    await conn.execute(
        "UPDATE collections SET document_count = document_count - 1,"
        " chunk_count = chunk_count - %s, keyword_total = keyword_total - %s"
        " WHERE id = %s",
        [old["chunk_count"], old["keyword_total"], found.id],
    )
    return True
