"""The Store contract, run against every backend (see `conftest.BACKENDS`).

Vectors are small and built here (one-hot or seeded random), so no model is involved.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from ragbridge.errors import Conflict, EmbeddingMismatch, InvalidRequest, NotFound, RagbridgeError
from ragbridge.store.base import ApiKeyRecord, DocumentRecord, NewChunk, Store, Vector

pytestmark = pytest.mark.anyio

DIM = 8
MODEL = "test-model"


def onehot(*axes: int, dim: int = DIM) -> Vector:
    """A unit vector spread evenly over `axes`."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[list(axes)] = 1.0
    return vector / np.linalg.norm(vector)


def random_vectors(count: int, seed: int, dim: int = DIM) -> Vector:
    matrix = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    unit: Vector = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return unit


def document(doc_id: str, content: str = "v1", collection: str = "docs") -> DocumentRecord:
    return DocumentRecord(
        id=doc_id, collection=collection, source=f"{doc_id}.txt", content_hash=content
    )


async def put(
    store: Store,
    doc_id: str,
    texts: Sequence[str],
    *,
    vectors: Vector | None = None,
    metadata: Sequence[dict[str, Any]] | None = None,
    content: str = "v1",
    collection: str = "docs",
) -> DocumentRecord:
    """Upsert a document whose chunks' keywords are their lower-cased texts."""
    chunks = [
        NewChunk(
            text=text,
            keywords=text.lower(),
            position=i,
            metadata=(metadata[i] if metadata else {"source": f"{doc_id}.txt"}),
        )
        for i, text in enumerate(texts)
    ]
    if vectors is None:
        vectors = random_vectors(len(texts), seed=zlib.crc32(f"{doc_id}/{content}".encode()))
    return await store.upsert_document(document(doc_id, content, collection), chunks, vectors)


@pytest.fixture
async def docs(store: Store) -> Store:
    """The store with an empty collection `docs`."""
    await store.create_collection("docs", MODEL, DIM)
    return store


# --- lifecycle and collections ---------------------------------------------------------------
async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_create_collection_records_model_and_dimension(store: Store) -> None:
    info = await store.create_collection("docs", MODEL, DIM, {"owner": "팀"})
    assert (info.name, info.embedding_model, info.dimension) == ("docs", MODEL, DIM)
    assert (info.document_count, info.chunk_count) == (0, 0)
    assert info.metadata == {"owner": "팀"}
    assert info.created_at > 0
    assert await store.get_collection("docs") == info


async def test_create_collection_is_idempotent(store: Store) -> None:
    first = await store.create_collection("docs", MODEL, DIM)
    again = await store.create_collection("docs", MODEL, DIM)
    assert again == first
    assert [c.name for c in await store.list_collections()] == ["docs"]


@pytest.mark.parametrize(("model", "dimension"), [("other-model", DIM), (MODEL, DIM * 2)])
async def test_create_collection_with_another_embedding_is_refused(
    store: Store, model: str, dimension: int
) -> None:
    await store.create_collection("docs", MODEL, DIM)
    with pytest.raises(EmbeddingMismatch) as caught:
        await store.create_collection("docs", model, dimension)
    assert caught.value.status == 409
    assert MODEL in caught.value.message


async def test_missing_collection_is_none(store: Store) -> None:
    assert await store.get_collection("nope") is None
    assert await store.list_documents("nope") == []
    assert await store.get_document("nope", "a") is None


async def test_list_collections_sorted_with_counts(docs: Store) -> None:
    await docs.create_collection("alpha", MODEL, DIM)
    await put(docs, "a", ["one", "two", "three"])
    await put(docs, "b", ["four"])
    listed = await docs.list_collections()
    assert [c.name for c in listed] == ["alpha", "docs"]
    assert (listed[0].document_count, listed[0].chunk_count) == (0, 0)
    assert (listed[1].document_count, listed[1].chunk_count) == (2, 4)


