"""The Store protocol and the records it keeps. `sqlite` and `postgres` both implement it and
pass one conformance suite (`tests/store/`); callers never know which one they hold."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ragbridge.errors import EmbeddingMismatch, InvalidRequest
from ragbridge.store.vector_index import normalise

Vector = npt.NDArray[np.float32]
"""One embedding (1-D) or a batch (2-D, one row per text), L2-normalised float32."""

MetadataFilter = Mapping[str, Any]
"""Equality filter on chunk metadata: `{"source": "manual.pdf", "page": 2}`; a list value means
"any of"."""


@dataclass(frozen=True)
class CollectionInfo:
    """A named set of documents embedded with one model."""

    name: str
    embedding_model: str
    dimension: int
    created_at: float
    document_count: int = 0
    chunk_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentRecord:
    """One ingested document. `id` derives from collection + source; `content_hash` from bytes."""

    id: str
    collection: str
    source: str
    content_hash: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_count: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to store: its text, its keyword tokens (space-joined, already analysed by
    `retrieval.text`), its position in the document and its metadata (name, page, headings)."""

    text: str
    keywords: str
    position: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk."""

    id: str
    document_id: str
    collection: str
    position: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """A chunk and its score from one retriever (cosine for dense, BM25-like for keyword;
    higher is better)."""

    chunk: ChunkRecord
    score: float


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key, stored only as a hash."""

    name: str
    key_hash: str
    collections: tuple[str, ...] | None = None  # None = every collection
    rpm: int | None = None
    tpm: int | None = None
    created_at: float = 0.0
    revoked: bool = False


DocumentUpsert = tuple[DocumentRecord, Sequence[NewChunk], Vector]
"""One document for `Store.replace_documents`: its record, its chunks, one vector per chunk."""


@runtime_checkable
class Store(Protocol):
    """Documents, chunks, vectors, a keyword index and API keys, behind one async interface.

    Every write is one transaction: after a crash the store holds either the old or the new
    version of a document, never a mix, never orphan chunks.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise if the store is unreachable."""

    # --- collections -------------------------------------------------------------------
    async def create_collection(
        self,
        name: str,
        embedding_model: str,
        dimension: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> CollectionInfo:
        """Create a collection, or return it if it exists with the same model and dimension.

        Raises `EmbeddingMismatch` when it exists with another model or dimension.
        """

    async def get_collection(self, name: str) -> CollectionInfo | None: ...

    async def list_collections(self) -> list[CollectionInfo]: ...

    async def delete_collection(self, name: str) -> bool:
        """Delete a collection with its documents, chunks and vectors; False if absent."""

    # --- documents ---------------------------------------------------------------------
    async def get_document(self, collection: str, document_id: str) -> DocumentRecord | None: ...

    async def list_documents(self, collection: str) -> list[DocumentRecord]: ...

    async def upsert_document(
        self, document: DocumentRecord, chunks: Sequence[NewChunk], vectors: Vector
    ) -> DocumentRecord:
        """Insert or replace a document and all its chunks and vectors, in one transaction.

        `vectors` has one row per chunk. Returns the stored record (timestamps, chunk count).
        """
        upsert = (document, chunks, vectors)
        return (await self.replace_documents(document.collection, [upsert]))[0]

    async def delete_document(self, collection: str, document_id: str) -> bool:
        """Delete a document, its chunks and vectors; False if absent."""

    async def replace_documents(
        self,
        collection: str,
        upserts: Sequence[DocumentUpsert],
        delete_ids: Sequence[str] = (),
    ) -> list[DocumentRecord]:
        """Upsert several documents and delete others of `collection` in ONE transaction (the
        records of one JSON/CSV file): all of it is stored, or on any error none of it.
        Returns the stored records in the order of `upserts`."""

    # --- search ------------------------------------------------------------------------
    async def dense_search(
        self,
        collection: str,
        vector: Vector,
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        """Chunks by cosine similarity to `vector`, best first."""

    async def keyword_search(
        self,
        collection: str,
        terms: Sequence[str],
        top_k: int,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        """Chunks matching any of the analysed `terms` (BM25-style ranking), best first."""

    async def get_chunks(self, collection: str, chunk_ids: Sequence[str]) -> list[ChunkRecord]:
        """Chunks by id, in the order asked; missing ids are skipped."""

    # --- API keys ----------------------------------------------------------------------
    async def save_api_key(self, key: ApiKeyRecord) -> None:
        """Store a new key; raises `Conflict` if the name is taken by a live key."""

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The live (not revoked) key with this hash."""

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, name: str) -> bool:
        """Revoke a key by name; False if there is no live key of that name."""


def chunk_id(collection: str, document: DocumentRecord, index: int) -> str:
    """A stable chunk id: the same document content always yields the same ids."""
    key = f"{collection}\0{document.id}\0{document.content_hash}\0{index}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def check_embedding(info: CollectionInfo, embedding_model: str, dimension: int) -> CollectionInfo:
    """`info` when the collection was embedded with this model and dimension, else a clear
    `EmbeddingMismatch` (`create_collection` of an existing name)."""
    if (info.embedding_model, info.dimension) != (embedding_model, dimension):
        raise EmbeddingMismatch(
            f"collection {info.name!r} uses {info.embedding_model} ({info.dimension} dims), "
            f"not {embedding_model} ({dimension} dims)",
            code="embedding_mismatch",
        )
    return info


def check_upserts(collection: str, upserts: Sequence[DocumentUpsert]) -> None:
    """Every document of one `replace_documents` call belongs to `collection`."""
    for document, _, _ in upserts:
        if document.collection != collection:
            raise InvalidRequest(f"{document.source}: not a document of {collection!r}")


def chunk_vectors(document: DocumentRecord, count: int, vectors: Vector) -> Vector:
    """A document's vectors as a normalised float32 matrix of `count` rows, or `InvalidRequest`."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if count == 0 and matrix.size == 0:
        matrix = np.zeros((0, 0), dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise InvalidRequest(
            f"{document.source}: {count} chunks but vectors of shape {matrix.shape}"
        )
    return normalise(matrix)


def check_dimension(collection: str, dimension: int, got: int, what: str = "vectors") -> None:
    """`EmbeddingMismatch` unless `got` (the width of the vectors or query) is `dimension`."""
    if got != dimension:
        raise EmbeddingMismatch(
            f"collection {collection!r} holds {dimension}-dim vectors, got {got}-dim {what}",
            code="embedding_mismatch",
        )


def filter_items(filters: MetadataFilter | None) -> Iterator[tuple[str, list[Any]]]:
    """A metadata filter's keys, each with the values it accepts, checked."""
    for key, value in (filters or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidRequest(f"invalid filter key {key!r}", param="filters")
        options = list(value) if isinstance(value, list | tuple | set) else [value]
        if not all(isinstance(option, str | int | float | bool) for option in options):
            raise InvalidRequest(
                f"filter {key!r} must be a string, number, boolean or a list of those",
                param="filters",
            )
        yield key, options


def to_json(value: Mapping[str, Any], what: str) -> str:
    """`value` as JSON text; `InvalidRequest` naming `what` if it cannot be."""
    try:
        return json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{what} is not JSON: {exc}") from exc


def query_vector(vector: Vector) -> Vector:
    """A query embedding as one L2-normalised float32 row."""
    return normalise(np.asarray(vector, dtype=np.float32).reshape(-1))
