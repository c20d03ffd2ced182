"""The Store on PostgreSQL + pgvector, for several ragbridge replicas sharing one database.

Connections come from a psycopg 3 async pool (autocommit; every write is an explicit transaction).
`open()` runs the versioned migrations (`pg_migrations.py`) under an advisory lock, so replicas may
start together. Ingesting a document takes a transaction-scoped advisory lock keyed by collection
and document id, then replaces the document row and all its chunks: two replicas ingesting the
same document at once are serialised and leave exactly one consistent copy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection, sql

from ragbridge.errors import Conflict, EmbeddingMismatch, InvalidRequest, NotFound
from ragbridge.store import pg_search
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    DocumentUpsert,
    MetadataFilter,
    NewChunk,
    SearchHit,
    Vector,
)
from ragbridge.store.pg_migrations import migrate
from ragbridge.store.pg_pool import WAIT_TIMEOUT_S, StorePool
from ragbridge.store.pg_records import (
    CHUNK_COPY,
    CHUNK_COPY_TYPES,
    COLLECTION_COLUMNS,
    DOCUMENT_COLUMNS,
    KEYWORD_COUNT_COLUMN,
    CollectionRow,
    api_key_row,
    check_vectors,
    chunk_row,
    chunk_rows,
    collection_row,
    document_row,
    jsonb,
)
from ragbridge.store.vector_index import normalise

HNSW_MAX_DIMENSION = 2000
"""pgvector indexes `vector` up to this many dimensions; wider collections are searched exactly."""


async def _configure(conn: AsyncConnection[Any]) -> None:
    """Per new pooled connection: pgvector types, and no JIT (its compile time, tens of ms,
    dwarfs these short queries once the planner's estimates pass `jit_above_cost`)."""
    await register_vector_async(conn)
    await conn.execute("SET jit = off")


class PostgresStore:
    """`Store` on PostgreSQL with pgvector (HNSW, cosine) and full-text BM25 keyword search."""

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        wait_timeout: float = WAIT_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._pool = StorePool(
            url,
            min_size=min_connections,
            max_size=max_connections,
            configure=_configure,
            wait_timeout=wait_timeout,
        )

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
            existing = await self._find_collection(conn, name)
        if existing is None:  # deleted between our insert and select: rare, try again
            return await self.create_collection(name, embedding_model, dimension, metadata)
        info = existing.info
        if info.embedding_model != embedding_model or info.dimension != dimension:
            raise EmbeddingMismatch(
                f"collection {name!r} uses {info.embedding_model} ({info.dimension} dims), "
                f"not {embedding_model} ({dimension} dims)",
                code="embedding_mismatch",
            )
        return info

    async def get_collection(self, name: str) -> CollectionInfo | None:
        async with self._pool.connection() as conn:
            found = await self._find_collection(conn, name)
        return found.info if found else None

    async def list_collections(self) -> list[CollectionInfo]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {COLLECTION_COLUMNS} FROM collections ORDER BY name")
            return [collection_row(row).info for row in await cur.fetchall()]

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
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN collections c"
                " ON c.id = d.collection_id WHERE c.name = %s AND d.id = %s",
                [collection, document_id],
            )
            row = await cur.fetchone()
        return document_row(collection, row) if row else None

    async def list_documents(self, collection: str) -> list[DocumentRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN collections c"
                " ON c.id = d.collection_id WHERE c.name = %s ORDER BY d.source, d.id",
                [collection],
            )
            return [document_row(collection, row) for row in await cur.fetchall()]

    async def upsert_document(
        self, document: DocumentRecord, chunks: Sequence[NewChunk], vectors: Vector
    ) -> DocumentRecord:
        stored = await self.replace_documents(document.collection, [(document, chunks, vectors)])
        return stored[0]

    async def replace_documents(
        self,
        collection: str,
        upserts: Sequence[DocumentUpsert],
        delete_ids: Sequence[str] = (),
    ) -> list[DocumentRecord]:
        for document, _, _ in upserts:
            if document.collection != collection:
                raise InvalidRequest(f"{document.source}: not a document of {collection!r}")
        stored = []
        async with self._pool.connection() as conn, conn.transaction():
            found = await self._require_collection(conn, collection, lock=True)
            ids = sorted({d.id for d, _, _ in upserts} | set(delete_ids))  # one lock order
            for document_id in ids:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))",
                    [document_id, found.id],
                )
            for document, chunks, vectors in upserts:
                stored.append(await self._upsert(conn, found, document, chunks, vectors))
            for document_id in delete_ids:
                await self._delete(conn, found, document_id)
        return stored

    async def _upsert(
        self,
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

    async def _delete(
        self, conn: AsyncConnection[Any], found: CollectionRow, document_id: str
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

    async def delete_document(self, collection: str, document_id: str) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            found = await self._find_collection(conn, collection, lock=True)
            if found is None:
                return False
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", [document_id, found.id]
            )
            return await self._delete(conn, found, document_id)

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
            found = await self._require_collection(conn, collection)
            query = normalise(np.asarray(vector, dtype=np.float32).reshape(-1))
            if query.shape[0] != found.info.dimension:
                raise EmbeddingMismatch(
                    f"query vector has {query.shape[0]} dims, collection {collection!r} has "
                    f"{found.info.dimension}",
                    code="embedding_mismatch",
                )
            if top_k <= 0:
                return []
            where, params = pg_search.filter_sql(filters)
            statement = pg_search.dense_query(found.id, found.info.dimension, top_k, where)
            # The index yields at most ef_search rows before filters apply: ask for more when
            # filtering, so a filter keeping 10 % of the chunks still leaves top_k.
            ef_search = min(1000, top_k * 40 if filters else max(40, top_k))
            await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            rows = await (await conn.execute(statement, [query, *params])).fetchall()
            if len(rows) < top_k:
                await conn.execute("SET LOCAL enable_indexscan = off")
                rows = await (await conn.execute(statement, [query, *params])).fetchall()
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
            found = await self._require_collection(conn, collection)
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
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.id, c.document_id, c.position, c.text, c.metadata FROM chunks c"
                " JOIN collections k ON k.id = c.collection_id"
                " WHERE k.name = %s AND c.id = ANY(%s)",
                [collection, list(chunk_ids)],
            )
            by_id = {row["id"]: chunk_row(collection, row) for row in await cur.fetchall()}
        return [by_id[cid] for cid in chunk_ids if cid in by_id]

    # --- copying between stores (`transfer.py`) ----------------------------------------
    async def export_document(
        self, collection: str, document_id: str
    ) -> tuple[list[NewChunk], Vector]:
        """A stored document's chunks (with keywords) and vectors, in stored order."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT c.position, c.text, c.keywords, c.metadata, c.embedding FROM chunks c"
                " JOIN collections k ON k.id = c.collection_id"
                " WHERE k.name = %s AND c.document_id = %s ORDER BY c.position, c.id",
                [collection, document_id],
            )
            rows = await cur.fetchall()
        chunks = [
            NewChunk(row["text"], row["keywords"], row["position"], dict(row["metadata"]))
            for row in rows
        ]
        matrix = np.array([row["embedding"].to_numpy() for row in rows], dtype=np.float32)
        return chunks, matrix

    async def vector_count(self, collection: str) -> int:
        """How many vectors the collection holds (one per chunk when intact)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(c.embedding) AS n FROM chunks c JOIN collections k"
                " ON k.id = c.collection_id WHERE k.name = %s",
                [collection],
            )
            row = await cur.fetchone()
        return int(row["n"]) if row else 0

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
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM api_keys WHERE key_hash = %s AND NOT revoked", [key_hash]
            )
            row = await cur.fetchone()
        return api_key_row(row) if row else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM api_keys ORDER BY name, created_at")
            return [api_key_row(row) for row in await cur.fetchall()]

    async def revoke_api_key(self, name: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked = true WHERE name = %s AND NOT revoked", [name]
            )
            return cur.rowcount > 0

    # --- helpers -----------------------------------------------------------------------
    async def _find_collection(
        self, conn: AsyncConnection[dict[str, Any]], name: str, *, lock: bool = False
    ) -> CollectionRow | None:
        """The collection row; `lock` keeps it from being deleted until the transaction ends."""
        suffix = " FOR KEY SHARE" if lock else ""
        cur = await conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE name = %s{suffix}", [name]
        )
        row = await cur.fetchone()
        return collection_row(row) if row else None

    async def _require_collection(
        self, conn: AsyncConnection[dict[str, Any]], name: str, *, lock: bool = False
    ) -> CollectionRow:
        found = await self._find_collection(conn, name, lock=lock)
        if found is None:
            raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
        return found