async def test_delete_collection_removes_everything(docs: Store) -> None:
    await put(docs, "a", ["apple pie"], vectors=onehot(0)[None, :])
    await docs.create_collection("other", MODEL, DIM)
    await put(docs, "b", ["apple tart"], vectors=onehot(0)[None, :], collection="other")

    assert await docs.delete_collection("docs") is True
    assert await docs.delete_collection("docs") is False
    assert await docs.get_collection("docs") is None
    with pytest.raises(NotFound):
        await docs.dense_search("docs", onehot(0), 5)
    with pytest.raises(NotFound):
        await docs.keyword_search("docs", ["apple"], 5)

    # Re-created under the same name, it starts empty: no chunk, vector or FTS row survived.
    await docs.create_collection("docs", MODEL, DIM)
    assert await docs.list_documents("docs") == []
    assert await docs.dense_search("docs", onehot(0), 5) == []
    assert await docs.keyword_search("docs", ["apple"], 5) == []
    # The other collection is untouched.
    hits = await docs.keyword_search("other", ["apple"], 5)
    assert [h.chunk.text for h in hits] == ["apple tart"]
    assert len(await docs.dense_search("other", onehot(0), 5)) == 1


# --- documents -------------------------------------------------------------------------------
async def test_upsert_stores_document_and_chunks(docs: Store) -> None:
    stored = await put(docs, "a", ["first chunk", "second chunk"])
    assert stored.chunk_count == 2
    assert stored.collection == "docs"
    assert stored.created_at > 0
    assert stored.updated_at >= stored.created_at
    assert await docs.get_document("docs", "a") == stored
    assert await docs.list_documents("docs") == [stored]
    info = await docs.get_collection("docs")
    assert info is not None and (info.document_count, info.chunk_count) == (1, 2)


async def test_upsert_into_missing_collection_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await put(store, "a", ["text"])


async def test_reupsert_replaces_chunks_in_dense_and_keyword_results(docs: Store) -> None:
    first = await put(
        docs, "a", ["old banana", "old cherry"], vectors=np.stack([onehot(0), onehot(1)])
    )
    old_ids = [h.chunk.id for h in await docs.dense_search("docs", onehot(0), 10)]

    second = await put(docs, "a", ["new durian"], vectors=onehot(2)[None, :], content="v2")
    assert second.chunk_count == 1
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert (await docs.get_document("docs", "a")) == second

    dense = await docs.dense_search("docs", onehot(0), 10)
    assert [h.chunk.text for h in dense] == ["new durian"]
    assert await docs.keyword_search("docs", ["banana", "cherry", "old"], 10) == []
    assert [h.chunk.text for h in await docs.keyword_search("docs", ["durian"], 10)] == [
        "new durian"
    ]
    assert await docs.get_chunks("docs", old_ids) == []
    info = await docs.get_collection("docs")
    assert info is not None and (info.document_count, info.chunk_count) == (1, 1)


async def test_delete_document_removes_its_chunks_only(docs: Store) -> None:
    await put(docs, "a", ["shared word alpha"], vectors=onehot(0)[None, :])
    await put(docs, "b", ["shared word beta"], vectors=onehot(0, 1)[None, :])

    assert await docs.delete_document("docs", "a") is True
    assert await docs.delete_document("docs", "a") is False
    assert await docs.delete_document("nope", "b") is False
    assert await docs.get_document("docs", "a") is None
    assert [d.id for d in await docs.list_documents("docs")] == ["b"]
    dense = await docs.dense_search("docs", onehot(0), 10)
    assert [h.chunk.document_id for h in dense] == ["b"]
    keyword = await docs.keyword_search("docs", ["shared", "alpha"], 10)
    assert [h.chunk.document_id for h in keyword] == ["b"]


