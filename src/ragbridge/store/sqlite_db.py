"""The embedded store's synchronous core: one SQLite connection, used from one thread.

Every write is one `BEGIN IMMEDIATE` transaction. Dense search uses an in-memory matrix per
collection (`VectorIndex`), read from the file on first use, updated after each commit, and
dropped when another process has committed (`PRAGMA data_version` changed).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ragbridge.errors import Conflict, EmbeddingMismatch, NotFound
from ragbridge.store.ann_index import AnnConfig
from ragbridge.store.ann_indexes import AnnIndexes
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    SearchHit,
    Vector,
)
from ragbridge.store.sqlite_schema import (
    CHUNK_COLUMNS,
    COLLECTION_COLUMNS,
    DOCUMENT_COLUMNS,
    KEY_COLUMNS,
    api_key_record,
    chunk_record,
    collection_info,
    connect,
    document_record,
)
from ragbridge.store.vector_index import IdArray, VectorIndex

_LOAD_BATCH = 20_000
_ID_BATCH = 500

ChunkRow = tuple[str, str, int, str, str]
"""(chunk id, document id, position, text, metadata JSON)."""
FilterKey = tuple[int, str, tuple[Any, ...]]
"""(collection seq, filter SQL, its parameters)."""
_FILTER_CACHE_SIZE = 64


class SqliteDatabase:
    """Store operations as plain methods; `SqliteStore` runs them in its worker thread."""

    def __init__(self, path: Path, ann: AnnConfig | None = None) -> None:
        self.conn: sqlite3.Connection = connect(path)
        self._indexes: dict[int, VectorIndex] = {}
        self._filtered: dict[FilterKey, IdArray] = {}  # chunk seqs matching a filter
        self._data_version = -1
        self.ann = AnnIndexes(path, ann or AnnConfig())  # approximate search (ann_indexes.py)
        self.ann.open_all(self.conn.execute("SELECT seq, dimension FROM collections").fetchall())

    def close(self) -> None:
        self.ann.close()
        self.conn.close()
        self._indexes.clear()

    # --- collections ---------------------------------------------------------------------
    def create_collection(
        self, name: str, embedding_model: str, dimension: int, metadata: str
    ) -> CollectionInfo:
        with self._write():
            existing = self._collection(name)
            if existing is None:
                self.conn.execute(
                    "INSERT INTO collections (name, embedding_model, dimension, metadata,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (name, embedding_model, dimension, metadata, time.time()),
                )
                created = self._collection(name)
                assert created is not None
                return created
            if (existing.embedding_model, existing.dimension) != (embedding_model, dimension):
                raise EmbeddingMismatch(
                    f"collection {name!r} uses {existing.embedding_model} "
                    f"({existing.dimension} dims), not {embedding_model} ({dimension} dims)",
                    code="embedding_mismatch",
                )
            return existing

    def get_collection(self, name: str) -> CollectionInfo | None:
        return self._collection(name)

    def list_collections(self) -> list[CollectionInfo]:
        rows = self.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections c ORDER BY c.name"
        ).fetchall()
        return [collection_info(row) for row in rows]

    def delete_collection(self, name: str) -> bool:
        with self._write():
            seq = self._collection_seq(name)
            if seq is None:
                return False
            self.conn.execute("DELETE FROM chunks WHERE collection_seq = ?", (seq,))
            self.conn.execute("DELETE FROM documents WHERE collection_seq = ?", (seq,))
            self.conn.execute("DELETE FROM collections WHERE seq = ?", (seq,))
        self._forget(seq)
        self.ann.dropped(seq)
        return True

    # --- documents -----------------------------------------------------------------------
    def get_document(self, collection: str, document_id: str) -> DocumentRecord | None:
        row = self.conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN collections c"
            " ON c.seq = d.collection_seq WHERE c.name = ? AND d.id = ?",
            (collection, document_id),
        ).fetchone()
        return None if row is None else document_record(collection, row)

    def list_documents(self, collection: str) -> list[DocumentRecord]:
        rows = self.conn.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents d JOIN collections c"
            " ON c.seq = d.collection_seq WHERE c.name = ? ORDER BY d.source, d.id",
            (collection,),
        ).fetchall()
        return [document_record(collection, row) for row in rows]

    def upsert_document(
        self,
        document: DocumentRecord,
        metadata: str,
        rows: Sequence[ChunkRow],
        keywords: Sequence[str],
        vectors: Vector,
    ) -> DocumentRecord:
        """Replace the document, its chunks, their keywords and vectors in one transaction."""
        db = self.conn
        now = time.time()
        with self._write():
            seq, dimension = self._require_collection(document.collection)
            if rows and vectors.shape[1] != dimension:
                raise EmbeddingMismatch(
                    f"collection {document.collection!r} holds {dimension}-dim vectors, "
                    f"got {vectors.shape[1]}",
                    code="embedding_mismatch",
                )
            key = (seq, document.id)
            old = db.execute(
                "SELECT created_at FROM documents WHERE collection_seq = ? AND id = ?", key
            ).fetchone()
            old_seqs = self._chunk_seqs(*key)
            db.execute("DELETE FROM chunks WHERE collection_seq = ? AND document_id = ?", key)
            created_at = float(old[0]) if old else now
            db.execute(
                "INSERT INTO documents (collection_seq, id, source, content_hash, title, metadata,"
                " chunk_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (collection_seq, id) DO UPDATE SET source = excluded.source,"
                " content_hash = excluded.content_hash, title = excluded.title,"
                " metadata = excluded.metadata, chunk_count = excluded.chunk_count,"
                " updated_at = excluded.updated_at",
                (*key, document.source, document.content_hash, document.title, metadata,
                 len(rows), created_at, now),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO chunks (collection_seq, id, document_id, position, text, metadata)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ((seq, *row) for row in rows),
            )
            # AUTOINCREMENT under the write lock: the new rows' seqs ascend in insertion order.
            new_seqs = self._chunk_seqs(*key)
            seq_list = new_seqs.tolist()
            db.executemany(
                "INSERT INTO chunks_fts (rowid, keywords) VALUES (?, ?)",
                zip(seq_list, keywords, strict=True),
            )
            db.executemany(
                f"INSERT INTO vectors (seq, collection_seq, vector) VALUES (?, {seq}, ?)",
                zip(seq_list, (row.tobytes() for row in vectors), strict=True),
            )
        self._forget(seq, keep_index=True)
        self.ann.written(seq, dimension, old_seqs, new_seqs, vectors)
        index = self._indexes.get(seq)
        if index is not None:
            index.remove(old_seqs)
            index.add(new_seqs, vectors)
        return DocumentRecord(
            id=document.id,
            collection=document.collection,
            source=document.source,
            content_hash=document.content_hash,
            title=document.title,
            metadata=dict(document.metadata),
            chunk_count=len(rows),
            created_at=created_at,
            updated_at=now,
        )

    def delete_document(self, collection: str, document_id: str) -> bool:
        with self._write():
            seq = self._collection_seq(collection)
            if seq is None:
                return False
            old_seqs = self._chunk_seqs(seq, document_id)
            self.conn.execute(
                "DELETE FROM chunks WHERE collection_seq = ? AND document_id = ?",
                (seq, document_id),
            )
            deleted = self.conn.execute(
                "DELETE FROM documents WHERE collection_seq = ? AND id = ?", (seq, document_id)
            ).rowcount
        self._forget(seq, keep_index=True)
        self.ann.written(seq, 0, old_seqs, old_seqs[:0], np.empty((0, 0), dtype=np.float32))
        index = self._indexes.get(seq)
        if index is not None:
            index.remove(old_seqs)
        return deleted > 0

    # --- search --------------------------------------------------------------------------
    def dense_search(
        self, collection: str, query: Vector, top_k: int, where: str, params: Sequence[Any]
    ) -> list[SearchHit]:
        """Best `top_k` chunks by cosine; `where` is extra SQL over chunks `c` (filters)."""
        with self._read():
            seq, dimension = self._require_collection(collection)
            if query.shape[0] != dimension:
                raise EmbeddingMismatch(
                    f"collection {collection!r} holds {dimension}-dim vectors, "
                    f"got a {query.shape[0]}-dim query",
                    code="embedding_mismatch",
                )
            among = self._matching(seq, where, tuple(params)) if where else None
            ranked = self.ann.search(self.conn, seq, dimension, query, top_k, among)
            if ranked is None:  # small collection, selective filter, or index not ready
                ranked = self._index(seq, dimension).search(query, top_k, among)
            records = self._chunks_by_seq(collection, [row_seq for row_seq, _ in ranked])
        return [SearchHit(records[rs], score) for rs, score in ranked if rs in records]

    def keyword_search(
        self, collection: str, match: str, top_k: int, where: str, params: Sequence[Any]
    ) -> list[SearchHit]:
        """Best `top_k` chunks for the FTS5 query `match`, by BM25 (negated: higher is better)."""
        with self._read():
            seq, _ = self._require_collection(collection)
            if not match or top_k <= 0:
                return []
            rows = self.conn.execute(
                f"SELECT {CHUNK_COLUMNS}, bm25(chunks_fts) AS rank FROM chunks_fts"
                " JOIN chunks c ON c.seq = chunks_fts.rowid"
                f" WHERE chunks_fts MATCH ? AND c.collection_seq = ?{where}"
                " ORDER BY rank, c.seq LIMIT ?",
                (match, seq, *params, top_k),
            ).fetchall()
        return [SearchHit(chunk_record(collection, row), -float(row[6])) for row in rows]

    def get_chunks(self, collection: str, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        found: dict[str, ChunkRecord] = {}
        seq = self._collection_seq(collection)
        for start in range(0, len(chunk_ids), _ID_BATCH):
            batch = list(chunk_ids[start : start + _ID_BATCH])
            rows = self.conn.execute(
                f"SELECT {CHUNK_COLUMNS} FROM chunks c WHERE c.collection_seq = ?"
                f" AND c.id IN ({', '.join('?' * len(batch))})",
                (seq, *batch),
            ).fetchall()
            found.update((row[1], chunk_record(collection, row)) for row in rows)
        return [found[cid] for cid in chunk_ids if cid in found]

    # --- API keys ------------------------------------------------------------------------
    def save_api_key(self, key: ApiKeyRecord, collections: str | None) -> None:
        try:
            with self._write():
                self.conn.execute(
                    "INSERT INTO api_keys (name, key_hash, collections, rpm, tpm, created_at,"
                    " revoked) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key.name, key.key_hash, collections, key.rpm, key.tpm,
                     key.created_at or time.time(), int(key.revoked)),
                )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"an API key named {key.name!r} already exists") from exc

    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked = 0", (key_hash,)
        ).fetchone()
        return None if row is None else api_key_record(row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = self.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name, seq")
        return [api_key_record(row) for row in rows.fetchall()]

    def revoke_api_key(self, name: str) -> bool:
        with self._write():
            cursor = self.conn.execute(
                "UPDATE api_keys SET revoked = 1 WHERE name = ? AND revoked = 0", (name,)
            )
            return cursor.rowcount > 0

    # --- helpers -------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        """BEGIN, bring the vector cache up to date, then COMMIT, or ROLLBACK on any error."""
        self.conn.execute(begin)
        try:
            self._sync_cache()
            yield
            self.conn.execute("COMMIT")
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def _write(self) -> AbstractContextManager[None]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[None]:
        return self._transaction("BEGIN")

    def _sync_cache(self) -> None:
        """Drop cached vectors and filter results when another connection has committed since
        we last looked."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            if self._data_version != -1:
                self.ann.external_change()
            self._indexes.clear()
            self._filtered.clear()
            self._data_version = version

    def _forget(self, collection_seq: int, *, keep_index: bool = False) -> None:
        """Drop what is cached about a collection that has just changed."""
        if not keep_index:
            self._indexes.pop(collection_seq, None)
        for key in [key for key in self._filtered if key[0] == collection_seq]:
            del self._filtered[key]

    def _matching(self, collection_seq: int, where: str, params: tuple[Any, ...]) -> IdArray:
        """Sorted seqs of the collection's chunks that pass a metadata filter (memoised until
        the collection changes). The scan reads only the `chunks_by_metadata` index."""
        key = (collection_seq, where, params)
        found = self._filtered.get(key)
        if found is None:
            cursor = self.conn.execute(
                f"SELECT c.seq FROM chunks c WHERE c.collection_seq = ?{where}",
                (collection_seq, *params),
            )
            found = np.sort(_seq_array(cursor.fetchall()))
            if len(self._filtered) >= _FILTER_CACHE_SIZE:
                del self._filtered[next(iter(self._filtered))]
            self._filtered[key] = found
        return found

    def _collection(self, name: str) -> CollectionInfo | None:
        row = self.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.name = ?", (name,)
        ).fetchone()
        return None if row is None else collection_info(row)

    def _collection_seq(self, name: str) -> int | None:
        row = self.conn.execute("SELECT seq FROM collections WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _require_collection(self, name: str) -> tuple[int, int]:
        """The collection's (seq, dimension); `NotFound` if there is none."""
        row = self.conn.execute(
            "SELECT seq, dimension FROM collections WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
        return int(row[0]), int(row[1])

    def _chunk_seqs(self, collection_seq: int, document_id: str) -> IdArray:
        cursor = self.conn.execute(
            "SELECT seq FROM chunks WHERE collection_seq = ? AND document_id = ? ORDER BY seq",
            (collection_seq, document_id),
        )
        return _seq_array(cursor.fetchall())

    def _index(self, collection_seq: int, dimension: int) -> VectorIndex:
        """The collection's vector matrix, read from the file on first use."""
        index = self._indexes.get(collection_seq)
        if index is not None:
            return index
        count = self.conn.execute(
            "SELECT COUNT(*) FROM vectors WHERE collection_seq = ?", (collection_seq,)
        ).fetchone()[0]
        index = VectorIndex(dimension, capacity=max(count, 1024))
        cursor = self.conn.execute(  # index order is seq order: no sort step
            "SELECT seq, vector FROM vectors WHERE collection_seq = ? ORDER BY seq",
            (collection_seq,),
        )
        while rows := cursor.fetchmany(_LOAD_BATCH):
            blob = b"".join(row[1] for row in rows)
            matrix = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dimension)
            index.add(_seq_array(rows), matrix)
        self._indexes[collection_seq] = index
        return index

    def _chunks_by_seq(self, collection: str, seqs: list[int]) -> dict[int, ChunkRecord]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks c WHERE c.seq IN ({', '.join('?' * len(seqs))})",
            seqs,
        ).fetchall()
        return {int(row[0]): chunk_record(collection, row) for row in rows}


def _seq_array(rows: Sequence[tuple[Any, ...]]) -> IdArray:
    return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
