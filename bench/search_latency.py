"""Search latency of the embedded SQLite store: dense and keyword p50/p99 at 10k, 100k and 1M
chunks, next to a raw numpy exact search over the same matrix (the baseline), run side by side;
keyword search next to schema 1's query (one file-wide FTS5 table joined to `chunks`), rebuilt
in the same file from the same keywords.

    python -m bench.search_latency                      # 10k, 100k, 1M (about 12 minutes)
    python -m bench.search_latency --sizes 10000 100000 --queries 200

Chunks are synthetic: random unit 384-d vectors, and keyword text drawn from a Zipf-distributed
vocabulary of Latin and Hangul terms. They are written through `SqliteStore.upsert_document`
in documents of 1000 chunks (one transaction each), exactly as ingest writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ragbridge.store.ann_index import AnnConfig
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore
from ragbridge.store.sqlite_schema import fts_query, fts_table

DIM = 384
DOC_CHUNKS = 1000
TERMS_PER_CHUNK = 24
VOCABULARY = 50_000
TOP_K = 10
BLOCK = 10
COLLECTION = "bench"

Matrix = npt.NDArray[np.float32]


@dataclass
class Row:
    """One measured line of the results table."""

    chunks: int
    method: str
    p50_ms: float
    p99_ms: float
    note: str = ""


def vocabulary(size: int) -> list[str]:
    """Synthetic terms, half Latin (`t123`), half two-syllable Hangul words."""
    latin = [f"t{i}" for i in range(size // 2)]
    hangul = [chr(0xAC00 + i % 11172) + chr(0xAC00 + (i * 7919) % 11172) for i in range(size // 2)]
    mixed = [term for pair in zip(latin, hangul, strict=True) for term in pair]
    return list(dict.fromkeys(mixed))


def zipf_ranks(rng: np.random.Generator, count: int, size: int) -> npt.NDArray[np.int64]:
    ranks = rng.zipf(1.1, size=count) - 1
    return np.asarray(ranks % size, dtype=np.int64)


def unit_rows(rng: np.random.Generator, count: int) -> Matrix:
    matrix = rng.standard_normal((count, DIM), dtype=np.float32)
    normed: Matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normed


async def fill(store: SqliteStore, total: int, words: list[str], seed: int) -> Matrix:
    """Write `total` chunks; returns their vectors (row order = insertion order)."""
    await store.create_collection(COLLECTION, "synthetic-384", DIM)
    rng = np.random.default_rng(seed)
    parts: list[Matrix] = []
    for start in range(0, total, DOC_CHUNKS):
        count = min(DOC_CHUNKS, total - start)
        vectors = unit_rows(rng, count)
        ranks = zipf_ranks(rng, count * TERMS_PER_CHUNK, len(words)).reshape(count, -1)
        chunks = []
        for i, row in enumerate(ranks):
            text = " ".join(words[r] for r in row)
            meta = {"source": f"doc{start // DOC_CHUNKS}.txt", "shard": (start + i) % 10}
            chunks.append(NewChunk(text, text, i, meta))
        doc_id = f"doc{start // DOC_CHUNKS}"
        document = DocumentRecord(doc_id, COLLECTION, f"{doc_id}.txt", f"h{start}")
        await store.upsert_document(document, chunks, vectors)
        parts.append(vectors)
    return np.concatenate(parts)


def numpy_exact(
    matrix: Matrix, query: Matrix, top_k: int, *, blas: bool = False
) -> npt.NDArray[np.intp]:
    """The baseline: one matrix-vector product (numpy's einsum loop, as the store does, or
    BLAS through `@`), argpartition, sort of the k best."""
    scores = matrix @ query if blas else np.einsum("ij,j->i", matrix, query)
    best = np.argpartition(-scores, top_k - 1)[:top_k]
    ordered: npt.NDArray[np.intp] = best[np.argsort(-scores[best])]
    return ordered


async def timed(*calls: Callable[[int], Awaitable[object]], runs: int) -> list[list[float]]:
    """Milliseconds per call of each of `calls`, taking turns in blocks of 10 queries so that
    all see the same machine load (blocks, not single queries: each call then finds its own
    matrix in the CPU cache as it would in a server); the first call of each block is a
    warm-up."""
    samples: list[list[float]] = [[] for _ in calls]
    for block in range(0, runs, BLOCK):
        for call, times in zip(calls, samples, strict=True):
            await call(block)
            for i in range(block, min(block + BLOCK, runs)):
                start = time.perf_counter()
                await call(i)
                times.append((time.perf_counter() - start) * 1000)
    return samples


def megabytes(path: Path) -> float:
    return os.path.getsize(path) / 1e6


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def schema_1_query(fts: str) -> str:
    """Schema 1's keyword query on the FTS5 table `fts`: the collection's rows found by a join
    to `chunks`, every column carried through the sort."""
    return (
        "SELECT c.seq, c.id, c.document_id, c.position, c.text, c.metadata,"
        f" bm25({fts}) AS rank FROM {fts} JOIN chunks c ON c.seq = {fts}.rowid"
        f" WHERE {fts} MATCH ? AND c.collection_seq = ? ORDER BY rank, c.seq LIMIT ?"
    )


SCHEMA_1_QUERY = schema_1_query("schema1_fts")


def schema_1_keywords(path: Path) -> sqlite3.Connection:
    """The keyword baseline: schema 1's file-wide FTS5 table, filled with the same keywords;
    returns a connection for `SCHEMA_1_QUERY`."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(
        "CREATE VIRTUAL TABLE schema1_fts USING fts5"
        ' (keywords, tokenize = "unicode61 remove_diacritics 0")'
    )
    seq = conn.execute("SELECT seq FROM collections WHERE name = ?", (COLLECTION,)).fetchone()[0]
    conn.execute(
        f"INSERT INTO schema1_fts (rowid, keywords) SELECT rowid, keywords FROM {fts_table(seq)}"
    )
    return conn


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


