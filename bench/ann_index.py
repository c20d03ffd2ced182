"""The embedded store's approximate index (faiss HNSW) against its exact scan, side by side:
dense p50/p99 and recall@10, keyword and hybrid p50/p99 (query embedding included), index
build time and size, and restart-to-first-answer, at 100k and 1M clustered 384-d chunks.

    python -m bench.ann_index            # 100k and 1M (1M: about an hour on 2 busy cores)
    python -m bench.ann_index --sizes 100000 --queries 200

Vectors are clustered (1 % of the rows are centres, each row a centre plus noise, unit length),
as embeddings of real text are; queries are drawn the same way and are not in the data. The
keyword text is `bench.search_latency`'s synthetic Zipf vocabulary. Chunks are written through
`SqliteStore.upsert_document` in documents of 1000, with the index off; the index is then built
by opening the store with it on, as `ragbridge serve` would after an upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.search_latency import (
    COLLECTION,
    DIM,
    DOC_CHUNKS,
    TERMS_PER_CHUNK,
    TOP_K,
    VOCABULARY,
    Matrix,
    Row,
    percentiles,
    table,
    timed,
    vocabulary,
    zipf_ranks,
)
from ragbridge.embeddings.local import LocalEmbedder
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.store.ann_index import AnnConfig
from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

EXACT = AnnConfig(enabled=False)
ANN = AnnConfig()


def clustered(rng: np.random.Generator, centres: Matrix, count: int) -> Matrix:
    rows = centres[rng.integers(0, len(centres), count)]
    rows = rows + 0.35 * rng.standard_normal((count, DIM), dtype=np.float32)
    normed: Matrix = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normed


async def fill(path: Path, total: int, words: list[str], model: str) -> Matrix:
    """Write `total` chunks with the index off; returns the centres the rows were drawn from."""
    rng = np.random.default_rng(total)
    centres = rng.standard_normal((max(total // 100, 10), DIM), dtype=np.float32)
    store = SqliteStore(path, ann=EXACT)
    await store.open()
    await store.create_collection(COLLECTION, model, DIM)
    for start in range(0, total, DOC_CHUNKS):
        count = min(DOC_CHUNKS, total - start)
        ranks = zipf_ranks(rng, count * TERMS_PER_CHUNK, len(words)).reshape(count, -1)
        chunks = []
        for i, row in enumerate(ranks):
            text = " ".join(words[r] for r in row)
            chunks.append(NewChunk(text, text, i, {"shard": (start + i) % 10}))
        doc = f"doc{start // DOC_CHUNKS}"
        document = DocumentRecord(doc, COLLECTION, f"{doc}.txt", f"h{start}")
        await store.upsert_document(document, chunks, clustered(rng, centres, count))
    await store.close()
    return centres


async def until_ready(store: SqliteStore) -> None:
    while store.index_status()["collections"] != {"ready": 1}:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


async def measure(
    size: int, queries: int, words: list[str], embedder: LocalEmbedder, workdir: Path
) -> list[Row]:
    path = workdir / f"ann-{size}.db"
    started = time.perf_counter()
    centres = await fill(path, size, words, embedder.name)
    insert_s = time.perf_counter() - started
    print(f"{size:,}: wrote in {insert_s:.0f} s", flush=True)

    ann = SqliteStore(path, ann=ANN)
    started = time.perf_counter()
    await ann.open()
    await until_ready(ann)
    build_s = time.perf_counter() - started
    await ann.close()
    index_mb = folder_mb(Path(f"{path}.ann"))
    print(f"{size:,}: index built in {build_s:.0f} s, {index_mb:,.0f} MB", flush=True)

    rng = np.random.default_rng(1)
    vectors = clustered(rng, centres, queries + 2)
    started = time.perf_counter()  # restart: open the file, answer one dense query
    ann = SqliteStore(path, ann=ANN)
    await ann.open()
    assert len(await ann.dense_search(COLLECTION, vectors[0], TOP_K)) == TOP_K
    restart_ann_s = time.perf_counter() - started
    exact = SqliteStore(path, ann=EXACT)
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

        async def hybrid_with_ann(i: int) -> object:
            return await hybrid_ann.search(COLLECTION, texts[i] + " a", top_k=TOP_K)

        async def hybrid_with_exact(i: int) -> object:
            return await hybrid_exact.search(COLLECTION, texts[i] + " b", top_k=TOP_K)

        d_exact, d_ann = await timed(dense_exact, dense_ann, runs=queries)
        [bm25] = await timed(keyword, runs=queries)
        h_exact, h_ann = await timed(hybrid_with_exact, hybrid_with_ann, runs=queries)
        speedup = statistics.median(d_exact) / statistics.median(d_ann)
        return [
            Row(size, "dense, exact scan (baseline)", *percentiles(d_exact),
                f"first answer after restart {restart_exact_s:.2f} s (loads the matrix)"),
            Row(size, "dense, HNSW (faiss, M=32, ef=64)", *percentiles(d_ann),
                f"{speedup:.0f}× faster p50; recall@10 {statistics.mean(recall):.3f}; build "
                f"{build_s:.0f} s; {index_mb:,.0f} MB; first answer after restart "
                f"{restart_ann_s:.2f} s"),
            Row(size, "keyword (BM25, 3 terms)", *percentiles(bm25)),
            Row(size, "hybrid + query embedding, exact", *percentiles(h_exact)),
            Row(size, "hybrid + query embedding, HNSW", *percentiles(h_ann),
                f"insert {size / insert_s:,.0f} chunks/s"),
        ]  # fmt: skip
    finally:
        await ann.close()
        await exact.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per method")
    parser.add_argument("--workdir", type=Path, default=None, help="where the .db files go")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    words = vocabulary(VOCABULARY)
    embedder = LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2", batch_size=32)
    embedder.ensure_loaded()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        for size in args.sizes:
            queries = args.queries if size <= 100_000 else max(args.queries // 2, 50)
            rows += await measure(size, queries, words, embedder, Path(workdir))
            print(table(rows[-5:]), flush=True)
    await embedder.close()
    print(f"\n{table(rows)}")


if __name__ == "__main__":
    asyncio.run(main())
