"""`ragbridge copy`: collections move between the embedded store and PostgreSQL, verified."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ragbridge.errors import Conflict
from ragbridge.retrieval.analyzer import analyze
from ragbridge.settings import Settings
from ragbridge.store.base import CollectionInfo, DocumentRecord, NewChunk, Store, Vector
from ragbridge.store.postgres import PostgresStore
from ragbridge.store.sqlite import SqliteStore
from ragbridge.store.transfer import (
    Endpoint,
    SqliteExporter,
    TransferError,
    copy_collection,
    copy_stores,
)
from tests.support.cli import run_ragbridge

pytestmark = [pytest.mark.postgres]

DIM = 12
TEXTS = {
    "handbook": [
        ("vacation.md", ["Employees get 25 vacation days.", "Unused days carry over to March."]),
        ("security.md", ["Lock your screen when you leave.", "Report phishing to IT at once."]),
        ("payroll.md", ["Salaries are paid on the 25th.", "Expenses are refunded monthly."]),
    ],
    "위키": [
        ("휴가.md", ["직원은 연차 휴가를 25일 받습니다.", "남은 휴가는 3월까지 이월됩니다."]),
        ("보안.md", ["자리를 비울 때 화면을 잠그세요.", "피싱 메일은 즉시 신고하세요."]),
    ],
}


def unit_rows(count: int, seed: int) -> Vector:
    matrix = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


async def fill(store: Store) -> None:
    for seed, (collection, documents) in enumerate(TEXTS.items()):
        await store.create_collection(collection, "test-model", DIM, {"owner": "team"})
        for index, (source, texts) in enumerate(documents):
            document = DocumentRecord(f"{collection}-{index}", collection, source, f"h{index}")
            chunks = [
                NewChunk(text, " ".join(analyze(text)), position, {"source": source, "page": 1})
                for position, text in enumerate(texts)
            ]
            await store.upsert_document(document, chunks, unit_rows(len(chunks), seed * 10 + index))


def make_embedded(data_dir: Path) -> None:
    async def run() -> None:
        store = SqliteStore(data_dir / "ragbridge.db")
        await store.open()
        try:
            await fill(store)
        finally:
            await store.close()

    asyncio.run(run())


def ragbridge(*args: str, data_dir: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAGBRIDGE_DATA_DIR": str(data_dir), "RAGBRIDGE_DATABASE_URL": url}
    return run_ragbridge(*args, env=env, timeout=120)


def collection_rows(infos: list[CollectionInfo]) -> list[tuple[object, ...]]:
    return [
        (c.name, c.embedding_model, c.dimension, c.document_count, c.chunk_count, c.metadata)
        for c in infos
    ]


def document_rows(records: list[DocumentRecord]) -> list[tuple[object, ...]]:
    return [(d.id, d.source, d.content_hash, d.title, d.metadata, d.chunk_count) for d in records]


async def same_answers(one: Store, other: Store) -> None:
    """Both stores hold the same collections and documents, and rank searches alike."""
    assert collection_rows(await one.list_collections()) == collection_rows(
        await other.list_collections()
    )
    for collection in TEXTS:
        assert document_rows(await one.list_documents(collection)) == document_rows(
            await other.list_documents(collection)
        )
        for terms in (analyze("vacation days"), analyze("휴가 신고"), analyze("screen")):
            # Same matches; scores differ, as FTS5 takes BM25 statistics over every collection
            # in the file, PostgreSQL over the one collection.
            hits_one = await one.keyword_search(collection, terms, 5)
            hits_other = await other.keyword_search(collection, terms, 5)
            assert {h.chunk.id for h in hits_one} == {h.chunk.id for h in hits_other}
        query = unit_rows(1, 99)[0]
        dense_one = await one.dense_search(collection, query, 3, {"page": 1})
        dense_other = await other.dense_search(collection, query, 3, {"page": 1})
        assert [h.chunk for h in dense_one] == [h.chunk for h in dense_other]


def test_cli_copies_sqlite_to_postgres_and_back(tmp_path: Path, postgres_url: str) -> None:
    data_dir = tmp_path / "data"
    make_embedded(data_dir)

    result = ragbridge("copy", "--from", "sqlite", "--to", "postgres", data_dir=data_dir,
                       url=postgres_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "copied handbook: 3 documents, 6 chunks, 6 vectors (verified)" in result.stdout
    assert "copied 위키: 2 documents, 4 chunks, 4 vectors (verified)" in result.stdout

    back_dir = tmp_path / "back"
    result = ragbridge("copy", "--from", "postgres", "--to", str(back_dir), "-c", "위키",
                       data_dir=data_dir, url=postgres_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "copied 위키: 2 documents, 4 chunks, 4 vectors (verified)" in result.stdout

    async def compare() -> None:
        embedded, postgres = SqliteStore(data_dir / "ragbridge.db"), PostgresStore(postgres_url)
        back = SqliteStore(back_dir / "ragbridge.db")
        for store in (embedded, postgres, back):
            await store.open()
        try:
            await same_answers(embedded, postgres)
            assert [c.name for c in await back.list_collections()] == ["위키"]
            assert document_rows(await back.list_documents("위키")) == document_rows(
                await embedded.list_documents("위키")
            )
        finally:
            for store in (embedded, postgres, back):
                await store.close()

    asyncio.run(compare())


def test_copy_refuses_a_non_empty_target_unless_overwriting(
    tmp_path: Path, postgres_url: str
) -> None:
    data_dir = tmp_path / "data"
    make_embedded(data_dir)
    settings = Settings(data_dir=data_dir, database_url=postgres_url)

    async def run() -> None:
        postgres = PostgresStore(postgres_url)
        await postgres.open()
        try:
            await postgres.create_collection("handbook", "test-model", DIM)
            stale = DocumentRecord("stale", "handbook", "old.md", "h")
            await postgres.upsert_document(stale, [NewChunk("old", "old", 0)], unit_rows(1, 5))
        finally:
            await postgres.close()
        with pytest.raises(Conflict, match=r"already has 1 documents.*--overwrite"):
            await copy_stores("sqlite", "postgres", settings, collections=["handbook"])
        lines: list[str] = []
        copied = await copy_stores("sqlite", "postgres", settings, collections=["handbook"],
                                   overwrite=True, report=lines.append)  # fmt: skip
        assert str(copied["handbook"]) == "3 documents, 6 chunks, 6 vectors"
        assert lines == ["copied handbook: 3 documents, 6 chunks, 6 vectors (verified)"]

    asyncio.run(run())


def test_a_copy_that_loses_a_chunk_does_not_verify(tmp_path: Path, postgres_url: str) -> None:
    data_dir = tmp_path / "data"
    make_embedded(data_dir)

    class DroppingExporter(SqliteExporter):
        """Loses the last chunk of every document, as a broken copy would."""

        async def export_document(
            self, collection: str, document_id: str
        ) -> tuple[list[NewChunk], Vector]:
            chunks, vectors = await super().export_document(collection, document_id)
            return chunks[:-1], vectors[:-1]

    async def run() -> None:
        path = data_dir / "ragbridge.db"
        embedded, postgres = SqliteStore(path), PostgresStore(postgres_url)
        await embedded.open()
        await postgres.open()
        try:
            source = Endpoint(embedded, DroppingExporter(path), "embedded")
            target = Endpoint(postgres, postgres, "PostgreSQL")
            with pytest.raises(TransferError, match="copied 3 documents, 3 chunks"):
                await copy_collection(source, target, "handbook")
        finally:
            await embedded.close()
            await postgres.close()

    asyncio.run(run())


def test_copy_needs_an_existing_source(tmp_path: Path, postgres_url: str) -> None:
    result = ragbridge("copy", "--from", str(tmp_path / "nowhere"), "--to", "postgres",
                       data_dir=tmp_path, url=postgres_url)  # fmt: skip
    assert result.returncode == 1
    assert "no embedded store" in result.stderr
