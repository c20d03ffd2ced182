"""The embedded store's SQLite schema and connection settings, and how records, metadata
filters and keyword queries map to SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragbridge.errors import InvalidRequest, NotFound
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    filter_items,
)

SCHEMA_VERSION = 2

# `seq` columns use AUTOINCREMENT: row ids only grow, as the vector cache needs (a re-created
# collection never reuses a cached id). Vectors have their own table and metadata filters a
# covering index, so scans of chunks stay small; keywords go to one FTS5 table per collection
# (`fts_table`), so BM25's statistics are the collection's (docs/design.md).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    embedding_model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    collection_seq INTEGER NOT NULL REFERENCES collections (seq),
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title TEXT,
    metadata TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection_seq, id)
);
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    collection_seq INTEGER NOT NULL,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    FOREIGN KEY (collection_seq, document_id) REFERENCES documents (collection_seq, id)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (collection_seq, document_id);
CREATE INDEX IF NOT EXISTS chunks_by_metadata ON chunks (collection_seq, metadata);
CREATE TABLE IF NOT EXISTS vectors (
    seq INTEGER PRIMARY KEY,
    collection_seq INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_by_collection ON vectors (collection_seq);
CREATE TRIGGER IF NOT EXISTS chunks_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM vectors WHERE seq = old.seq;
END;
CREATE TABLE IF NOT EXISTS api_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    collections TEXT,
    rpm INTEGER,
    tpm INTEGER,
    created_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_live_name ON api_keys (name) WHERE revoked = 0;
CREATE INDEX IF NOT EXISTS api_keys_by_hash ON api_keys (key_hash);
"""


def fts_table(collection_seq: int) -> str:
    """The name of the collection's FTS5 table (analysed terms, space-joined)."""
    return f"fts_c{int(collection_seq)}"


def create_fts_sql(collection_seq: int) -> str:
    """`unicode61` with diacritics kept leaves Hangul and accented Latin terms exactly as the
    analyser wrote them."""
    return (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts_table(collection_seq)} USING fts5"
        ' (keywords, tokenize = "unicode61 remove_diacritics 0")'
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, schema in place
    (an older file is migrated, in one transaction)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise RuntimeError(f"{path} has schema {version}; this ragbridge knows {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        try:
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # under the lock
            if version == 1:
                _split_fts(conn)
            for statement in _statements(_SCHEMA):  # executescript would COMMIT first
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
    return conn


def _statements(script: str) -> list[str]:
    """The SQL statements of `script`, one by one (trigger bodies hold `;` too)."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def _split_fts(conn: sqlite3.Connection) -> None:
    """Schema 1 to 2: the file-wide `chunks_fts` becomes one FTS5 table per collection. The
    collection with the most chunks takes the old table over (a rename, instant at any size);
    the others' rows are copied out of it first."""
    counts = conn.execute(
        "SELECT k.seq, (SELECT COUNT(*) FROM chunks c WHERE c.collection_seq = k.seq) AS n"
        " FROM collections k ORDER BY n DESC, k.seq"
    ).fetchall()
    conn.execute("DROP TRIGGER IF EXISTS chunks_delete")  # it named chunks_fts
    for seq, _ in counts[1:]:
        conn.execute(create_fts_sql(seq))
        conn.execute(
            f"INSERT INTO {fts_table(seq)} (rowid, keywords) SELECT f.rowid, f.keywords"
            " FROM chunks_fts f JOIN chunks c ON c.seq = f.rowid WHERE c.collection_seq = ?",
            (seq,),
        )
    if counts:
        largest = counts[0][0]
        conn.execute(
            "DELETE FROM chunks_fts WHERE rowid IN"
            " (SELECT seq FROM chunks WHERE collection_seq != ?)",
            (largest,),
        )
        conn.execute(f"ALTER TABLE chunks_fts RENAME TO {fts_table(largest)}")
    else:
        conn.execute("DROP TABLE chunks_fts")


def filter_sql(filters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """`AND ...` clauses matching the metadata of chunks `c` against `filters` (see
    `filter_items`; an empty list matches nothing)."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, options in filter_items(filters):
        if '"' in key:
            raise InvalidRequest(f"invalid filter key {key!r}", param="filters")
        clauses.append(f"json_extract(c.metadata, ?) IN ({', '.join('?' * len(options))})")
        params.append(f'$."{key}"')
        params.extend(options)
    return "".join(f" AND {clause}" for clause in clauses), params


# --- rows <-> records ---------------------------------------------------------------------
COLLECTION_COLUMNS = """c.name, c.embedding_model, c.dimension, c.created_at,
    (SELECT COUNT(*) FROM documents d WHERE d.collection_seq = c.seq),
    (SELECT COALESCE(SUM(d.chunk_count), 0) FROM documents d WHERE d.collection_seq = c.seq),
    c.metadata"""
DOCUMENT_COLUMNS = """d.id, d.source, d.content_hash, d.title, d.metadata, d.chunk_count,
    d.created_at, d.updated_at"""
CHUNK_COLUMNS = "c.seq, c.id, c.document_id, c.position, c.text, c.metadata"
KEY_COLUMNS = "name, key_hash, collections, rpm, tpm, created_at, revoked"


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of `terms`, each quoted so no term is read as syntax."""
    unique = dict.fromkeys(term for term in terms if term.strip())
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in unique)


def collection_info(row: tuple[Any, ...]) -> CollectionInfo:
    name, model, dimension, created_at, documents, chunks, metadata = row
    return CollectionInfo(
        name, model, int(dimension), float(created_at), int(documents), int(chunks),
        json.loads(metadata),
    )  # fmt: skip


def document_record(collection: str, row: tuple[Any, ...]) -> DocumentRecord:
    doc_id, source, content_hash, title, metadata, chunk_count, created_at, updated_at = row
    return DocumentRecord(
        doc_id, collection, source, content_hash, title, json.loads(metadata),
        int(chunk_count), float(created_at), float(updated_at),
    )  # fmt: skip


def chunk_record(collection: str, row: tuple[Any, ...]) -> ChunkRecord:
    return ChunkRecord(row[1], row[2], collection, int(row[3]), row[4], json.loads(row[5]))


def api_key_record(row: tuple[Any, ...]) -> ApiKeyRecord:
    name, key_hash, collections, rpm, tpm, created_at, revoked = row
    scope = None if collections is None else tuple(json.loads(collections))
    return ApiKeyRecord(name, key_hash, scope, rpm, tpm, float(created_at), bool(revoked))


def find_collection(conn: sqlite3.Connection, name: str) -> CollectionInfo | None:
    """The collection named `name`, or None."""
    row = conn.execute(
        f"SELECT {COLLECTION_COLUMNS} FROM collections c WHERE c.name = ?", (name,)
    ).fetchone()
    return None if row is None else collection_info(row)


def require_collection(conn: sqlite3.Connection, name: str) -> tuple[int, int]:
    """The collection's (seq, dimension); `NotFound` if there is none."""
    row = conn.execute("SELECT seq, dimension FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
    return int(row[0]), int(row[1])