async def test_get_chunks_keeps_requested_order_and_skips_missing(docs: Store) -> None:
    texts = ["zero", "one", "two", "three"]
    meta = [{"page": i, "name": "안내서.pdf"} for i in range(4)]
    await put(docs, "a", texts, metadata=meta)
    hits = await docs.keyword_search("docs", texts, 10)
    by_text = {h.chunk.text: h.chunk for h in hits}
    wanted = [by_text["two"].id, "missing", by_text["zero"].id, by_text["three"].id]

    chunks = await docs.get_chunks("docs", wanted)
    assert [c.text for c in chunks] == ["two", "zero", "three"]
    assert [c.position for c in chunks] == [2, 0, 3]
    assert chunks[0].metadata == {"page": 2, "name": "안내서.pdf"}
    assert {c.document_id for c in chunks} == {"a"}
    assert {c.collection for c in chunks} == {"docs"}
    assert await docs.get_chunks("other", wanted) == []


# --- dense search ----------------------------------------------------------------------------
async def test_dense_search_ranks_by_cosine_best_first(docs: Store) -> None:
    # "opposite" (cosine -1) ranks last for sure: an HNSW graph breaks ties in any order.
    vectors = np.stack([onehot(0), onehot(0, 1), onehot(1), -onehot(0)])
    await put(docs, "a", ["exact", "half", "orthogonal", "opposite"], vectors=vectors)
    hits = await docs.dense_search("docs", onehot(0) * 3.0, 3)  # length does not matter
    assert [h.chunk.text for h in hits] == ["exact", "half", "orthogonal"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    assert hits[2].score == pytest.approx(0.0, abs=1e-5)


async def test_dense_search_top_k(docs: Store) -> None:
    await put(docs, "a", [f"chunk {i}" for i in range(30)], vectors=random_vectors(30, seed=1))
    query = random_vectors(1, seed=2)[0]
    hits = await docs.dense_search("docs", query, 7)
    assert len(hits) == 7
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    everything = await docs.dense_search("docs", query, 100)
    assert len(everything) == 30
    assert [h.chunk.id for h in everything[:7]] == [h.chunk.id for h in hits]
    expected = np.sort(random_vectors(30, seed=1) @ query)[::-1]
    assert [h.score for h in everything] == pytest.approx(expected.tolist(), abs=1e-5)


async def test_dense_search_with_wrong_dimension_is_refused(docs: Store) -> None:
    await put(docs, "a", ["text"])
    with pytest.raises(EmbeddingMismatch):
        await docs.dense_search("docs", onehot(0, dim=DIM * 2), 5)


async def test_search_unknown_collection_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.dense_search("nope", onehot(0), 5)
    with pytest.raises(NotFound):
        await store.keyword_search("nope", ["x"], 5)


# --- keyword search --------------------------------------------------------------------------
async def test_keyword_search_ranks_by_bm25(docs: Store) -> None:
    await put(docs, "a", [
        "rare rare rare common",
        "rare common common common",
        "common filler words only",
        *(f"unrelated filler text number {i}" for i in range(12)),  # so both terms are rare
    ])  # fmt: skip
    hits = await docs.keyword_search("docs", ["rare", "common"], 10)
    assert [h.chunk.text for h in hits] == [
        "rare rare rare common",
        "rare common common common",
        "common filler words only",
    ]
    assert hits[0].score > hits[1].score > hits[2].score > 0
    assert len(await docs.keyword_search("docs", ["rare", "common"], 2)) == 2


async def test_keyword_search_matches_korean_terms(docs: Store) -> None:
    await put(docs, "a", ["서울 날씨 맑음", "부산 날씨 흐림", "서울 맛집 추천"])
    hits = await docs.keyword_search("docs", ["서울"], 10)
    assert sorted(h.chunk.text for h in hits) == ["서울 날씨 맑음", "서울 맛집 추천"]
    both = await docs.keyword_search("docs", ["서울", "맑음"], 10)
    assert both[0].chunk.text == "서울 날씨 맑음"
    assert await docs.keyword_search("docs", ["서"], 10) == []  # whole terms, not prefixes


async def test_keyword_search_without_matches_or_terms_is_empty(docs: Store) -> None:
    await put(docs, "a", ["some words"])
    assert await docs.keyword_search("docs", ["absent"], 5) == []
    assert await docs.keyword_search("docs", [], 5) == []


@pytest.mark.parametrize(
    "terms", [['"'], ["AND"], ["NEAR(", ")"], ["c++"], ["a*"], ["-x"], ["col:x"], ["''"]]
)
async def test_keyword_search_treats_terms_as_text_not_syntax(
    docs: Store, terms: list[str]
) -> None:
    await put(docs, "a", ["and or not near col x"])
    hits = await docs.keyword_search("docs", terms, 5)
    assert all(h.chunk.document_id == "a" for h in hits)


# --- filters ---------------------------------------------------------------------------------
@pytest.fixture
async def filtered(docs: Store) -> Store:
    meta: list[dict[str, Any]] = [
        {"source": "guide.pdf", "page": 1, "public": True},
        {"source": "guide.pdf", "page": 2, "public": False},
        {"source": "faq.md", "page": 1, "public": True},
        {"source": "안내.txt"},
    ]
    texts = ["topic one", "topic two", "topic three", "topic four"]
    await put(docs, "a", texts, vectors=np.stack([onehot(0)] * 4), metadata=meta)
    return docs


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"source": "guide.pdf"}, {"topic one", "topic two"}),
        ({"source": ["faq.md", "안내.txt"]}, {"topic three", "topic four"}),
        ({"source": "guide.pdf", "page": 2}, {"topic two"}),
        ({"page": [1]}, {"topic one", "topic three"}),
        ({"public": True}, {"topic one", "topic three"}),
        ({"public": False}, {"topic two"}),
        ({"source": "missing.pdf"}, set()),
        ({"absent_key": "x"}, set()),
        ({"source": []}, set()),
    ],
)
async def test_filters_apply_to_dense_and_keyword(
    filtered: Store, filters: dict[str, Any], expected: set[str]
) -> None:
    dense = await filtered.dense_search("docs", onehot(0), 10, filters=filters)
    keyword = await filtered.keyword_search("docs", ["topic"], 10, filters=filters)
    assert {h.chunk.text for h in dense} == expected
    assert {h.chunk.text for h in keyword} == expected


