"""The ingest pipeline end to end on the real embedded store with the real local model: add,
idempotent re-ingest, update, stale records, failures that leave the store as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.errors import DocumentError, EmbeddingMismatch, UnsupportedMediaType
from ragbridge.ingest.chunks import document_id
from ragbridge.ingest.files import SourceFile, discover
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.retrieval.analyzer import analyze
from ragbridge.store.base import ChunkRecord
from ragbridge.store.sqlite import SqliteStore
from tests.support import documents as generated
from tests.support.progress import Recorder

pytestmark = pytest.mark.anyio

PipelineFactory = Callable[..., IngestPipeline]


async def stored_chunks(
    store: SqliteStore, embedder: Embedder, collection: str, source: str
) -> list[ChunkRecord]:
    """All chunks of the document `source`, by position (a filtered dense search for anything)."""
    query = await embedder.embed_query("anything")
    hits = await store.dense_search(collection, query, 10_000, filters={"source": source})
    return sorted((hit.chunk for hit in hits), key=lambda chunk: chunk.position)


async def test_a_folder_of_every_format_is_added_with_pages_and_headings(
    make_pipeline: PipelineFactory, store: SqliteStore, embedder: Embedder, tmp_path: Path
) -> None:
    generated.write_corpus(tmp_path / "docs")
    pipeline = make_pipeline()
    found = discover([tmp_path / "docs"])
    recorder = Recorder()
    results = await pipeline.ingest_files("kb", found.files, progress=recorder)

    assert {r.source: r.status for r in results} == dict.fromkeys(generated.good_files(), "added")
    assert recorder.chunks == sum(r.chunks for r in results) > 0
    assert sorted(r.source for r in recorder.files) == sorted(generated.good_files())
    info = await store.get_collection("kb")
    assert info is not None
    assert info.embedding_model == embedder.name == "all-MiniLM-L6-v2"
    assert info.dimension == 384
    assert info.document_count == 8 + 3 + 3 + 3  # one per plain file, one per record or row
    assert info.chunk_count == recorder.chunks

    pdf = await stored_chunks(store, embedder, "kb", "manual.pdf")
    pages = [chunk.metadata["page"] for chunk in pdf]
    assert pages[:3] == [0, 1, 2]  # one chunk per short English page
    # The generator adds a Korean page (index 3, Hangul font from scripts/install-test-deps).
    assert generated.korean_font_path(), "no Hangul font (scripts/install-test-deps installs one)"
    assert set(pages[3:]) == {3}
    assert pdf[1].metadata["name"] == "manual.pdf"
    assert pdf[1].metadata["title"] == "Aurora valve manual"
    docx = await stored_chunks(store, embedder, "kb", "guide.docx")
    assert ["Maintenance", "유지 보수 (한국어)"] in [c.metadata.get("headings") for c in docx]
    sku = await stored_chunks(store, embedder, "kb", "catalogue.json#SKU003")
    assert sku[0].text.startswith("SKU003\n초록색 울 스웨터")


async def test_stored_chunks_are_found_by_meaning_and_by_korean_keywords(
    make_pipeline: PipelineFactory, store: SqliteStore, embedder: Embedder, tmp_path: Path
) -> None:
    generated.write_corpus(tmp_path / "docs")
    await make_pipeline().ingest_files("kb", discover([tmp_path / "docs"]).files)

    query = await embedder.embed_query("Who handles warranty claims for the valve?")
    best = (await store.dense_search("kb", query, 1))[0].chunk
    assert best.metadata["source"] == "manual.pdf" and best.metadata["page"] == 1

    hits = await store.keyword_search("kb", analyze("한라산 높이"), 3)
    assert hits[0].chunk.metadata["source"] == "notes/hallasan.txt"
    hits = await store.keyword_search("kb", analyze("경복궁 창건"), 3)
    assert hits[0].chunk.metadata["source"] == "notes/gyeongbokgung-cp949.txt"


async def test_reingesting_unchanged_files_does_nothing(
    make_pipeline: PipelineFactory, store: SqliteStore, tmp_path: Path
) -> None:
    generated.write_corpus(tmp_path / "docs")
    files = discover([tmp_path / "docs"]).files
    pipeline = make_pipeline()
    first = await pipeline.ingest_files("kb", files)
    before = {d.id: d for d in await store.list_documents("kb")}

    again = await make_pipeline().ingest_files("kb", files)

    assert [r.status for r in again] == ["unchanged"] * len(files)
    assert all(r.chunks == 0 for r in again)
    assert {d.id: d for d in await store.list_documents("kb")} == before  # not even touched
    assert [[d.id for d in r.documents] for r in again] == [
        [d.id for d in r.documents] for r in first
    ]


async def test_a_changed_file_replaces_its_chunks(
    make_pipeline: PipelineFactory, store: SqliteStore, embedder: Embedder, tmp_path: Path
) -> None:
    path = tmp_path / "quokka.txt"
    path.write_bytes(generated.english_text_bytes())
    pipeline = make_pipeline(chunk_size=40, chunk_overlap=0)
    added = await pipeline.ingest_bytes("kb", path.name, path.read_bytes())
    assert added.status == "added" and added.chunks > 2
    old_id = added.documents[0].id

    path.write_text("Quokkas were renamed. Only one short paragraph about wombats remains.")
    updated = await pipeline.ingest_bytes("kb", path.name, path.read_bytes())

    assert updated.status == "updated"
    assert updated.chunks == 1
    assert updated.documents[0].id == old_id
    assert updated.documents[0].chunk_count == 1
    chunks = await stored_chunks(store, embedder, "kb", "quokka.txt")
    assert [c.text for c in chunks] == [path.read_text()]
    assert await store.keyword_search("kb", analyze("Rottnest ferries Fremantle"), 5) == []
    info = await store.get_collection("kb")
    assert info is not None and (info.document_count, info.chunk_count) == (1, 1)


async def test_changed_records_are_re_embedded_alone_and_vanished_ones_deleted(
    make_pipeline: PipelineFactory, store: SqliteStore, tmp_path: Path
) -> None:
    path = tmp_path / "catalogue.json"
    path.write_bytes(generated.catalogue_json_bytes())
    pipeline = make_pipeline()
    assert (await pipeline.ingest_bytes("kb", path.name, path.read_bytes())).chunks == 3
    untouched = await store.get_document("kb", document_id("kb", "catalogue.json#SKU001"))

    catalogue = dict(generated.CATALOGUE)
    catalogue["SKU002"] = "Blue denim jacket, now with a detachable hood."
    del catalogue["SKU003"]
    catalogue["SKU004"] = "Yellow rain boots with a non-slip sole."
    path.write_text(json.dumps(catalogue))
    result = await pipeline.ingest_bytes("kb", path.name, path.read_bytes())

    assert result.status == "updated"
    assert result.chunks == 2  # SKU002 changed, SKU004 new; SKU001 kept its vectors
    assert result.removed == 1
    assert [d.source for d in result.documents] == [
        "catalogue.json#SKU001",
        "catalogue.json#SKU002",
        "catalogue.json#SKU004",
    ]
    stored = {d.source: d for d in await store.list_documents("kb")}
    assert sorted(stored) == [d.source for d in result.documents]
    assert stored["catalogue.json#SKU001"] == untouched


async def test_one_bad_file_among_good_ones_fails_alone_with_its_reason(
    make_pipeline: PipelineFactory, store: SqliteStore, tmp_path: Path
) -> None:
    good = generated.write_files(tmp_path / "in", {"a.txt": generated.english_text_bytes()})
    bad = generated.write_bad_files(tmp_path / "in")
    files = [SourceFile(path, name) for name, path in {**bad, **good}.items()]
    files.append(SourceFile(tmp_path / "in" / "missing.md", "missing.md"))

    results = await make_pipeline(ingest_workers=3).ingest_files("kb", files)

    by_source = {r.source: r for r in results}
    assert [r.source for r in results] == [f.source for f in files]  # order kept
    assert by_source["a.txt"].status == "added"
    reasons = {
        "broken.pdf": ("DocumentError", "corrupt or unreadable PDF"),
        "locked.pdf": ("DocumentError", "the PDF is encrypted"),
        "empty.txt": ("DocumentError", "the file is empty"),
        "image.png": ("UnsupportedMediaType", "unsupported file type"),
        "missing.md": ("DocumentError", "no such file"),
    }
    for source, (kind, reason) in reasons.items():
        result = by_source[source]
        assert (result.status, result.error_type, result.chunks) == ("failed", kind, 0)
        assert result.error is not None and result.error.startswith(reason)
    assert [d.source for d in await store.list_documents("kb")] == ["a.txt"]


async def test_a_failed_update_leaves_the_previous_version_in_place(
    make_pipeline: PipelineFactory, store: SqliteStore, embedder: Embedder, tmp_path: Path
) -> None:
    pipeline = make_pipeline()
    await pipeline.ingest_bytes("kb", "manual.pdf", generated.pdf_bytes())
    before = await store.list_documents("kb")
    chunks_before = await stored_chunks(store, embedder, "kb", "manual.pdf")

    with pytest.raises(DocumentError) as caught:
        await pipeline.ingest_bytes("kb", "manual.pdf", generated.corrupt_pdf_bytes())
    assert caught.value.status == 422

    assert await store.list_documents("kb") == before
    assert await stored_chunks(store, embedder, "kb", "manual.pdf") == chunks_before


async def test_uploads_raise_domain_errors_and_write_nothing(
    make_pipeline: PipelineFactory, store: SqliteStore
) -> None:
    pipeline = make_pipeline()
    with pytest.raises(UnsupportedMediaType, match=r"^image\.png: unsupported file type"):
        await pipeline.ingest_bytes("kb", "image.png", generated.png_bytes())
    with pytest.raises(DocumentError, match=r"^locked\.pdf: the PDF is encrypted"):
        await pipeline.ingest_bytes("kb", "locked.pdf", generated.encrypted_pdf_bytes())
    assert await store.list_documents("kb") == []

    result = await pipeline.ingest_bytes("kb", "upload.md", generated.markdown_bytes())
    assert result.status == "added" and result.documents[0].source == "upload.md"


async def test_a_collection_of_another_model_is_a_clear_error(
    make_pipeline: PipelineFactory, store: SqliteStore
) -> None:
    await store.create_collection("kb", "text-embedding-3-small", 1536)
    with pytest.raises(EmbeddingMismatch) as caught:
        await make_pipeline().ingest_bytes("kb", "a.txt", generated.english_text_bytes())
    assert caught.value.status == 409
    assert await store.list_documents("kb") == []


async def test_new_chunk_settings_re_split_unchanged_files(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    path = tmp_path / "hallasan.txt"
    path.write_bytes(generated.korean_text_bytes())
    data = path.read_bytes()
    coarse = await make_pipeline(chunk_size=200).ingest_bytes("kb", path.name, data)
    fine = await make_pipeline(chunk_size=30, chunk_overlap=5).ingest_bytes("kb", path.name, data)
    assert (coarse.status, fine.status) == ("added", "updated")
    assert fine.documents[0].chunk_count > coarse.documents[0].chunk_count
    again = await make_pipeline(chunk_size=30, chunk_overlap=5).ingest_bytes("kb", path.name, data)
    assert again.status == "unchanged"


async def test_a_deleted_document_is_added_again(
    make_pipeline: PipelineFactory, store: SqliteStore
) -> None:
    pipeline = make_pipeline()
    added = await pipeline.ingest_bytes("kb", "a.txt", generated.english_text_bytes())
    assert await store.delete_document("kb", added.documents[0].id)
    again = await pipeline.ingest_bytes("kb", "a.txt", generated.english_text_bytes())
    assert again.status == "added"
    assert again.documents[0].id == added.documents[0].id


def test_document_ids_are_stable_and_depend_on_collection_and_source() -> None:
    assert document_id("kb", "a.txt") == document_id("kb", "a.txt")
    assert (
        len({document_id("kb", "a.txt"), document_id("kb2", "a.txt"), document_id("kb", "b")}) == 3
    )


def test_folder_walks_take_known_types_and_skip_hidden_files(tmp_path: Path) -> None:
    generated.write_files(
        tmp_path / "docs",
        {
            "a.md": b"# A",
            "sub/b.txt": b"b",
            "sub/c.png": generated.png_bytes(),
            ".git/config.txt": b"x",
            "sub/.hidden.md": b"x",
        },
    )
    (tmp_path / "single.bin").write_bytes(b"text")
    found = discover([tmp_path / "docs", tmp_path / "single.bin", tmp_path / "docs" / "a.md"])
    assert [f.source for f in found.files] == ["a.md", "sub/b.txt", "single.bin"]
    assert [p.name for p in found.skipped] == ["c.png"]
