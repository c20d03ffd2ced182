"""PostgreSQL + pgvector next to the embedded SQLite store: ingest throughput and query latency.

    python -m bench.postgres_vs_sqlite          # 100k, then 1M chunks (over an hour, 2 cores)
    python -m bench.postgres_vs_sqlite --sizes 1000000 --workdir /big/disk   # kept, reused next run
    python -m bench.postgres_vs_sqlite --fill-only sqlite --sizes 1000000 --workdir D &
    python -m bench.postgres_vs_sqlite --fill-only postgres --sizes 1000000 --workdir D  # at once
    RAGBRIDGE_DATABASE_URL=postgresql://... python -m bench.postgres_vs_sqlite   # your server

Both stores get the same synthetic chunks, written through `upsert_document` (one transaction per
document of 100 chunks, what ingest does): 384-d unit vectors around 1,000 cluster centres (as
real embeddings cluster), and keyword text drawn from the Zipf vocabulary of
`bench.search_latency` (Latin and Hangul terms). No embedder runs, so the stores are what is
measured. PostgreSQL is written the way a bulk import would be: the HNSW index dropped, the rows
written, the index built after (timed separately, with `--build-memory` as maintenance_work_mem
and `--workers` parallel workers), then a few documents re-ingested with the index live (the
steady-state rate). Above `--hnsw-max` chunks the index is not built and PostgreSQL's dense
queries are skipped. PostgreSQL runs from `pgserver` with its default settings (128 MB shared
buffers) unless RAGBRIDGE_DATABASE_URL points elsewhere. With `--workdir` the data stays there and
a later run writes only what is missing and keeps a built index (its build time is then not
reported).

Queries (same vectors and terms for both): dense top 10, dense with a 10 % metadata filter,
keyword top 10 (BM25, 3 mid-frequency terms), and hybrid: dense and keyword issued together,
as the retriever does. Dense recall@10 of both stores' approximate search is measured against
PostgreSQL's exact scan (kept in the workdir), after SQLite's ANN graph is built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from bench.search_latency import VOCABULARY, vocabulary, zipf_ranks
from ragbridge.store.base import DocumentRecord, NewChunk, Store
from ragbridge.store.pg_search import create_hnsw_index
from ragbridge.store.postgres import PostgresStore
from ragbridge.store.sqlite import SqliteStore

DIM = 384
DOC_CHUNKS = 100
TERMS_PER_CHUNK = 24
CLUSTERS = 1000
NOISE = 0.04  # per dimension: chunks of one cluster have cosine ~0.6, like one topic
TOP_K = 10
REINGEST_DOCS = 20
COLLECTION = "bench"

Matrix = npt.NDArray[np.float32]


@dataclass
class Row:
    """One line of the results table."""

    chunks: int
    query: str
    sqlite: tuple[float, float]
    postgres: tuple[float, float] | None


class Corpus:
    """Deterministic synthetic chunks: clustered vectors and Zipf keyword text."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.words = vocabulary(VOCABULARY)
        self.centres = unit(rng.standard_normal((CLUSTERS, DIM), dtype=np.float32))

    def document(self, index: int) -> tuple[DocumentRecord, list[NewChunk], Matrix]:
        rng = np.random.default_rng(1_000_003 + index)
        near = self.centres[rng.integers(0, CLUSTERS, size=DOC_CHUNKS)]
        vectors = unit(near + NOISE * rng.standard_normal((DOC_CHUNKS, DIM), dtype=np.float32))
        ranks = zipf_ranks(rng, DOC_CHUNKS * TERMS_PER_CHUNK, len(self.words))
        doc_id = f"doc{index}"
        chunks = []
        for position, row in enumerate(ranks.reshape(DOC_CHUNKS, -1)):
            text = " ".join(self.words[r] for r in row)
            meta = {"source": f"{doc_id}.txt", "shard": (index + position) % 10}
            chunks.append(NewChunk(text, text, position, meta))
        return DocumentRecord(doc_id, COLLECTION, f"{doc_id}.txt", f"h{index}"), chunks, vectors

    def queries(self, count: int) -> tuple[Matrix, list[list[str]]]:
        rng = np.random.default_rng(7)
        near = self.centres[rng.integers(0, CLUSTERS, size=count)]
        vectors = unit(near + NOISE * rng.standard_normal((count, DIM), dtype=np.float32))
        terms = [[self.words[r] for r in rng.integers(50, 5000, size=3)] for _ in range(count)]
        return vectors, terms


def unit(matrix: Matrix) -> Matrix:
    normed: Matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normed


async def ingest(store: Store, corpus: Corpus, first_doc: int, last_doc: int) -> float:
    """Write documents [first_doc, last_doc); returns chunks per second."""
    start = time.perf_counter()
    for index in range(first_doc, last_doc):
        await store.upsert_document(*corpus.document(index))
    return (last_doc - first_doc) * DOC_CHUNKS / (time.perf_counter() - start)


