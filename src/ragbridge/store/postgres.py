"""The Store on PostgreSQL + pgvector, for several ragbridge replicas sharing one database.

`open()` migrates under an advisory lock; each write takes a transaction-scoped advisory lock
per document, so replicas ingesting one document at once leave one copy (docs/scaling.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from ragbridge.errors import Conflict, InvalidRequest, NotFound
from ragbridge.store import pg_search, pg_writes
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    DocumentUpsert,
    MetadataFilter,
    NewChunk,
    SearchHit,
    Store,
    Vector,
    check_dimension,
    check_embedding,
    check_upserts,
    query_vector,
)
from ragbridge.store.pg_migrations import migrate
from ragbridge.store.pg_pool import WAIT_TIMEOUT_S, Connection, StorePool
from ragbridge.store.pg_records import (
    API_KEYS,
    COLLECTION_COLUMNS,
    DOCUMENT_COLUMNS,
    CollectionRow,
    api_key_row,
    chunk_row,
    collection_row,
    document_row,
    jsonb,
)

HNSW_MAX_DIMENSION = 2000
"""pgvector indexes `vector` up to this many dimensions; wider collections are searched exactly."""
_DOCUMENTS = (
    f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN collections c ON c.id = d.collection_id"
    " WHERE c.name = %s"
)


class PostgresStore(Store):
    """`Store` on PostgreSQL with pgvector (HNSW, cosine) and full-text BM25 keyword search."""

    def __init__(self, url: str, *, wait_timeout: float = WAIT_TIMEOUT_S) -> None:
        self._url = url
        self._pool = StorePool(url, wait_timeout=wait_timeout)

    async def open(self) -> None:
        """Apply pending migrations, then open the pool (vector types exist by then)."""
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
            await migrate(conn)
        await self._pool.open(wait=True)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        async with self._pool.connection(timeout=5.0) as conn:
            await conn.execute("SELECT 1")

    # --- collections -------------------------------------------------------------------
    async def create_collection(
        self,
        name: str,
        embedding_model: str,
        dimension: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> CollectionInfo:
        if dimension <= 0:
            raise InvalidRequest(f"dimension must be positive, got {dimension}", param="dimension")
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO collections (name, embedding_model, dimension, metadata, created_at)"
                f" VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING"
                f" RETURNING {COLLECTION_COLUMNS}",
                [name, embedding_model, dimension, jsonb(metadata or {}, "metadata"), time.time()],
            )
            created = await cur.fetchone()
            if created is not None:
                if dimension <= HNSW_MAX_DIMENSION:
                    await conn.execute(pg_search.create_hnsw_index(created["id"], dimension))
                return collection_row(created).info
            existing = await _find_collection(conn, name)
        if existing is None:  # deleted between our insert and select: rare, try again
            return await self.create_collection(name, embedding_model, dimension, metadata)
        return check_embedding(existing.info, embedding_model, dimension)

    async def get_collection(self, name: str) -> CollectionInfo | None:
        async with self._pool.connection() as conn:
            found = await _find_collection(conn, name)
        return found.info if found else None

    async def list_collections(self) -> list[CollectionInfo]:
        rows = await self._rows(f"SELECT {COLLECTION_COLUMNS} FROM collections ORDER BY name")
        return [collection_row(row).info for row in rows]

    async def delete_collection(self, name: str) -> bool:
        async with self._pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT id FROM collections WHERE name = %s FOR UPDATE", [name]
                )
                row = await cur.fetchone()
                if row is None:
                    return False
                await conn.execute("DELETE FROM chunks WHERE collection_id = %s", [row["id"]])
                await conn.execute("DELETE FROM collections WHERE id = %s", [row["id"]])
            # Outside the transaction, so searches on other collections never wait for it.
            await conn.execute(
                sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    pg_search.hnsw_index_name(row["id"])
                )
            )
        return True

    # --- documents ---------------------------------------------------------------------
    async def get_document(self, collection: str, document_id: str) -> DocumentRecord | None:
        rows = await self._rows(f"{_DOCUMENTS} AND d.id = %s", [collection, document_id])
        return document_row(collection, rows[0]) if rows else None

    async def list_documents(self, collection: str) -> list[DocumentRecord]:
        rows = await self._rows(f"{_DOCUMENTS} ORDER BY d.source, d.id", [collection])
        return [document_row(collection, row) for row in rows]

    async def replace_documents(
        self,
        collection: str,
        upserts: Sequence[DocumentUpsert],
        delete_ids: Sequence[str] = (),
    ) -> list[DocumentRecord]:
        check_upserts(collection, upserts)
        async with self._pool.connection() as conn, conn.transaction():
            found = await _require_collection(conn, collection, lock=True)
            await pg_writes.lock_documents(
                conn, found, {d.id for d, _, _ in upserts} | {*delete_ids}
            )
            stored = [await pg_writes.write_document(conn, found, *one) for one in upserts]
            for document_id in delete_ids:
                await pg_writes.delete_document(conn, found, document_id)
        return stored

    async def delete_document(self, collection: str, document_id: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            found = await _find_collection(conn, collection, lock=True)
            if found is None:
                return False
            await pg_writes.lock_documents(conn, found, {document_id})
            return await pg_writes.delete_document(conn, found, document_id)

    # --- search ------------------------------------------------------------------------
    async def dense_search(
        self,
        collection: str,
        vector: Vector,
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        """HNSW first; when it yields fewer than `top_k` (a selective filter, a small
        collection), the same query again without the index, which is then exact."""
        async with self._pool.connection() as conn, conn.transaction():
            found = await _require_collection(conn, collection)
            query = query_vector(vector)
            check_dimension(collection, found.info.dimension, query.shape[0], "query")
            if top_k <= 0:
                return []
            where, params = pg_search.filter_sql(filters)
            statement = pg_search.dense_query(found.id, found.info.dimension, top_k, where)
            ef_search = pg_search.ef_search(top_k, bool(filters))
            await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            rows = await (await conn.execute(statement, [query, *params])).fetchall()
            if len(rows) < top_k:
                exact = pg_search.dense_query(
                    found.id, found.info.dimension, top_k, where, exact=True
                )
                rows = await (await conn.execute(exact, [query, *params])).fetchall()
        return [SearchHit(chunk_row(collection, row), float(row["score"])) for row in rows]

    async def keyword_search(
        self,
        collection: str,
        terms: Sequence[str],
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        """BM25 over the chunks' analysed keywords (see `pg_search`)."""
        async with self._pool.connection() as conn:
            found = await _require_collection(conn, collection)
            text = pg_search.terms_text(terms)
            if top_k <= 0 or not text:
                return []
            where, params = pg_search.filter_sql(filters)
            statement = pg_search.keyword_query(
                found.id, found.info.chunk_count, found.keyword_total, top_k, where
            )
            rows = await (await conn.execute(statement, [text, *params])).fetchall()
        return [SearchHit(chunk_row(collection, row), float(row["score"])) for row in rows]

    async def get_chunks(self, collection: str, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        if not chunk_ids:
            return []
        rows = await self._rows(
            "SELECT c.id, c.document_id, c.position, c.text, c.metadata FROM chunks c"
            " JOIN collections k ON k.id = c.collection_id WHERE k.name = %s AND c.id = ANY(%s)",
            [collection, list(chunk_ids)],
        )
        by_id = {row["id"]: chunk_row(collection, row) for row in rows}
        return [by_id[cid] for cid in chunk_ids if cid in by_id]

    # --- copying between stores (`transfer.py`) ----------------------------------------
    async def export_document(
        self, collection: str, document_id: str
    ) -> tuple[list[NewChunk], Vector]:
        """A stored document's chunks (with keywords) and vectors, in stored order."""
        rows = await self._rows(
            "SELECT c.position, c.text, c.keywords, c.metadata, c.embedding FROM chunks c"
            " JOIN collections k ON k.id = c.collection_id"
            " WHERE k.name = %s AND c.document_id = %s ORDER BY c.position, c.id",
            [collection, document_id],
        )
        chunks = [
            NewChunk(row["text"], row["keywords"], row["position"], row["metadata"]) for row in rows
        ]
        matrix = np.array([row["embedding"].to_numpy() for row in rows], dtype=np.float32)
        return chunks, matrix

    async def vector_count(self, collection: str) -> int:
        """How many vectors the collection holds (one per chunk when intact)."""
        rows = await self._rows(
            "SELECT count(c.embedding) AS n FROM chunks c JOIN collections k"
            " ON k.id = c.collection_id WHERE k.name = %s",
            [collection],
        )
        return int(rows[0]["n"])

    # --- API keys ----------------------------------------------------------------------
    async def save_api_key(self, key: ApiKeyRecord) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO api_keys (name, key_hash, collections, rpm, tpm, created_at,"
                    " revoked) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        key.name,
                        key.key_hash,
                        None if key.collections is None else list(key.collections),
                        key.rpm,
                        key.tpm,
                        key.created_at or time.time(),
                        key.revoked,
                    ],
                )
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"an API key named {key.name!r} already exists") from exc

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        rows = await self._rows(f"{API_KEYS} WHERE key_hash = %s AND NOT revoked", [key_hash])
        return api_key_row(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._rows(f"{API_KEYS} ORDER BY name, created_at")
        return [api_key_row(row) for row in rows]

    async def revoke_api_key(self, name: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked = true WHERE name = %s AND NOT revoked", [name]
            )
            return cur.rowcount > 0

    # --- helpers -----------------------------------------------------------------------
    async def _rows(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """One query's rows, on a pooled connection."""
        async with self._pool.connection() as conn:
            return await (await conn.execute(query, params)).fetchall()


async def _find_collection(
    conn: Connection, name: str, *, lock: bool = False
) -> CollectionRow | None:
    """The collection row; `lock` keeps it from being deleted until the transaction ends."""
    suffix = " FOR KEY SHARE" if lock else ""
    cur = await conn.execute(
        f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE name = %s{suffix}", [name]
    )
    row = await cur.fetchone()
    return collection_row(row) if row else None


async def _require_collection(conn: Connection, name: str, *, lock: bool = False) -> CollectionRow:
    found = await _find_collection(conn, name, lock=lock)
    if found is None:
        raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
    return found
