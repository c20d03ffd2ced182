"""Rows of the PostgreSQL store's tables as the Store's records (the columns are named as the
records' fields)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from ragbridge.store.base import (
    ApiKeyRecord,
    ChunkRecord,
    CollectionInfo,
    DocumentRecord,
    to_json,
)

COLLECTION_COLUMNS = (
    "id, name, embedding_model, dimension, metadata, created_at, document_count, chunk_count,"
    " keyword_total"
)
API_KEYS = "SELECT name, key_hash, collections, rpm, tpm, created_at, revoked FROM api_keys"
DOCUMENT_COLUMNS = (
    "d.id, d.source, d.content_hash, d.title, d.metadata, d.chunk_count, d.created_at, d.updated_at"
)


@dataclass(frozen=True)
class CollectionRow:
    """A collection row, with the internal id and running totals the searches need."""

    id: int
    info: CollectionInfo
    keyword_total: int


def collection_row(row: Mapping[str, Any]) -> CollectionRow:
    info = {key: value for key, value in row.items() if key not in ("id", "keyword_total")}
    return CollectionRow(row["id"], CollectionInfo(**info), row["keyword_total"])


def document_row(collection: str, row: Mapping[str, Any]) -> DocumentRecord:
    return DocumentRecord(collection=collection, **row)


def chunk_row(collection: str, row: Mapping[str, Any]) -> ChunkRecord:
    """A chunk from its columns (a search's row also has a `score`)."""
    return ChunkRecord(
        row["id"], row["document_id"], collection, row["position"], row["text"], row["metadata"]
    )


def api_key_row(row: Mapping[str, Any]) -> ApiKeyRecord:
    collections = None if row["collections"] is None else tuple(row["collections"])
    return ApiKeyRecord(**{**row, "collections": collections})


def jsonb(value: Mapping[str, Any], what: str) -> Jsonb:
    """`value` ready for a jsonb column, serialised once; `InvalidRequest` if it is not JSON."""
    text = to_json(value, what)
    return Jsonb(value, dumps=lambda _: text)