async def timed(call: Callable[[int], Awaitable[object]], runs: int) -> tuple[float, float]:
    """p50 and p99 milliseconds per call, after three warm-up calls."""
    for i in range(3):
        await call(i)
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=100, method="inclusive")[98]


async def latency(
    store: Store, vectors: Matrix, terms: list[list[str]], *, dense: bool
) -> dict[str, tuple[float, float]]:
    """p50/p99 per kind of query; with `dense` off, keyword only."""
    runs = len(terms) - 3

    async def nearest(i: int) -> object:
        return await store.dense_search(COLLECTION, vectors[i], TOP_K)

    async def filtered(i: int) -> object:
        return await store.dense_search(COLLECTION, vectors[i], TOP_K, {"shard": 3})

    async def keyword(i: int) -> object:
        return await store.keyword_search(COLLECTION, terms[i], TOP_K)

    async def hybrid(i: int) -> object:
        return await asyncio.gather(nearest(i), keyword(i))

    results = {"keyword BM25, 3 terms": await timed(keyword, runs)}
    if dense:
        results["dense top 10"] = await timed(nearest, runs)
        results["dense, filter 10 %"] = await timed(filtered, max(runs // 4, 20))
        results["hybrid (dense + keyword together)"] = await timed(hybrid, runs)
    return results


async def exact_top(url: str, vectors: Matrix, cache: Path) -> list[set[str]]:
    """The true top 10 of each query: PostgreSQL's exact scan (index scans off), kept in
    `cache` for the next run on the same data (seconds per query at 1M)."""
    if kept := read_json(cache):
        return [set(top) for top in kept]
    tops = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT id FROM collections WHERE name = %s", [COLLECTION])
        row = await cur.fetchone()
        assert row is not None
        await conn.execute("SET enable_indexscan = off")
        for vector in vectors:
            literal = "[" + ",".join(f"{x:.7f}" for x in vector) + "]"
            cur = await conn.execute(
                f"SELECT id FROM chunks WHERE collection_id = {row[0]}"
                f" ORDER BY embedding::vector({DIM}) <=> %s::vector({DIM}) LIMIT {TOP_K}",
                [literal],
            )
            tops.append({r[0] for r in await cur.fetchall()})
        await conn.rollback()
    write_json(cache, [sorted(top) for top in tops])
    return tops


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when there is none."""
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))


async def recall(store: Store, vectors: Matrix, exact: list[set[str]]) -> float:
    """Share of the exact top 10 that the store's (approximate) dense search returns."""
    found = 0
    for vector, truth in zip(vectors, exact, strict=True):
        found += len(
            truth & {h.chunk.id for h in await store.dense_search(COLLECTION, vector, TOP_K)}
        )
    return found / (TOP_K * len(vectors))


async def index(url: str, action: str, build_memory: str = "3GB", workers: int = 1) -> float:
    """`drop`, `build` (then VACUUM ANALYZE) or just `analyze` the collection's HNSW index;
    returns the seconds taken. A build runs with `maintenance_work_mem` = `build_memory` (the
    whole graph must fit, else pgvector builds on disk, many times slower) and `workers`
    parallel workers beside the leader."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT id FROM collections WHERE name = %s", [COLLECTION])
        row = await cur.fetchone()
        assert row is not None
        start = time.perf_counter()
        if action == "drop":
            await conn.execute(f"DROP INDEX IF EXISTS chunks_embedding_c{row[0]}")
        elif action == "build":
            await conn.execute(f"SET maintenance_work_mem = '{build_memory}'")
            await conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
            await conn.execute(create_hnsw_index(row[0], DIM))
        await conn.execute("VACUUM ANALYZE chunks")
        return time.perf_counter() - start


async def has_index(url: str) -> bool:
    """Whether the collection's HNSW index exists (a kept `--workdir` may already have it)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_indexes i JOIN collections c"
            " ON i.indexname = 'chunks_embedding_c' || c.id WHERE c.name = %s",
            [COLLECTION],
        )
        row = await cur.fetchone()
        return bool(row and row[0])


async def fill(store: Store, corpus: Corpus, size: int) -> tuple[int, float | None]:
    """Write the chunks the store lacks up to `size` (a kept `--workdir` resumes);
    returns the chunks it held before and the ingest rate (None when nothing was written)."""
    info = await store.get_collection(COLLECTION)
    held = info.chunk_count if info else 0
    if held >= size:
        return held, None
    return held, await ingest(store, corpus, held // DOC_CHUNKS, size // DOC_CHUNKS)


async def ann_ready(store: SqliteStore) -> float:
    """Wait until the embedded store's ANN graphs are built; returns the seconds waited."""
    start = time.perf_counter()
    while True:  # the graphs are built on the store's own thread: poll its status
        if not {"building", "opening"} & set(store.index_status()["collections"]):
            return time.perf_counter() - start
        await asyncio.sleep(1)


@contextmanager
def postgres_url(workdir: Path, keep: bool) -> Iterator[str]:
    """RAGBRIDGE_DATABASE_URL, or a pgserver-started PostgreSQL in `workdir` (its data deleted
    afterwards unless `keep`)."""
    if url := os.environ.get("RAGBRIDGE_DATABASE_URL"):
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode=None if keep else "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def table(rows: list[Row]) -> str:
    lines = [
        "| chunks | query | SQLite p50 / p99 ms | PostgreSQL p50 / p99 ms |",
        "| ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.chunks:,} | {r.query} | {r.sqlite[0]:.2f} / {r.sqlite[1]:.2f} "
            f"| {f'{r.postgres[0]:.2f} / {r.postgres[1]:.2f}' if r.postgres else 'not measured'} |"
        )
    return "\n".join(lines)


@dataclass
class Options:
    """What `main` parsed."""

    sizes: list[int]
    queries: int
    hnsw_max: int
    build_memory: str
    workers: int


async def run(options: Options, workdir: Path, url: str, only: str | None) -> None:
    """Fill both stores (or only one, `only`), build PostgreSQL's index, measure each size."""
    corpus = Corpus()
    vectors, terms = corpus.queries(options.queries + 3)
    sqlite, postgres = SqliteStore(workdir / "bench.db"), PostgresStore(url)
    stores: list[Store] = [
        s for s, name in ((sqlite, "sqlite"), (postgres, "postgres")) if only in (None, name)
    ]
    rows: list[Row] = []
    notes: list[str] = []
    for store in stores:
        await store.open()
    try:
        for store in stores:
            await store.create_collection(COLLECTION, "synthetic-384", DIM)
        if only is not None:
            if only == "postgres" and await has_index(url):
                await index(url, "drop")
            held, rate = await fill(stores[0], corpus, options.sizes[-1])
            print(f"{only}: {held:,} → {options.sizes[-1]:,} chunks at {rate or 0:,.0f}/s")
            return
        for size in options.sizes:
            held, sqlite_rate = await fill(sqlite, corpus, size)
            pg_held = (await postgres.get_collection(COLLECTION)).chunk_count  # type: ignore[union-attr]
            if pg_held < size and await has_index(url):
                await index(url, "drop")  # written without it, as a bulk load would
            _, pg_rate = await fill(postgres, corpus, size)
            note = (
                f"{size:,} chunks: ingest SQLite {sqlite_rate or 0:,.0f} chunks/s, PostgreSQL "
                f"{pg_rate or 0:,.0f} chunks/s (HNSW index dropped while writing; 0: kept data)"
            )
            dense = size <= options.hnsw_max
            if dense and not await has_index(url):
                build_s = await index(url, "build", options.build_memory, options.workers)
                note += (
                    f"; HNSW build {build_s:,.0f} s (maintenance_work_mem "
                    f"{options.build_memory}, {options.workers} parallel worker(s) + leader)"
                )
            else:
                await index(url, "analyze")
            if dense:
                live = await ingest(postgres, corpus, 0, REINGEST_DOCS)
                note += f"; re-ingest with the index live {live:,.0f} chunks/s"
            waited = await ann_ready(sqlite)
            note += f"; waited {waited:,.0f} s for SQLite's ANN graph"
            if dense:
                exact = await exact_top(url, vectors[:50], workdir / f"exact-{size}.json")
                pg_recall = await recall(postgres, vectors[:50], exact)
                lite_recall = await recall(sqlite, vectors[:50], exact)
                note += (
                    f"; dense recall@10 vs exact: PostgreSQL {pg_recall:.3f}, "
                    f"SQLite {lite_recall:.3f}"
                )
            else:
                note += "; HNSW not built (--hnsw-max), PostgreSQL dense not measured"
            notes.append(note)
            print(note, flush=True)
            lite = await latency(sqlite, vectors, terms, dense=True)
            pg = await latency(postgres, vectors, terms, dense=dense)
            rows += [Row(size, name, lite[name], pg.get(name)) for name in lite]
            print(table(rows[-len(lite) :]), f"\n(load average {os.getloadavg()})", flush=True)
    finally:
        for store in stores:
            await store.close()
    print("\n" + table(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per kind")
    parser.add_argument(
        "--hnsw-max", type=int, default=1_000_000, help="largest size to build PostgreSQL's HNSW at"
    )
    parser.add_argument(
        "--build-memory", default="3GB", help="maintenance_work_mem for the HNSW build"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="parallel HNSW build workers beside the leader"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the data here and reuse it on the next run (default: a temporary dir)",
    )
    parser.add_argument(
        "--fill-only",
        choices=["sqlite", "postgres"],
        default=None,
        help="only write the largest size into one store, then stop (fill both at once)",
    )
    args = parser.parse_args()
    options = Options(
        sorted(args.sizes), args.queries, args.hnsw_max, args.build_memory, args.workers
    )
    with ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        keep = args.workdir is not None
        url = "" if args.fill_only == "sqlite" else stack.enter_context(postgres_url(workdir, keep))
        asyncio.run(run(options, workdir, url, args.fill_only))


if __name__ == "__main__":
    main()
