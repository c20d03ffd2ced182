"""Keyword search per collection: BM25 statistics are each collection's own (every backend),
and the embedded store's files from before (one file-wide FTS table) migrate on open."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from ragbridge.store.base import DocumentRecord, NewChunk, Store
from ragbridge.store.sqlite import SqliteStore
from tests.support.stores import opened

pytestmark = pytest.mark.anyio

DIM = 4
SCHEMA_1 = Path(__file__).with_name("sqlite_schema_v1.sql")

KOREAN = ["서울 날씨 맑음 서울", "부산 날씨 흐림 비", "서울 지하철 노선", "제주 바다 날씨"]
ENGLISH = ["apple banana apple", "banana cherry", "cherry date elder", "날씨 apple"]


def vectors(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normed: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normed


async def write(store: Store, collection: str, texts: list[str], *, prefix: str = "d") -> None:
    await store.create_collection(collection, "m", DIM)
    for i, text in enumerate(texts):
        doc = DocumentRecord(f"{prefix}{i}", collection, f"{prefix}{i}.txt", "h")
        await store.upsert_document(doc, [NewChunk(text, text, 0)], vectors(1, i))


async def scores(store: Store, collection: str, terms: list[str]) -> dict[str, float]:
    hits = await store.keyword_search(collection, terms, 20)
    return {hit.chunk.text: hit.score for hit in hits}


async def test_keyword_scores_depend_only_on_the_collection(store: Store) -> None:
    await write(store, "ko", KOREAN)
    before = await scores(store, "ko", ["서울", "날씨"])
    assert set(before) == {KOREAN[0], KOREAN[1], KOREAN[2], KOREAN[3]}
    assert max(before, key=before.__getitem__) == KOREAN[0]
    # Another collection full of the same terms changes neither scores nor results here.
    await write(store, "other", ["날씨 날씨"] * 30 + ["서울"] * 5, prefix="o")
    assert await scores(store, "ko", ["서울", "날씨"]) == pytest.approx(before, rel=1e-9)
    other = await scores(store, "other", ["서울", "날씨"])
    assert set(other) == {"날씨 날씨", "서울"}


async def test_deleted_collection_leaves_no_keywords(tmp_path: Path) -> None:
    async with opened(SqliteStore(tmp_path / "rb.db")) as store:
        await write(store, "ko", KOREAN)
        assert await store.delete_collection("ko")
        await write(store, "ko", ["제주 날씨"], prefix="n")
        assert list(await scores(store, "ko", ["서울", "날씨"])) == ["제주 날씨"]
    with sqlite3.connect(tmp_path / "rb.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"fts_c1", "fts_c1_data"}.isdisjoint(tables)
    assert "fts_c2" in tables


def schema_1_file(path: Path, collections: dict[str, list[str]]) -> None:
    """A file as ragbridge wrote it with schema 1: every collection's keywords in `chunks_fts`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA_1.read_text() + "PRAGMA user_version = 1;")
    now = time.time()
    for name, texts in collections.items():
        seq = conn.execute(
            "INSERT INTO collections (name, embedding_model, dimension, metadata, created_at)"
            " VALUES (?, 'm', ?, '{}', ?)",
            (name, DIM, now),
        ).lastrowid
        for i, text in enumerate(texts):
            conn.execute(
                "INSERT INTO documents VALUES (?, ?, ?, 'h', NULL, '{}', 1, ?, ?)",
                (seq, f"d{i}", f"d{i}.txt", now, now),
            )
            row = conn.execute(
                "INSERT INTO chunks (id, collection_seq, document_id, position, text, metadata)"
                " VALUES (?, ?, ?, 0, ?, '{}')",
                (f"{name}-{i}", seq, f"d{i}", text),
            ).lastrowid
            conn.execute("INSERT INTO chunks_fts (rowid, keywords) VALUES (?, ?)", (row, text))
            conn.execute(
                "INSERT INTO vectors VALUES (?, ?, ?)", (row, seq, vectors(1, i)[0].tobytes())
            )
    conn.close()


async def test_schema_1_file_migrates_on_open(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    schema_1_file(old, {"en": ENGLISH[:2], "ko": KOREAN, "empty": []})
    fresh = SqliteStore(tmp_path / "fresh.db")
    async with opened(SqliteStore(old)) as migrated, opened(fresh):
        for name, texts in (("ko", KOREAN), ("en", ENGLISH[:2])):
            await write(fresh, name, texts)
        for name, terms in (("ko", ["서울", "날씨"]), ("en", ["apple", "cherry"])):
            # The same results and per-collection scores as a file written by this version.
            expected = await scores(fresh, name, terms)
            assert expected
            assert await scores(migrated, name, terms) == pytest.approx(expected, rel=1e-9)
        assert await scores(migrated, "empty", ["서울"]) == {}
        # Writes after the migration keep each collection's keywords.
        await write(migrated, "en", ENGLISH)
        assert await migrated.delete_document("ko", "d0")
        assert set(await scores(migrated, "ko", ["서울"])) == {KOREAN[2]}
        assert set(await scores(migrated, "en", ["날씨"])) == {ENGLISH[3]}
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "chunks_fts" not in tables
        for seq in (1, 2, 3):
            conn.execute(f"INSERT INTO fts_c{seq} (fts_c{seq}) VALUES ('integrity-check')")
        assert conn.execute("SELECT COUNT(*) FROM fts_c2").fetchone()[0] == 3
        assert conn.execute("SELECT COUNT(*) FROM fts_c1").fetchone()[0] == 4


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    schema_1_file(old, {"ko": KOREAN, "en": ENGLISH})
    with sqlite3.connect(old) as conn:  # a name the migration needs is taken: it must fail
        conn.execute("CREATE TABLE fts_c2 (x)")
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(old).open()
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        rows = conn.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH '날씨'")
        assert rows.fetchone()[0] == 4