async def test_filters_respect_top_k(filtered: Store) -> None:
    hits = await filtered.dense_search("docs", onehot(0), 1, filters={"page": 1})
    assert len(hits) == 1 and hits[0].chunk.metadata["page"] == 1


# --- atomicity and concurrency ---------------------------------------------------------------
async def test_failed_upserts_leave_old_version_intact(docs: Store) -> None:
    original = await put(docs, "a", ["original kiwi"], vectors=onehot(3)[None, :])

    def new_chunks(count: int, meta: dict[str, Any] | None = None) -> list[NewChunk]:
        return [NewChunk(f"new mango {i}", "new mango", i, meta or {}) for i in range(count)]

    bad_calls: list[tuple[type[RagbridgeError], list[NewChunk], Vector]] = [
        (InvalidRequest, new_chunks(3), random_vectors(2, seed=3)),  # row count
        (EmbeddingMismatch, new_chunks(2), random_vectors(2, seed=3, dim=DIM + 1)),  # dimension
        (InvalidRequest, new_chunks(2, {"bad": object()}), random_vectors(2, seed=3)),  # JSON
    ]
    for error, chunks, vectors in bad_calls:
        with pytest.raises(error):
            await docs.upsert_document(document("a", "v2"), chunks, vectors)

    assert await docs.get_document("docs", "a") == original
    assert await docs.keyword_search("docs", ["mango"], 5) == []
    hits = await docs.keyword_search("docs", ["kiwi"], 5)
    assert [h.chunk.text for h in hits] == ["original kiwi"]
    dense = await docs.dense_search("docs", onehot(3), 5)
    assert [h.chunk.text for h in dense] == ["original kiwi"]


