"""Retrieval quality: nDCG@10 and Recall@100 (BEIR definitions, via ranx) for dense, keyword,
hybrid and hybrid+rerank, on SciFact (train queries; nDCG@10 of its even and odd query ids in
brackets), the Korean set and the two cross-lingual sets in `bench/data`, with per-query latency.
Everything goes through the real SqliteStore, analyzer and embedders (the default, USE, unless
`--models` names others).

    python -m bench.retrieval_quality                  # full run, markdown table on stdout
    python -m bench.retrieval_quality --models all-MiniLM-L6-v2 --datasets korean
    python -m bench.retrieval_quality --sweep          # also a fusion weight / RRF k grid
    python -m bench.retrieval_quality --rerank-url http://127.0.0.1:8080/v1 --rerank-model M

Corpus embeddings are cached in `bench/.cache/` (gitignored), keyed by model and texts.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from ranx import Qrels, Run, evaluate

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import (
    FusionConfig,
    Ranking,
    reciprocal_rank_fusion,
    relative_score_fusion,
)
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.retrieval.rerank import RemoteReranker, RerankConfig, Reranker
from ragbridge.settings import RetrievalMode, Settings
from ragbridge.store.base import DocumentRecord, NewChunk, SearchHit, Vector
from ragbridge.store.sqlite import SqliteStore

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
SCIFACT = BENCH.parent.parent / "shared" / "eval" / "scifact"
KOREAN = BENCH / "data" / "korean_qa.jsonl"
CROSSLINGUAL = BENCH / "data" / "crosslingual.jsonl"
METRICS = ["ndcg@10", "recall@100"]
USE_MODEL = "universal-sentence-encoder-multilingual"


@dataclass(frozen=True)
class Dataset:
    """A BEIR-style retrieval set: passages, queries and graded relevance judgements."""

    name: str
    passages: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_scifact(root: Path) -> Dataset:
    """SciFact from the shared eval folder: title + abstract per passage, train queries."""
    with gzip.open(root / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    passages = {d["_id"]: f"{d['title']}\n{d['text']}".strip() for d in docs}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, doc, score = line.split("\t")
        qrels.setdefault(qid, {})[doc] = int(score)
    queries = {}
    for line in (root / "queries.train.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["_id"] in qrels:
            queries[item["_id"]] = item["text"]
    return Dataset("scifact", passages, queries, qrels)


def load_korean(path: Path) -> Dataset:
    """The Korean set: `{"type": "passage"|"query", ...}` lines."""
    passages: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["type"] == "passage":
            passages[item["id"]] = f"{item['title']}\n{item['text']}"
        else:
            queries[item["id"]] = item["text"]
            qrels[item["id"]] = dict.fromkeys(item["relevant"], 1)
    return Dataset("korean", passages, queries, qrels)


def load_crosslingual(korean: Dataset) -> tuple[Dataset, Dataset]:
    """(`ko->en`, `en->ko`): Korean questions over English passages, and the reverse."""
    english: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for line in CROSSLINGUAL.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["type"] == "passage":
            english[item["id"]] = f"{item['title']}\n{item['text']}"
        else:
            queries[item["id"]] = item["text"]
            qrels[item["id"]] = dict.fromkeys(item["relevant"], 1)
    ko_en = Dataset("ko->en", english, korean.queries, korean.qrels)
    en_ko = Dataset("en->ko", korean.passages, queries, qrels)
    return ko_en, en_ko


class WhitespaceAnalyzer(Analyzer):
    """The naive baseline: lowercased `\\w+` words, no morphology, no stemming."""

    def analyze(self, text: str) -> list[str]:
        return [word.lower() for word in re.findall(r"[^\W_]+", text)]


async def corpus_vectors(embedder: Embedder, dataset: Dataset) -> Vector:
    """Passage embeddings, from the cache when the same model already embedded the same texts."""
    texts = list(dataset.passages.values())
    digest = hashlib.sha256("\0".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    path = CACHE / f"{dataset.name}-{embedder.name}-{digest}.npy"
    if path.exists():
        cached: Vector = np.load(path).astype(np.float32)
        return cached
    started = time.perf_counter()
    vectors = await embedder.embed_documents(texts)
    print(f"  embedded {len(texts)} passages in {time.perf_counter() - started:.0f} s")
    CACHE.mkdir(exist_ok=True)
    np.save(path, vectors)
    return vectors


async def build_collection(
    store: SqliteStore,
    name: str,
    dataset: Dataset,
    embedder: Embedder,
    vectors: Vector,
    analyzer: Analyzer,
) -> None:
    """One document with one chunk per passage (document id = passage id)."""
    await store.create_collection(name, embedder.name, embedder.dimension)
    for row, (doc_id, text) in enumerate(dataset.passages.items()):
        document = DocumentRecord(doc_id, name, doc_id, hashlib.sha1(text.encode()).hexdigest())
        chunk = NewChunk(text, analyzer.keywords(text), 0, {"doc": doc_id})
        await store.upsert_document(document, [chunk], vectors[row : row + 1])


def as_run(results: dict[str, list[SearchHit]]) -> dict[str, dict[str, float]]:
    """ranx run: per query, document id → a score that decreases with rank."""
    run: dict[str, dict[str, float]] = {}
    for qid, hits in results.items():
        ranked = dict.fromkeys(hit.chunk.document_id for hit in hits)  # a document once
        run[qid] = {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}
        if not run[qid]:
            run[qid] = {"__none__": 0.0}  # ranx needs every query present
    return run


def scores(dataset: Dataset, results: dict[str, list[SearchHit]]) -> dict[str, float]:
    run = Run(as_run(results))
    metrics = evaluate(Qrels(dataset.qrels), run, METRICS, save_results_in_run=False)
    return {name: float(value) for name, value in metrics.items()}


async def run_queries(
    retriever: HybridRetriever, collection: str, dataset: Dataset, mode: RetrievalMode, top_k: int
) -> tuple[dict[str, list[SearchHit]], list[float]]:
    results: dict[str, list[SearchHit]] = {}
    latencies: list[float] = []
    for qid, text in dataset.queries.items():
        started = time.perf_counter()
        results[qid] = await retriever.search(collection, text, top_k=top_k, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
    return results, latencies


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Row:
    dataset: str
    embedder: str
    method: str
    ndcg10: float
    recall100: float
    p50_ms: float
    p99_ms: float
    halves: tuple[float, ...] = ()
    """nDCG@10 on the even and the odd query ids apart (SciFact: tuned on one, checked on
    the other)."""

    def markdown(self) -> str:
        halves = " (" + " / ".join(f"{h:.3f}" for h in self.halves) + ")" if self.halves else ""
        return (
            f"| {self.dataset} | {self.embedder} | {self.method} | {self.ndcg10:.3f}{halves} "
            f"| {self.recall100:.3f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} |"
        )


async def measure(
    store: SqliteStore,
    collection: str,
    dataset: Dataset,
    model: str,
    mode: RetrievalMode,
    *,
    analyzer: Analyzer | None = None,
    reranker: Reranker | None = None,
    config: FusionConfig | None = None,
    label: str | None = None,
) -> tuple[Row, dict[str, list[SearchHit]]]:
    """nDCG@10 at the production depth (top_k=10, timed, fresh query-embedding cache), and
    Recall@100 from a second pass at top_k=100."""
    embedder = create_embedder(Settings(embedding_model=model, database_url=None))
    try:
        await embedder.embed_query("warm up the model")
        retriever = HybridRetriever(
            store, embedder, reranker=reranker, analyzer=analyzer, config=config
        )
        top10, latencies = await run_queries(retriever, collection, dataset, mode, 10)
        top100, _ = await run_queries(retriever, collection, dataset, mode, 100)
    finally:
        await embedder.close()
    ndcg = scores(dataset, top10)["ndcg@10"]
    recall = scores(dataset, top100)["recall@100"]
    qids = sorted(dataset.queries)
    halves = tuple(
        scores(replace(dataset, qrels={q: dataset.qrels[q] for q in part}),
               {q: top10[q] for q in part})["ndcg@10"]
        for part in (qids[0::2], qids[1::2])
    ) if dataset.name == "scifact" else ()  # fmt: skip
    row = Row(
        dataset.name, embedder.name, label or mode, ndcg, recall,
        statistics.median(latencies), percentile(latencies, 99), halves,
    )  # fmt: skip
    print(row.markdown(), flush=True)
    return row, top100


def sweep(
    dataset: Dataset, dense: dict[str, list[SearchHit]], keyword: dict[str, list[SearchHit]]
) -> None:
    """nDCG@10 of both fusions over the stored candidate lists (top 50 each), for a grid of
    dense weights (keyword weight 1.0) and, for RRF, of k. Relative fusion needs raw BM25
    scores, so the keyword runs must come from `mode="keyword"` (best = 1.0, same ratios)."""
    weights = (0.5, 0.75, 1.0, 1.25, 1.5)
    print(f"\nFusion sweep on {dataset.name}: nDCG@10 by dense weight {weights}")
    grid: list[tuple[str, Callable[[Sequence[Ranking]], list[tuple[str, float]]]]] = [
        ("relative", partial(relative_score_fusion, depth=50))
    ]
    grid += [(f"rrf k={k}", partial(reciprocal_rank_fusion, k=k)) for k in (10, 30, 60, 100)]
    for label, fuse in grid:
        cells = []
        for weight in weights:
            fused: dict[str, list[SearchHit]] = {}
            for qid in dataset.queries:
                lists = (dense[qid][:50], keyword[qid][:50])
                by_id = {h.chunk.id: h for hits in lists for h in hits}
                rankings = [
                    ([(h.chunk.id, h.score) for h in lists[0]], weight),
                    ([(h.chunk.id, h.score) for h in lists[1]], 1.0),
                ]
                fused[qid] = [replace(by_id[i], score=s) for i, s in fuse(rankings)[:10]]
            cells.append(f"{scores(dataset, fused)['ndcg@10']:.4f}")
        print(f"  {label:<10} " + "  ".join(cells))


@asynccontextmanager
async def indexed(
    dataset: Dataset, embedder: Embedder, analyzer: Analyzer
) -> AsyncIterator[tuple[SqliteStore, str]]:
    """A fresh store holding `dataset` as one collection. One store per collection, because
    the embedded store keeps one keyword index, and so one set of BM25 statistics, for all."""
    with tempfile.TemporaryDirectory(prefix="ragbridge-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.open()
        try:
            vectors = await corpus_vectors(embedder, dataset)
            collection = re.sub(r"\W", "-", f"{dataset.name}-{embedder.name}")
            started = time.perf_counter()
            await build_collection(store, collection, dataset, embedder, vectors, analyzer)
            print(f"  indexed in {time.perf_counter() - started:.0f} s", flush=True)
            yield store, collection
        finally:
            await store.close()


async def bench_dataset(
    dataset: Dataset, models: list[str], reranker: Reranker | None, args: argparse.Namespace
) -> list[Row]:
    rows: list[Row] = []
    for model in models:
        embedder = create_embedder(Settings(embedding_model=model, database_url=None))
        async with indexed(dataset, embedder, Analyzer()) as (store, collection):
            runs: dict[str, dict[str, list[SearchHit]]] = {}
            for mode in ("dense", "keyword", "hybrid"):
                row, runs[mode] = await measure(store, collection, dataset, model, mode)
                rows.append(row)
            row, _ = await measure(
                store, collection, dataset, model, "hybrid",
                config=FusionConfig(dense_weight=1.0, min_similarity=0.0),
                label="hybrid, equal weights, no floor (uncalibrated)",
            )  # fmt: skip
            rows.append(row)
            row, _ = await measure(
                store, collection, dataset, model, "hybrid",
                config=FusionConfig(fusion="rrf"), label="hybrid, RRF k=60",
            )  # fmt: skip
            rows.append(row)
            if reranker is not None:
                row, _ = await measure(
                    store, collection, dataset, model, "hybrid",
                    reranker=reranker, label="hybrid + rerank",
                )  # fmt: skip
                rows.append(row)
        if dataset.name == "korean" and model == models[0]:
            plain = WhitespaceAnalyzer()
            async with indexed(dataset, embedder, plain) as (store, collection):
                row, _ = await measure(
                    store, collection, dataset, model, "keyword",
                    analyzer=plain, label="keyword, whitespace words (no Kiwi)",
                )  # fmt: skip
                rows.append(row)
        if args.sweep:
            sweep(dataset, runs["dense"], runs["keyword"])
        await embedder.close()
    return rows


async def main(args: argparse.Namespace) -> list[Row]:
    reranker: Reranker | None = None
    if args.rerank_url:
        reranker = RemoteReranker(
            RerankConfig(base_url=args.rerank_url, model=args.rerank_model or "rerank")
        )
    rows: list[Row] = []
    korean = load_korean(KOREAN)
    ko_en, en_ko = load_crosslingual(korean)
    for name in args.datasets:
        if name == "scifact":
            print(f"SciFact from {args.scifact}", flush=True)
            dataset = load_scifact(args.scifact)
        else:
            dataset = {"korean": korean, "ko->en": ko_en, "en->ko": en_ko}[name]
        rows += await bench_dataset(dataset, args.models, reranker, args)
    if reranker is not None:
        await reranker.close()
    return rows


def cli() -> None:
    # Before torch loads (lazily, on the first embedding): one quiet thread pool, no downloads.
    for name, value in (("OMP_WAIT_POLICY", "PASSIVE"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--datasets", nargs="+", default=["scifact", "korean", "ko->en", "en->ko"])
    parser.add_argument(
        "--models", nargs="+", default=[USE_MODEL], help=f"default: {USE_MODEL} (the default)"
    )
    parser.add_argument("--sweep", action="store_true", help="print a fusion weight/k grid")
    parser.add_argument("--rerank-url", help="rerank endpoint base URL (…/v1)")
    parser.add_argument("--rerank-model", help="rerank model id")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    print("| set | embedder | method | nDCG@10 | Recall@100 | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = asyncio.run(main(args))
    if not args.rerank_url:
        print("\nhybrid + rerank: no reranker given (none is available offline)")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))


if __name__ == "__main__":
    cli()
