"""Versioned schema migrations for the PostgreSQL store, safe to run from many replicas at once:
each runs once, in its own transaction, under a session-level advisory lock, and is recorded in
`schema_migrations`. Why one untyped `vector` column: docs/scaling.md."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from psycopg import AsyncConnection

logger = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x7261676272696467
"""`pg_advisory_lock` key held while migrating ("ragbridg" in ASCII)."""


class Migration(NamedTuple):
    """One schema step: applied once, in one transaction."""

    version: int
    name: str
    sql: str


INITIAL_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    embedding_model text NOT NULL,
    dimension integer NOT NULL CHECK (dimension > 0),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at double precision NOT NULL,
    document_count bigint NOT NULL DEFAULT 0,
    chunk_count bigint NOT NULL DEFAULT 0,
    keyword_total bigint NOT NULL DEFAULT 0
);

CREATE TABLE documents (
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    id text NOT NULL,
    source text NOT NULL,
    content_hash text NOT NULL,
    title text,
    metadata jsonb NOT NULL DEFAULT '{}',
    chunk_count integer NOT NULL,
    keyword_total bigint NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (collection_id, id)
);

CREATE TABLE chunks (
    collection_id bigint NOT NULL,
    id text NOT NULL,
    document_id text NOT NULL,
    position integer NOT NULL,
    text text NOT NULL,
    keywords text NOT NULL,
    keyword_count integer NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    embedding vector NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', keywords)) STORED,
    PRIMARY KEY (collection_id, id),
    FOREIGN KEY (collection_id, document_id)
        REFERENCES documents (collection_id, id) ON DELETE CASCADE
);
CREATE INDEX chunks_document ON chunks (collection_id, document_id, position);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_metadata ON chunks USING gin (metadata jsonb_path_ops);

CREATE TABLE api_keys (
    name text NOT NULL,
    key_hash text NOT NULL,
    collections text[],
    rpm integer,
    tpm integer,
    created_at double precision NOT NULL,
    revoked boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE NOT revoked;
CREATE INDEX api_keys_hash ON api_keys (key_hash);
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", INITIAL_SCHEMA),)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def applied_versions(conn: AsyncConnection[Any]) -> set[int]:
    """Versions recorded in `schema_migrations` (empty on a fresh database)."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:
        return set()
    cur = await conn.execute("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in await cur.fetchall()}


async def migrate(
    conn: AsyncConnection[Any], migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Apply the pending migrations on an autocommit connection; returns the versions applied."""
    if not conn.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    await conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
    try:
        await conn.execute(_BOOKKEEPING)
        done = await applied_versions(conn)
        pending = sorted(m for m in migrations if m.version not in done)
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
            logger.info("applied migration %d: %s", migration.version, migration.name)
        newer = {v for v in done if v > max(m.version for m in migrations)}
        if newer:
            logger.warning("database has migrations %s this ragbridge does not know", newer)
        return [m.version for m in pending]
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
