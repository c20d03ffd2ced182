"""Copy collections between stores (embedded SQLite <-> PostgreSQL) as stored (nothing is
re-embedded), one transaction per document, then verified by counts and a few documents read
back. The embedded file is read directly, as the `Store` protocol has no bulk export."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ragbridge.errors import Conflict, InvalidRequest, NotFound, RagbridgeError
from ragbridge.store.base import DocumentRecord, NewChunk, Store, Vector
from ragbridge.store.sqlite_schema import fts_table, require_collection

if TYPE_CHECKING:
    from ragbridge.settings import Settings

SPOT_CHECKS = 5
"""Documents per collection read back from the target and compared with the source."""


class TransferError(RagbridgeError):
    """A copy did not verify: counts or read-back content differ."""


class ChunkExporter(Protocol):
    """What copying needs beyond `Store`: a document's stored chunks and vectors."""

    async def export_document(
        self, collection: str, document_id: str
    ) -> tuple[list[NewChunk], Vector]: ...

    async def vector_count(self, collection: str) -> int: ...


@dataclass(frozen=True)
class Counts:
    """What a collection holds."""

    documents: int
    chunks: int
    vectors: int

    def __str__(self) -> str:
        return f"{self.documents} documents, {self.chunks} chunks, {self.vectors} vectors"


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: the store and how to read its chunks back."""

    store: Store
    exporter: ChunkExporter
    label: str


@dataclass(frozen=True)
class SqliteExporter:
    """Reads chunks, keywords and vectors from an embedded store file, read-only (it knows
    `sqlite_schema.py`'s tables; the copy tests catch a schema change)."""

    path: Path

    async def export_document(
        self, collection: str, document_id: str
    ) -> tuple[list[NewChunk], Vector]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            seq, _ = require_collection(conn, collection)
            return conn.execute(
                "SELECT c.position, c.text, f.keywords, c.metadata, v.vector FROM chunks c"
                f" JOIN {fts_table(seq)} f ON f.rowid = c.seq JOIN vectors v ON v.seq = c.seq"
                " WHERE c.collection_seq = ? AND c.document_id = ? ORDER BY c.seq",
                (seq, document_id),
            ).fetchall()

        rows = await self._read(read)
        chunks = [NewChunk(text, keywords, position, json.loads(meta)) for position, text,
                  keywords, meta, _ in rows]  # fmt: skip
        vectors = [np.frombuffer(row[4], dtype=np.float32) for row in rows]
        return chunks, np.array(vectors, dtype=np.float32)

    async def vector_count(self, collection: str) -> int:
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM vectors v JOIN collections k ON k.seq = v.collection_seq"
                " WHERE k.name = ?",
                (collection,),
            ).fetchall()
        )
        return int(rows[0][0])

    async def _read(self, query: Callable[[sqlite3.Connection], list[Any]]) -> list[Any]:
        def read() -> list[Any]:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True)) as conn:
                return query(conn)

        return await asyncio.to_thread(read)


async def counts(endpoint: Endpoint, collection: str) -> Counts:
    """The collection's document, chunk and vector counts, as stored."""
    documents = await endpoint.store.list_documents(collection)
    vectors = await endpoint.exporter.vector_count(collection)
    return Counts(len(documents), sum(d.chunk_count for d in documents), vectors)


async def copy_collection(
    source: Endpoint,
    target: Endpoint,
    name: str,
    *,
    overwrite: bool = False,
) -> Counts:
    """Copy one collection as stored (no re-embedding); returns the verified counts.

    The target collection must be absent or empty unless `overwrite` deletes it first.
    """
    info = await source.store.get_collection(name)
    if info is None:
        raise NotFound(f"collection {name!r} does not exist in {source.label}")
    existing = await target.store.get_collection(name)
    if existing is not None and existing.document_count:
        if not overwrite:
            raise Conflict(
                f"collection {name!r} already has {existing.document_count} documents in "
                f"{target.label}; pass --overwrite to replace it"
            )
        await target.store.delete_collection(name)
    await target.store.create_collection(name, info.embedding_model, info.dimension, info.metadata)
    expected = await counts(source, name)
    documents = await source.store.list_documents(name)
    for document in documents:
        chunks, vectors = await source.exporter.export_document(name, document.id)
        await target.store.upsert_document(document, chunks, vectors)
    await verify(source, target, name, expected, documents)
    return expected


async def verify(
    source: Endpoint,
    target: Endpoint,
    name: str,
    expected: Counts,
    documents: list[DocumentRecord],
) -> None:
    """Counts equal on both sides, and a few documents identical chunk for chunk."""
    now_source = await counts(source, name)
    if now_source != expected:
        raise TransferError(f"{name}: the source changed during the copy ({now_source}); rerun")
    copied = await counts(target, name)
    if copied != expected:
        raise TransferError(f"{name}: copied {copied}, but the source holds {expected}")
    step = max(1, len(documents) // SPOT_CHECKS)
    for document in documents[::step][:SPOT_CHECKS]:
        want_chunks, want_vectors = await source.exporter.export_document(name, document.id)
        got_chunks, got_vectors = await target.exporter.export_document(name, document.id)
        same_vectors = want_vectors.shape == got_vectors.shape and np.allclose(
            want_vectors, got_vectors, atol=1e-6
        )
        if got_chunks != want_chunks or not same_vectors:
            raise TransferError(f"{name}: document {document.id!r} differs after the copy")


@asynccontextmanager
async def open_endpoint(
    spec: str, settings: Settings, *, must_exist: bool
) -> AsyncIterator[Endpoint]:
    """An opened store from `spec`: `sqlite` (the data dir's store), `postgres`
    (RAGBRIDGE_DATABASE_URL), a postgresql:// URL, or a data dir or `.db` file path."""
    if spec == "postgres":
        if not settings.database_url:
            raise InvalidRequest("--from/--to postgres needs RAGBRIDGE_DATABASE_URL")
        spec = settings.database_url
    if spec.startswith(("postgresql://", "postgres://")):
        from ragbridge.store.postgres import PostgresStore

        postgres = PostgresStore(spec)
        endpoint = Endpoint(postgres, postgres, "PostgreSQL")
    else:
        from ragbridge.store import SQLITE_FILENAME
        from ragbridge.store.sqlite import SqliteStore

        path = settings.data_dir if spec == "sqlite" else Path(spec)
        if path.is_dir() or path.suffix != ".db":
            path = path / SQLITE_FILENAME
        if must_exist and not path.is_file():
            raise NotFound(f"no embedded store at {path}")
        endpoint = Endpoint(SqliteStore(path), SqliteExporter(path), str(path))
    await endpoint.store.open()
    try:
        yield endpoint
    finally:
        await endpoint.store.close()


async def copy_stores(
    source_spec: str,
    target_spec: str,
    settings: Settings,
    *,
    collections: Sequence[str] = (),
    overwrite: bool = False,
    report: Callable[[str], None] = print,
) -> dict[str, Counts]:
    """Copy the named collections (default: all) from one store to another, each verified."""
    async with (
        open_endpoint(source_spec, settings, must_exist=True) as source,
        open_endpoint(target_spec, settings, must_exist=False) as target,
    ):
        names = list(collections) or [c.name for c in await source.store.list_collections()]
        copied: dict[str, Counts] = {}
        for name in names:
            copied[name] = await copy_collection(source, target, name, overwrite=overwrite)
            report(f"copied {name}: {copied[name]} (verified)")
        return copied
