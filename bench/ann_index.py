"""The embedded store's approximate index (faiss HNSW) against its exact scan, side by side:
dense p50/p99 and recall@10, keyword (next to schema 1's query) and hybrid p50/p99 with the
query embedded by the default model (multilingual USE, 512-d), index build time and size, and
restart-to-first-answer, at 100k and 1M clustered 512-d chunks.

    python -m bench.ann_index --workdir /data/ann --fill-only    # write the files once
    python -m bench.ann_index --workdir /data/ann                # measure (reuses files, graphs)
    python -m bench.ann_index --sizes 100000 --queries 200        # temporary files

Vectors are clustered (1 % of the rows are centres, each row a centre plus noise, unit length),
as embeddings of real text are; queries are drawn the same way and are not in the data. The
keyword text is `bench.search_latency`'s synthetic Zipf vocabulary. Chunks are written through
`SqliteStore.upsert_document` in documents of 1000, with the index off (each document seeded by
its position, so a stopped fill resumes where it was); the index is then built by opening the
store with it on, as `ragbridge serve` would after an upgrade, or opened if `--workdir` already
holds it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.search_latency import (
    COLLECTION,
    DOC_CHUNKS,
    TERMS_PER_CHUNK,
    TOP_K,
    VOCABULARY,
    Matrix,
    Row,
    percentiles,
    schema_1_query,
    table,
    timed,
    vocabulary,
    zipf_ranks,
)
from ragbridge.embeddings.names import USE_MULTILINGUAL
from ragbridge.embeddings.use import USE_DIMENSION as DIM
from ragbridge.embeddings.use import UseEmbedder
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.store.ann_index import AnnConfig
from ragbridge.store.ann_indexes import search_breadth
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore
from ragbridge.store.sqlite_schema import fts_query, fts_table

EXACT = AnnConfig(enabled=False)
ANN = AnnConfig()


def clustered(rng: np.random.Generator, centres: Matrix, count: int) -> Matrix:
    rows = centres[rng.integers(0, len(centres), count)]
    rows = rows + 0.35 * rng.standard_normal((count, DIM), dtype=np.float32)
    normed: Matrix = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normed


def document_chunks(
    total: int, start: int, words: list[str], centres: Matrix
) -> tuple[list[NewChunk], Matrix]:
    """The chunks and vectors of the document starting at row `start` (seeded by its position,
    so a fill stopped half-way resumes with exactly the rows a full run writes)."""
    rng = np.random.default_rng((total, start))
    count = min(DOC_CHUNKS, total - start)
    ranks = zipf_ranks(rng, count * TERMS_PER_CHUNK, len(words)).reshape(count, -1)
    chunks = []
    for i, row in enumerate(ranks):
        text = " ".join(words[r] for r in row)
        chunks.append(NewChunk(text, text, i, {"shard": (start + i) % 10}))
    return chunks, clustered(rng, centres, count)


def centres_for(total: int) -> Matrix:
    rng = np.random.default_rng(total)
    return rng.standard_normal((max(total // 100, 10), DIM), dtype=np.float32)


async def fill(path: Path, total: int, words: list[str], model: str) -> int:
    """Write the `total` chunks the file does not hold yet, with the index off; returns how
    many were written (0 when the file is already full: `--workdir` reuses it)."""
    centres = centres_for(total)
    store = SqliteStore(path, ann=EXACT)
    await store.open()
    try:
        await store.create_collection(COLLECTION, model, DIM)
        present = {doc.id for doc in await store.list_documents(COLLECTION)}
        written = 0
        for start in range(0, total, DOC_CHUNKS):
            doc = f"doc{start // DOC_CHUNKS}"
            if doc in present:
                continue
            chunks, vectors = document_chunks(total, start, words, centres)
            document = DocumentRecord(doc, COLLECTION, f"{doc}.txt", f"h{start}")
            await store.upsert_document(document, chunks, vectors)
            written += len(chunks)
            if written % 50_000 < DOC_CHUNKS:
                print(f"{total:,}: {start + len(chunks):,} rows", flush=True)
    finally:
        await store.close()
    return written


async def until_ready(store: SqliteStore) -> None:
    while store.index_status()["collections"] != {"ready": 1}:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def has_graph(path: Path) -> bool:
    """Whether a finished graph is saved beside the file (then it is reused, not built)."""
    return any(Path(f"{path}.ann").glob("*.npz"))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


async def measure(
    size: int, queries: int, words: list[str], embedder: UseEmbedder, workdir: Path
) -> list[Row]:
    path = workdir / f"ann-{size}.db"
    started = time.perf_counter()
    written = await fill(path, size, words, embedder.name)
    insert_s = time.perf_counter() - started
    centres = centres_for(size)
    print(f"{size:,}: wrote {written:,} rows in {insert_s:.0f} s", flush=True)

    reused = has_graph(path)
    ann = SqliteStore(path, ann=ANN)
    started = time.perf_counter()
    await ann.open()
    await until_ready(ann)
    build_s = time.perf_counter() - started
    await ann.close()
    index_mb = folder_mb(Path(f"{path}.ann"))
    built = f"graph reused (opened in {build_s:.1f} s)" if reused else f"build {build_s:.0f} s"
    print(f"{size:,}: {built}, {index_mb:,.0f} MB", flush=True)

    rng = np.random.default_rng(1)
    vectors = clustered(rng, centres, queries + 2)
    started = time.perf_counter()  # restart: open the file, answer one dense query
    ann = SqliteStore(path, ann=ANN)
    await ann.open()
    assert len(await ann.dense_search(COLLECTION, vectors[0], TOP_K)) == TOP_K
    restart_ann_s = time.perf_counter() - started
    exact = SqliteStore(path, ann=EXACT, vector_cache_bytes=size * DIM * 4 * 2)
    started = time.perf_counter()
    await exact.open()
    await exact.dense_search(COLLECTION, vectors[0], TOP_K)
    restart_exact_s = time.perf_counter() - started
    print(f"{size:,}: restart to first answer {restart_ann_s:.2f} s (exact scan "
          f"{restart_exact_s:.2f} s)", flush=True)  # fmt: skip
    try:
        recall = []
        for query in vectors[2:]:
            got = {h.chunk.id for h in await ann.dense_search(COLLECTION, query, TOP_K)}
            want = {h.chunk.id for h in await exact.dense_search(COLLECTION, query, TOP_K)}
            recall.append(len(got & want) / TOP_K)
        texts = [
            " ".join(words[2 * r] for r in rng.integers(50, 5000, size=3)) + f" q{i}"
            for i in range(queries + 2)
        ]  # Latin terms (the English model reads them); distinct: no query cache hit
        term_sets = [text.split()[:3] for text in texts]
        hybrid_ann = HybridRetriever(ann, embedder)
        hybrid_exact = HybridRetriever(exact, embedder)

        async def dense_ann(i: int) -> object:
            return await ann.dense_search(COLLECTION, vectors[i], TOP_K)

        async def dense_exact(i: int) -> object:
            return await exact.dense_search(COLLECTION, vectors[i], TOP_K)

        async def keyword(i: int) -> object:
            return await ann.keyword_search(COLLECTION, term_sets[i], TOP_K)

        # Baseline: schema 1's query. With one collection its file-wide FTS table held exactly
        # the rows of this collection's table (the migration renamed it), so it runs on that.
        old = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        seq = old.execute("SELECT seq FROM collections").fetchone()[0]
        old_sql = schema_1_query(fts_table(seq))

        async def keyword_schema_1(i: int) -> object:
            params = (fts_query(term_sets[i]), seq, TOP_K)
            return await asyncio.to_thread(lambda: old.execute(old_sql, params).fetchall())

        async def hybrid_with_ann(i: int) -> object:
            return await hybrid_ann.search(COLLECTION, texts[i] + " a", top_k=TOP_K)

        async def hybrid_with_exact(i: int) -> object:
            return await hybrid_exact.search(COLLECTION, texts[i] + " b", top_k=TOP_K)

        d_exact, d_ann = await timed(dense_exact, dense_ann, runs=queries)
        bm25_1, bm25 = await timed(keyword_schema_1, keyword, runs=queries)
        old.close()

        async def embed_only(i: int) -> object:
            return await embedder.embed_query(texts[i] + " c")

        embed, h_exact, h_ann = await timed(
            embed_only, hybrid_with_exact, hybrid_with_ann, runs=queries
        )
        speedup = statistics.median(d_exact) / statistics.median(d_ann)
        ef = search_breadth(ANN.ef_search, range(size), None)
        return [
            Row(size, "dense, exact scan (baseline)", *percentiles(d_exact),
                f"first answer after restart {restart_exact_s:.2f} s (loads the matrix)"),
            Row(size, f"dense, HNSW (faiss, M=32, ef={ef})", *percentiles(d_ann),
                f"{speedup:.0f}× faster p50; recall@10 {statistics.mean(recall):.3f}; "
                f"{built}; {index_mb:,.0f} MB; first answer after restart "
                f"{restart_ann_s:.2f} s"),
            Row(size, "keyword, schema 1 query (baseline)", *percentiles(bm25_1)),
            Row(size, "keyword (BM25, 3 terms)", *percentiles(bm25),
                f"{statistics.median(bm25_1) / statistics.median(bm25):.1f}× faster p50"),
            Row(size, "query embedding alone (USE)", *percentiles(embed)),
            Row(size, "hybrid + query embedding, exact", *percentiles(h_exact)),
            Row(size, "hybrid + query embedding, HNSW", *percentiles(h_ann),
                f"insert {written / insert_s:,.0f} chunks/s" if written else "file reused"),
        ]  # fmt: skip
    finally:
        await ann.close()
        await exact.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per method")
    parser.add_argument(
        "--workdir", type=Path, default=None,
        help="where the .db files go; a file already there is reused (and completed if a fill"
        " was stopped), with its index; default: a temporary folder, removed after",
    )  # fmt: skip
    parser.add_argument(
        "--embed-threads", type=int, default=None,
        help="BLAS threads of the query embedder (default: the embedder's own, as served)",
    )  # fmt: skip
    parser.add_argument("--fill-only", action="store_true", help="write the files, measure nothing")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    words = vocabulary(VOCABULARY)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        if args.fill_only:
            for size in args.sizes:
                await fill(workdir / f"ann-{size}.db", size, words, USE_MULTILINGUAL)
            return
        embedder = UseEmbedder(threads=args.embed_threads)
        embedder.ensure_loaded()
        rows: list[Row] = []
        for size in args.sizes:
            queries = args.queries if size <= 100_000 else max(args.queries // 2, 50)
            rows += await measure(size, queries, words, embedder, workdir)
            print(table(rows[-7:]), flush=True)
        await embedder.close()
    print(f"\n{table(rows)}")


if __name__ == "__main__":
    asyncio.run(main())