async def measure(size: int, queries: int, words: list[str], workdir: Path) -> list[Row]:
    store = SqliteStore(workdir / f"bench-{size}.db", ann=AnnConfig(enabled=False))  # exact
    await store.open()
    try:
        start = time.perf_counter()
        matrix = await fill(store, size, words, seed=size)
        insert_s = time.perf_counter() - start
        rng = np.random.default_rng(1)
        query_vectors = unit_rows(rng, queries + 2)
        start = time.perf_counter()
        await store.dense_search(COLLECTION, query_vectors[0], TOP_K)
        load_s = time.perf_counter() - start
        # Mid-frequency terms: the common case, neither stop-word-like nor absent.
        term_sets = [[words[r] for r in rng.integers(50, 5000, size=3)] for _ in range(queries + 2)]

        async def baseline(i: int) -> object:
            return numpy_exact(matrix, query_vectors[i], TOP_K)

        async def baseline_blas(i: int) -> object:
            return numpy_exact(matrix, query_vectors[i], TOP_K, blas=True)

        async def dense(i: int) -> object:
            hits = await store.dense_search(COLLECTION, query_vectors[i], TOP_K)
            assert len(hits) == TOP_K
            return hits

        async def dense_filtered(i: int) -> object:
            return await store.dense_search(
                COLLECTION, query_vectors[i], TOP_K, filters={"shard": 3}
            )

        async def keyword(i: int) -> object:
            return await store.keyword_search(COLLECTION, term_sets[i], TOP_K)

        schema_1 = schema_1_keywords(store.path)
        collection_seq = schema_1.execute("SELECT seq FROM collections").fetchone()[0]

        async def keyword_schema_1(i: int) -> object:
            params = (fts_query(term_sets[i]), collection_seq, TOP_K)
            return await asyncio.to_thread(
                lambda: schema_1.execute(SCHEMA_1_QUERY, params).fetchall()
            )

        # Agreement check: the same top 10 and scores as schema 1's query (one collection).
        for i in range(5):
            want = [-row[6] for row in await keyword_schema_1(i)]  # type: ignore[attr-defined]
            got = [hit.score for hit in await store.keyword_search(COLLECTION, term_sets[i], TOP_K)]
            assert np.allclose(got, want), (term_sets[i], got, want)

        # Agreement check: the store returns exactly the baseline's top k.
        hits = await store.dense_search(COLLECTION, query_vectors[1], TOP_K)
        expected = matrix[numpy_exact(matrix, query_vectors[1], TOP_K)] @ query_vectors[1]
        assert np.allclose([h.score for h in hits], expected, atol=1e-5)

        size_mb = megabytes(store.path)
        raw, ours = await timed(baseline, dense, runs=queries)
        # Apart: OpenBLAS threads spin on after a call and would slow whatever runs next.
        [blas] = await timed(baseline_blas, runs=queries)
        [filtered] = await timed(dense_filtered, runs=max(queries // 4, 20))
        bm25_1, bm25 = await timed(keyword_schema_1, keyword, runs=queries)
        schema_1.close()
        ratio = statistics.median(ours) / statistics.median(raw)
        return [
            Row(size, "numpy exact, BLAS `@`", *percentiles(blas)),
            Row(size, "numpy exact, einsum (baseline)", *percentiles(raw)),
            Row(
                size,
                "store dense",
                *percentiles(ours),
                f"{ratio:.2f}× baseline p50; insert {size / insert_s:,.0f} chunks/s; first "
                f"search (loads matrix) {load_s * 1000:,.0f} ms; file {size_mb:,.0f} MB",
            ),
            Row(size, "store dense, filter 10 %", *percentiles(filtered)),
            Row(
                size,
                "keyword, schema 1 query (file-wide FTS + join; baseline)",
                *percentiles(bm25_1),
            ),
            Row(
                size,
                "store keyword (BM25, 3 terms)",
                *percentiles(bm25),
                f"{statistics.median(bm25_1) / statistics.median(bm25):.1f}× faster p50",
            ),
        ]
    finally:
        await store.close()
        remove_database(store.path)


def table(rows: list[Row]) -> str:
    lines = [
        "| chunks | method | p50 ms | p99 ms | notes |",
        "| ---: | --- | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.chunks:,} | {row.method} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | {row.note} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per method")
    parser.add_argument("--workdir", type=Path, default=None, help="where the .db files go")
    args = parser.parse_args()
    words = vocabulary(VOCABULARY)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        for size in args.sizes:
            queries = args.queries if size <= 100_000 else max(args.queries // 4, 30)
            rows += await measure(size, queries, words, Path(workdir))
            print(table(rows[-5:]), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{table(rows)}\n\npeak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