async def test_concurrent_upserts_all_land(docs: Store) -> None:
    count = 12

    async def write(i: int) -> DocumentRecord:
        return await put(docs, f"doc{i}", [f"doc{i} part{j} shared" for j in range(i % 4 + 1)])

    async def read() -> int:
        return len(await docs.keyword_search("docs", ["shared"], 100))

    results = await asyncio.gather(*(write(i) for i in range(count)), *(read() for _ in range(4)))
    stored = [r for r in results if isinstance(r, DocumentRecord)]
    assert len(stored) == count
    expected_chunks = sum(i % 4 + 1 for i in range(count))
    info = await docs.get_collection("docs")
    assert info is not None and (info.document_count, info.chunk_count) == (count, expected_chunks)
    assert len(await docs.keyword_search("docs", ["shared"], 100)) == expected_chunks
    assert len(await docs.dense_search("docs", onehot(0), 100)) == expected_chunks


# --- API keys --------------------------------------------------------------------------------
async def test_api_keys_save_find_list_revoke(store: Store) -> None:
    admin = ApiKeyRecord("admin", "hash-a", None, None, None, 100.0)
    scoped = ApiKeyRecord("team", "hash-t", ("docs", "문서"), 60, 10_000, 200.0)
    await store.save_api_key(admin)
    await store.save_api_key(scoped)

    assert await store.find_api_key("hash-t") == scoped
    assert await store.find_api_key("hash-a") == admin
    assert await store.find_api_key("unknown") is None
    assert [k.name for k in await store.list_api_keys()] == ["admin", "team"]

    with pytest.raises(Conflict):
        await store.save_api_key(ApiKeyRecord("team", "hash-other"))

    assert await store.revoke_api_key("team") is True
    assert await store.revoke_api_key("team") is False
    assert await store.revoke_api_key("nobody") is False
    assert await store.find_api_key("hash-t") is None
    listed = {k.key_hash: k for k in await store.list_api_keys()}
    assert listed["hash-t"].revoked is True

    # A revoked key's name can be given to a new key.
    await store.save_api_key(ApiKeyRecord("team", "hash-t2", ("docs",), created_at=300.0))
    found = await store.find_api_key("hash-t2")
    assert found is not None and found.collections == ("docs",)


def chunks_of(*texts: str) -> list[NewChunk]:
    return [NewChunk(text, text.lower(), i, {}) for i, text in enumerate(texts)]


async def test_replace_documents_writes_and_deletes_in_one_go(docs: Store) -> None:
    """The records of one file: two upserted, one deleted, one call."""
    for doc_id in ("a", "b", "r1"):
        await put(docs, doc_id, [f"text of {doc_id}"])
    stored = await docs.replace_documents(
        "docs",
        [
            (document("r1", "v2"), chunks_of("첫 번째 기록", "more"), random_vectors(2, 1)),
            (document("r3", "v1"), chunks_of("third record"), random_vectors(1, 2)),
        ],
        ["b"],
    )
    assert [(r.id, r.chunk_count) for r in stored] == [("r1", 2), ("r3", 1)]
    ids = {d.id for d in await docs.list_documents("docs")}
    assert "b" not in ids and {"a", "r1", "r3"} <= ids
    hits = await docs.keyword_search("docs", ["첫"], 5)
    assert [h.chunk.document_id for h in hits] == ["r1"]


async def test_replace_documents_failing_halfway_leaves_nothing_of_it(docs: Store) -> None:
    """A record that cannot be stored (wrong dimension) after good ones: none of the file's
    records are written, the deletes do not happen, the earlier version stays searchable."""
    for doc_id in ("a", "b"):
        await put(docs, doc_id, [f"text of {doc_id}"])
    before = {d.id: d.content_hash for d in await docs.list_documents("docs")}
    with pytest.raises(RagbridgeError):
        await docs.replace_documents(
            "docs",
            [
                (document("a", "v9"), chunks_of("new a"), random_vectors(1, 3)),
                (document("new", "v1"), chunks_of("new doc"), random_vectors(1, 4)),
                (document("bad", "v1"), chunks_of("bad"), random_vectors(1, 5, dim=DIM + 1)),
            ],
            ["b"],
        )
    after = {d.id: d.content_hash for d in await docs.list_documents("docs")}
    assert after == before
    assert await docs.keyword_search("docs", ["new"], 5) == []
    assert {h.chunk.document_id for h in await docs.dense_search("docs", onehot(0), 10)} == set(
        before
    )
