"""The embedded store: one SQLite file (WAL) with documents, chunks, an FTS5 index and vectors.

Writes run on one writer thread (`SqliteDatabase`), reads on a few reader threads with their own
connections (`SqliteReader`), so reads never queue behind a write and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ragbridge.store.ann_index import AnnConfig
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
    check_upserts,
    chunk_id,
    chunk_vectors,
    query_vector,
    to_json,
)
from ragbridge.store.sqlite_db import ChunkRow, PreparedUpsert, SqliteDatabase
from ragbridge.store.sqlite_read import SqliteReader, connect_reader
from ragbridge.store.sqlite_schema import filter_sql, fts_query
from ragbridge.store.vector_cache import VectorCache

T = TypeVar("T")


READER_THREADS = 4
DEFAULT_VECTOR_CACHE_BYTES = 1024 * 1024 * 1024


class SqliteStore(Store):
    """`Store` on a single SQLite file, by default `<data dir>/ragbridge.db`."""

    def __init__(
        self,
        path: Path,
        *,
        vector_cache_bytes: int = DEFAULT_VECTOR_CACHE_BYTES,
        readers: int = READER_THREADS,
        ann: AnnConfig | None = None,
    ) -> None:
        self.path = path
        self.vectors = VectorCache(vector_cache_bytes)
        self.ann = ann or AnnConfig()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragbridge-sqlite")
        self._read_executor = ThreadPoolExecutor(
            max_workers=max(1, readers), thread_name_prefix="ragbridge-sqlite-read"
        )
        self._database: SqliteDatabase | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(reader, *args)` on a reader thread, with that thread's connection."""
        self._db  # noqa: B018 - raises when the store is not open
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_executor, partial(self._on_reader, fn, *args))

    def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        reader: SqliteReader | None = getattr(self._local, "reader", None)
        if reader is None:
            conn = connect_reader(self.path)
            with self._reader_lock:
                self._reader_conns.append(conn)
            reader = self._local.reader = SqliteReader(conn, self.vectors, self._db.ann)
        return fn(reader, *args)

    @property
    def _db(self) -> SqliteDatabase:
        if self._database is None:
            raise RuntimeError("SqliteStore is not open")
        return self._database

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._database is None:
            self._database = await self._run(SqliteDatabase, self.path, self.vectors, self.ann)

    async def close(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            await self._run(database.close)
        self._executor.shutdown(wait=True)
        self._read_executor.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()

    async def ping(self) -> None:
        await self._read(SqliteReader.ping)

    def index_status(self) -> dict[str, Any]:
        """The approximate indexes' states; `warm` once every saved one is open."""
        if self._database is None:
            return {"warm": False, "collections": {}}
        return self._database.ann.status()

    # --- collections ---------------------------------------------------------------------
    async def create_collection(
        self,
        name: str,
        embedding_model: str,
        dimension: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> CollectionInfo:
        meta = to_json(metadata or {}, f"collection {name!r} metadata")
        return await self._run(self._db.create_collection, name, embedding_model, dimension, meta)

    async def get_collection(self, name: str) -> CollectionInfo | None:
        return await self._read(SqliteReader.get_collection, name)

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._read(SqliteReader.list_collections)

    async def delete_collection(self, name: str) -> bool:
        return await self._run(self._db.delete_collection, name)

    # --- documents -----------------------------------------------------------------------
    async def get_document(self, collection: str, document_id: str) -> DocumentRecord | None:
        return await self._read(SqliteReader.get_document, collection, document_id)

    async def list_documents(self, collection: str) -> list[DocumentRecord]:
        return await self._read(SqliteReader.list_documents, collection)

    async def replace_documents(
        self,
        collection: str,
        upserts: Sequence[DocumentUpsert],
        delete_ids: Sequence[str] = (),
    ) -> list[DocumentRecord]:
        check_upserts(collection, upserts)
        prepared = [_prepare(document, chunks, vectors) for document, chunks, vectors in upserts]
        deletes = list(delete_ids)
        stored, _ = await self._run(self._db.replace_documents, collection, prepared, deletes)
        return stored

    async def delete_document(self, collection: str, document_id: str) -> bool:
        return await self._run(self._db.delete_document, collection, document_id)

    # --- search --------------------------------------------------------------------------
    async def dense_search(
        self,
        collection: str,
        vector: Vector,
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        query = query_vector(vector)
        where, params = filter_sql(filters)
        return await self._read(SqliteReader.dense_search, collection, query, top_k, where, params)

    async def keyword_search(
        self,
        collection: str,
        terms: Sequence[str],
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        where, params = filter_sql(filters)
        match = fts_query(terms)
        return await self._read(
            SqliteReader.keyword_search, collection, match, top_k, where, params
        )

    async def get_chunks(self, collection: str, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        return await self._read(SqliteReader.get_chunks, collection, list(chunk_ids))

    # --- API keys ------------------------------------------------------------------------
    async def save_api_key(self, key: ApiKeyRecord) -> None:
        scope = None if key.collections is None else json.dumps(list(key.collections))
        await self._run(self._db.save_api_key, key, scope)

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        return await self._read(SqliteReader.find_api_key, key_hash)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self._read(SqliteReader.list_api_keys)

    async def revoke_api_key(self, name: str) -> bool:
        return await self._run(self._db.revoke_api_key, name)


def _prepare(
    document: DocumentRecord, chunks: Sequence[NewChunk], vectors: Vector
) -> PreparedUpsert:
    """A document's rows checked and serialised, ready for the writer thread."""
    matrix = chunk_vectors(document, len(chunks), vectors)
    rows: list[ChunkRow] = [
        (
            chunk_id(document.collection, document, index),
            document.id,
            chunk.position,
            chunk.text,
            to_json(chunk.metadata, f"{document.source}: chunk {index} metadata"),
        )
        for index, chunk in enumerate(chunks)
    ]
    metadata = to_json(document.metadata, f"{document.source}: document metadata")
    keywords = [chunk.keywords for chunk in chunks]
    return document, metadata, rows, keywords, matrix
