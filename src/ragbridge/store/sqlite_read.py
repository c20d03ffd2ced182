"""The embedded store's reads: each reader thread has its own SQLite connection (WAL lets reads
run beside the one writer, on a snapshot), so key lookups, collection lookups and searches never
queue behind a large upsert. Exact dense search scans the matrices of `vector_cache.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragbridge.store.ann_index import read_vectors
from ragbridge.store.ann_indexes import AnnIndexes
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    SearchHit,
    Vector,
    check_dimension,
)
from ragbridge.store.sqlite_schema import (
    CHUNK_COLUMNS,
    COLLECTION_COLUMNS,
    DOCUMENT_COLUMNS,
    KEY_COLUMNS,
    api_key_record,
    chunk_record,
    collection_info,
    document_record,
    find_collection,
    fts_table,
    require_collection,
)
from ragbridge.store.vector_cache import VectorCache
from ragbridge.store.vector_index import IdArray, VectorIndex

_ID_BATCH = 500


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (the writer made the file and the schema)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    return conn


def vector_stamp(conn: sqlite3.Connection, collection_seq: int) -> int:
    """The collection's highest vector row id (0 when it has none)."""
    row = conn.execute(
        "SELECT MAX(seq) FROM vectors WHERE collection_seq = ?", (collection_seq,)
    ).fetchone()
    return int(row[0] or 0)


class SqliteReader:
    """Read operations on one connection (one reader thread's)."""

    def __init__(self, conn: sqlite3.Connection, vectors: VectorCache, ann: AnnIndexes) -> None:
        self.conn = conn
        self.vectors = vectors
        self.ann = ann

    def ping(self) -> None:
        self.conn.execute("SELECT 1").fetchone()

    def get_collection(self, name: str) -> CollectionInfo | None:
        return find_collection(self.conn, name)

    def list_collections(self) -> list[CollectionInfo]:
        rows = self.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections c ORDER BY c.name"
        ).fetchall()
        return [collection_info(row) for row in rows]

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

    # --- search --------------------------------------------------------------------------
    def dense_search(
        self, collection: str, query: Vector, top_k: int, where: str, params: Sequence[Any]
    ) -> list[SearchHit]:
        """Best `top_k` chunks by cosine; `where` is extra SQL over chunks `c` (filters)."""
        self.conn.execute("BEGIN")  # one snapshot for the stamp, the filter and the chunks
        try:
            seq, dimension = require_collection(self.conn, collection)
            check_dimension(collection, dimension, query.shape[0], "query")
            stamp = vector_stamp(self.conn, seq)
            among = self._matching(seq, stamp, where, tuple(params)) if where else None
            ranked = self.ann.search(self.conn, seq, dimension, query, top_k, among, stamp)
            if ranked is None:  # small collection, selective filter, or index not current
                ranked = self.vectors.search(seq, stamp, query, top_k, among)
            records = self._chunks_by_seq(collection, [row_seq for row_seq, _ in ranked or ()])
            if ranked is None or len(records) < len(ranked):
                # Not cached, or rows another process deleted: read the matrix again.
                index = self._load_index(seq, dimension)
                ranked = index.search(query, top_k, among)  # before the writer can see it
                self.vectors.replace(seq, stamp, index)
                records = self._chunks_by_seq(collection, [row_seq for row_seq, _ in ranked])
        finally:
            self.conn.execute("COMMIT")
        return [SearchHit(records[rs], score) for rs, score in ranked if rs in records]

    def keyword_search(
        self, collection: str, match: str, top_k: int, where: str, params: Sequence[Any]
    ) -> list[SearchHit]:
        """Best `top_k` chunks for the FTS5 query `match`, by BM25 over the collection's own
        FTS table (negated: higher is better). The best row ids are found in the FTS index
        alone (joined with `chunks` only to apply a filter); then their rows are read."""
        if top_k <= 0 or not match:
            require_collection(self.conn, collection)
            return []
        self.conn.execute("BEGIN")  # one snapshot for the ranking and the rows
        try:
            seq, _ = require_collection(self.conn, collection)
            fts = fts_table(seq)
            if where:
                sql = (
                    f"SELECT f.rowid, f.rank FROM {fts} f JOIN chunks c ON c.seq = f.rowid"
                    f" WHERE {fts} MATCH ?{where} ORDER BY f.rank, f.rowid LIMIT ?"
                )
            else:
                sql = (
                    f"SELECT rowid, rank FROM {fts} WHERE {fts} MATCH ?"
                    " ORDER BY rank, rowid LIMIT ?"
                )
            ranked = self.conn.execute(sql, (match, *params, top_k)).fetchall()
            records = self._chunks_by_seq(collection, [row[0] for row in ranked])
        finally:
            self.conn.execute("COMMIT")
        return [SearchHit(records[rs], -float(rank)) for rs, rank in ranked if rs in records]

    def get_chunks(self, collection: str, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        found: dict[str, ChunkRecord] = {}
        for start in range(0, len(chunk_ids), _ID_BATCH):
            batch = list(chunk_ids[start : start + _ID_BATCH])
            rows = self.conn.execute(
                f"SELECT {CHUNK_COLUMNS} FROM chunks c JOIN collections k ON k.seq ="
                f" c.collection_seq WHERE k.name = ? AND c.id IN ({', '.join('?' * len(batch))})",
                (collection, *batch),
            ).fetchall()
            found.update((row[1], chunk_record(collection, row)) for row in rows)
        return [found[cid] for cid in chunk_ids if cid in found]

    # --- API keys ------------------------------------------------------------------------
    def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked = 0", (key_hash,)
        ).fetchone()
        return None if row is None else api_key_record(row)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = self.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name, seq")
        return [api_key_record(row) for row in rows.fetchall()]

    # --- helpers -------------------------------------------------------------------------
    def _matching(
        self, collection_seq: int, stamp: int, where: str, params: tuple[Any, ...]
    ) -> IdArray:
        """Sorted seqs of the collection's chunks that pass a metadata filter (memoised until
        the collection changes). The scan reads only the `chunks_by_metadata` index."""
        key = (collection_seq, stamp, where, params)
        found = self.vectors.filtered(key)
        if found is None:
            cursor = self.conn.execute(
                f"SELECT c.seq FROM chunks c WHERE c.collection_seq = ?{where}",
                (collection_seq, *params),
            )
            found = np.sort(seq_array(cursor.fetchall()))
            self.vectors.put_filtered(key, found)
        return found

    def _load_index(self, collection_seq: int, dimension: int) -> VectorIndex:
        """The collection's vector matrix, read from the file."""
        count = self.conn.execute(
            "SELECT COUNT(*) FROM vectors WHERE collection_seq = ?", (collection_seq,)
        ).fetchone()[0]
        index = VectorIndex(dimension, capacity=max(count, 1024))
        for ids, matrix in read_vectors(self.conn, collection_seq, dimension):
            index.add(ids, matrix)
        return index

    def _chunks_by_seq(self, collection: str, seqs: list[int]) -> dict[int, ChunkRecord]:
        if not seqs:
            return {}
        rows = self.conn.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks c WHERE c.seq IN ({', '.join('?' * len(seqs))})",
            seqs,
        ).fetchall()
        return {int(row[0]): chunk_record(collection, row) for row in rows}


def seq_array(rows: Sequence[tuple[Any, ...]]) -> IdArray:
    return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
