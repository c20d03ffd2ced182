-- The embedded store's schema 1 (ragbridge before per-collection FTS tables), as released:
-- tests open files made with it to check the migration.
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
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
    keywords, tokenize = "unicode61 remove_diacritics 0"
);
CREATE TRIGGER IF NOT EXISTS chunks_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.seq;
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
