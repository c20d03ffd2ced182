"""Rows of the PostgreSQL store's tables as the Store's records, and checks on input vectors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from ragbridge.errors import EmbeddingMismatch, InvalidRequest
from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    NewChunk,
    Vector,
    chunk_id,
)
from ragbridge.store.vector_index import normalise

COLLECTION_COLUMNS = (
    "id, name, embedding_model, dimension, metadata, created_at, document_count, chunk_count,"
    " keyword_total"
)
CHUNK_COPY = (
    "COPY chunks (collection_id, id, document_id, position, text, keywords, keyword_count,"
    " metadata, embedding) FROM STDIN (FORMAT BINARY)"
)
CHUNK_COPY_TYPES = ["int8", "text", "text", "int4", "text", "text", "int4", "jsonb", "vector"]
KEYWORD_COUNT_COLUMN = 6
DOCUMENT_COLUMNS = (
    "d.id, d.source, d.content_hash, d.title, d.metadata, d.chunk_count, d.keyword_total,"
    " d.created_at, d.updated_at"
)


@dataclass(frozen=True)
class CollectionRow:
    """A collection row, with the internal id and running totals the searches need."""

    id: int
    info: CollectionInfo
    keyword_total: int


def collection_row(row: Mapping[str, Any]) -> CollectionRow:
    info = CollectionInfo(
        name=row["name"],
        embedding_model=row["embedding_model"],
        dimension=row["dimension"],
        created_at=row["created_at"],
        document_count=row["document_count"],
        chunk_count=row["chunk_count"],
        metadata=dict(row["metadata"]),
    )
    return CollectionRow(id=row["id"], info=info, keyword_total=row["keyword_total"])


def document_row(collection: str, row: Mapping[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        id=row["id"],
        collection=collection,
        source=row["source"],
        content_hash=row["content_hash"],
        title=row["title"],
        metadata=dict(row["metadata"]),
        chunk_count=row["chunk_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def chunk_row(collection: str, row: Mapping[str, Any]) -> ChunkRecord:
    return ChunkRecord(
        id=row["id"],
        document_id=row["document_id"],
        collection=collection,
        position=row["position"],
        text=row["text"],
        metadata=dict(row["metadata"]),
    )


def api_key_row(row: Mapping[str, Any]) -> ApiKeyRecord:
    collections = row["collections"]
    return ApiKeyRecord(
        name=row["name"],
        key_hash=row["key_hash"],
        collections=None if collections is None else tuple(collections),
        rpm=row["rpm"],
        tpm=row["tpm"],
        created_at=row["created_at"],
        revoked=row["revoked"],
    )


def check_vectors(vectors: Vector, count: int, info: CollectionInfo) -> Vector:
    """The vectors as a (count, dimension) float32 matrix, or a clear error."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if count == 0 and matrix.size == 0:
        return matrix.reshape(0, info.dimension)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise InvalidRequest(f"{count} chunks but vectors of shape {matrix.shape}")
    if matrix.shape[1] != info.dimension:
        raise EmbeddingMismatch(
            f"vectors have {matrix.shape[1]} dims, collection {info.name!r} has {info.dimension}",
            code="embedding_mismatch",
        )
    return normalise(matrix)


def jsonb(value: Mapping[str, Any], what: str) -> Jsonb:
    """`value` ready for a jsonb column, serialised once; `InvalidRequest` if it is not JSON."""
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{what} is not JSON: {exc}") from exc
    return Jsonb(value, dumps=lambda _: text)


def chunk_rows(
    collection_id: int, document: DocumentRecord, chunks: Sequence[NewChunk], vectors: Vector
) -> list[list[Any]]:
    """Rows for `CHUNK_COPY`; chunk ids as the embedded store makes them, so copies keep them."""
    rows: list[list[Any]] = []
    for index, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
        rows.append([
            collection_id, chunk_id(document.collection, document, index), document.id,
            chunk.position, chunk.text, chunk.keywords, len(chunk.keywords.split()),
            jsonb(chunk.metadata, f"{document.source}: chunk {index} metadata"), vector,
        ])  # fmt: skip
    return rows
