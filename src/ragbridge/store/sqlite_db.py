"""The embedded store's writer: one SQLite connection, used from one thread.

Every write is one `BEGIN IMMEDIATE` transaction. After a commit the writer brings the shared
`VectorCache` up to date (reads happen on their own connections, in `sqlite_read`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from ragbridge.errors import Conflict, NotFound
from ragbridge.store.ann_index import AnnConfig
from ragbridge.store.ann_indexes import AnnIndexes
from ragbridge.store.base import (
    ApiKeyRecord,
    CollectionInfo,
    DocumentRecord,
    Vector,
    check_dimension,
    check_embedding,
)
from ragbridge.store.sqlite_read import seq_array, vector_stamp
from ragbridge.store.sqlite_schema import (
    connect,
    create_fts_sql,
    find_collection,
    fts_table,
    require_collection,
)
from ragbridge.store.vector_cache import Change, VectorCache
from ragbridge.store.vector_index import IdArray

ChunkRow = tuple[str, str, int, str, str]
"""(chunk id, document id, position, text, metadata JSON)."""
PreparedUpsert = tuple[DocumentRecord, str, Sequence[ChunkRow], Sequence[str], Vector]
"""(document, its metadata JSON, chunk rows, chunk keywords, normalised vectors)."""


class SqliteDatabase:
    """Store operations as plain methods; `SqliteStore` runs them in its worker thread."""

    def __init__(self, path: Path, vectors: VectorCache, ann: AnnConfig | None = None) -> None:
        self.conn: sqlite3.Connection = connect(path)
        self.vectors = vectors
        self.ann = AnnIndexes(path, ann or AnnConfig())  # approximate search (ann_indexes.py)
        self.ann.open_all(self.conn.execute("SELECT seq, dimension FROM collections").fetchall())

    def close(self) -> None:
        self.ann.close()
        self.conn.close()
        self.vectors.clear()

    # --- collections ---------------------------------------------------------------------
    def create_collection(
        self, name: str, embedding_model: str, dimension: int, metadata: str
    ) -> CollectionInfo:
        with self._write():
            existing = find_collection(self.conn, name)
            if existing is not None:
                return check_embedding(existing, embedding_model, dimension)
            inserted = self.conn.execute(
                "INSERT INTO collections (name, embedding_model, dimension, metadata, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, embedding_model, dimension, metadata, time.time()),
            )
            assert inserted.lastrowid is not None
            self.conn.execute(create_fts_sql(inserted.lastrowid))
            created = find_collection(self.conn, name)
        assert created is not None
        return created

    def delete_collection(self, name: str) -> bool:
        with self._write():
            cursor = self.conn.execute("SELECT seq FROM collections WHERE name = ?", (name,))
            row = cursor.fetchone()
            if row is None:
                return False
            seq = int(row[0])
            self.conn.execute("DELETE FROM chunks WHERE collection_seq = ?", (seq,))
            self.conn.execute("DELETE FROM documents WHERE collection_seq = ?", (seq,))
            self.conn.execute("DELETE FROM collections WHERE seq = ?", (seq,))
            self.conn.execute(f"DROP TABLE IF EXISTS {fts_table(seq)}")
        self.vectors.forget(seq)
        self.ann.dropped(seq)
        return True

    # --- documents -----------------------------------------------------------------------
    def replace_documents(
        self, collection: str, upserts: Sequence[PreparedUpsert], delete_ids: Sequence[str]
    ) -> tuple[list[DocumentRecord], int]:
        """Upsert documents and delete others in one transaction; caches follow the commit.
        Returns the stored records and how many of `delete_ids` were found."""
        changes: list[Change] = []
        stored: list[DocumentRecord] = []
        deleted = 0
        with self._write():
            seq, dimension = require_collection(self.conn, collection)
            before = vector_stamp(self.conn, seq)
            for document, metadata, rows, keywords, vectors in upserts:
                record, old_seqs, new_seqs = self._upsert(
                    seq, dimension, document, metadata, rows, keywords, vectors
                )
                stored.append(record)
                changes.append((old_seqs, new_seqs, vectors))
            for document_id in delete_ids:
                old_seqs = self._chunk_seqs(seq, document_id)
                deleted += self._delete(seq, document_id)
                changes.append((old_seqs, seq_array([]), np.zeros((0, dimension), np.float32)))
            after = vector_stamp(self.conn, seq)
        self.vectors.apply(seq, before, after, changes)
        for removed, added, vectors in changes:
            self.ann.written(seq, dimension, removed, added, vectors)
        return stored, deleted

    def _upsert(
        self,
        seq: int,
        dimension: int,
        document: DocumentRecord,
        metadata: str,
        rows: Sequence[ChunkRow],
        keywords: Sequence[str],
        vectors: Vector,
    ) -> tuple[DocumentRecord, IdArray, IdArray]:
        """One document's rows, inside the caller's write transaction."""
        db = self.conn
        now = time.time()
        if rows:
            check_dimension(document.collection, dimension, vectors.shape[1])
        key = (seq, document.id)
        old = db.execute(
            "SELECT created_at FROM documents WHERE collection_seq = ? AND id = ?", key
        ).fetchone()
        old_seqs = self._chunk_seqs(*key)
        self._delete_chunks(seq, document.id)
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
            f"INSERT INTO {fts_table(seq)} (rowid, keywords) VALUES (?, ?)",
            zip(seq_list, keywords, strict=True),
        )
        db.executemany(
            f"INSERT INTO vectors (seq, collection_seq, vector) VALUES (?, {seq}, ?)",
            zip(seq_list, (row.tobytes() for row in vectors), strict=True),
        )
        record = replace(
            document,
            metadata=dict(document.metadata),
            chunk_count=len(rows),
            created_at=created_at,
            updated_at=now,
        )
        return record, old_seqs, new_seqs

    def _delete_chunks(self, seq: int, document_id: str) -> None:
        """The document's chunks and their keywords (a trigger deletes their vectors)."""
        key = (seq, document_id)
        self.conn.execute(
            f"DELETE FROM {fts_table(seq)} WHERE rowid IN"
            " (SELECT seq FROM chunks WHERE collection_seq = ? AND document_id = ?)",
            key,
        )
        self.conn.execute("DELETE FROM chunks WHERE collection_seq = ? AND document_id = ?", key)

    def _delete(self, seq: int, document_id: str) -> bool:
        self._delete_chunks(seq, document_id)
        deleted = self.conn.execute(
            "DELETE FROM documents WHERE collection_seq = ? AND id = ?", (seq, document_id)
        ).rowcount
        return bool(deleted > 0)

    def delete_document(self, collection: str, document_id: str) -> bool:
        try:
            return self.replace_documents(collection, [], [document_id])[1] > 0
        except NotFound:  # no such collection
            return False

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

    def revoke_api_key(self, name: str) -> bool:
        with self._write():
            cursor = self.conn.execute(
                "UPDATE api_keys SET revoked = 1 WHERE name = ? AND revoked = 0", (name,)
            )
            return cursor.rowcount > 0

    # --- helpers -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[None]:
        """BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def _chunk_seqs(self, collection_seq: int, document_id: str) -> IdArray:
        cursor = self.conn.execute(
            "SELECT seq FROM chunks WHERE collection_seq = ? AND document_id = ? ORDER BY seq",
            (collection_seq, document_id),
        )
        return seq_array(cursor.fetchall())
