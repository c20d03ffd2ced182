"""`ragbridge eval`: retrieval quality on the user's own data (a BEIR folder, or a collection with
queries and qrels), per mode; usage in docs/embeddings.md. Metrics follow BEIR/trec_eval: nDCG@10
and MRR@10 from a top-10 search, Recall@100 from a top-100 search, gains = relevance grades."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ragbridge.embeddings.base import Embedder
from ragbridge.retrieval.analyzer import default_analyzer
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import RetrievalMode, Settings
from ragbridge.store.base import DocumentRecord, NewChunk, SearchHit, Store

Qrels = dict[str, dict[str, int]]
Progress = Callable[[int], None]
"""Called with the number of searches just done."""


class EvalDataError(ValueError):
    """A file of the evaluation set is missing or malformed; the message names file and line."""


@dataclass
class EvalSet:
    """Passages (empty for an existing collection), queries and graded judgements."""

    queries: dict[str, str]
    qrels: Qrels
    passages: dict[str, str] = field(default_factory=dict)


@dataclass
class ModeResult:
    mode: str
    ndcg10: float
    recall100: float
    mrr10: float
    p50_ms: float
    p95_ms: float


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; gzip when the name ends in .gz."""
    if not path.is_file():
        raise EvalDataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield number, line
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot be read: {exc}") from exc


def _records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    for number, line in _lines(path):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("_id"), str | int):
            raise EvalDataError(f"{path}:{number}: expected an object with an `_id`")
        yield number, item


def load_corpus(path: Path) -> dict[str, str]:
    """`{"_id", "title"?, "text"}` lines → id → "title\\ntext"."""
    passages: dict[str, str] = {}
    for number, item in _records(path):
        text = item.get("text")
        if not isinstance(text, str):
            raise EvalDataError(f"{path}:{number}: `text` must be a string")
        title = item.get("title") or ""
        passages[str(item["_id"])] = f"{title}\n{text}".strip()
    if not passages:
        raise EvalDataError(f"{path}: no passages")
    return passages


def load_queries(path: Path) -> dict[str, str]:
    """`{"_id", "text"}` lines → id → text."""
    queries: dict[str, str] = {}
    for number, item in _records(path):
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise EvalDataError(f"{path}:{number}: `text` must be a non-empty string")
        queries[str(item["_id"])] = text
    return queries


def load_qrels(path: Path) -> Qrels:
    """TSV `query-id  corpus-id  score` (a header line is skipped) → query → doc → grade."""
    qrels: Qrels = {}
    for number, line in _lines(path):
        fields = line.rstrip("\n").split("\t")
        if number == 1 and fields[0] in ("query-id", "query_id", "qid"):
            continue
        if len(fields) == 4:  # TREC: qid 0 doc score
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise EvalDataError(f"{path}:{number}: expected query-id, corpus-id and score")
        try:
            grade = int(float(fields[2]))
        except ValueError:
            raise EvalDataError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
        qrels.setdefault(fields[0], {})[fields[1]] = grade
    return qrels


def _one(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise EvalDataError(f"{folder}: several {what} files ({names}); pass --split")
    raise EvalDataError(f"{folder}: no {what} file ({' or '.join(patterns)})")


def load_beir(folder: Path, split: str | None = None) -> EvalSet:
    """A BEIR folder; `split` picks `qrels/<split>.tsv` and `queries.<split>.jsonl`."""
    if not folder.is_dir():
        raise EvalDataError(f"{folder}: not a folder")
    corpus = _one(folder, ("corpus.jsonl", "corpus.jsonl.gz"), "corpus")
    qrels_file = (
        folder / "qrels" / f"{split}.tsv" if split else _one(folder / "qrels", ("*.tsv",), "qrels")
    )
    split = split or qrels_file.stem
    queries_file = _one(folder, (f"queries.{split}.jsonl", "queries.jsonl"), "queries")
    return pair(load_queries(queries_file), load_qrels(qrels_file), load_corpus(corpus))


def pair(queries: dict[str, str], qrels: Qrels, passages: dict[str, str] | None = None) -> EvalSet:
    """Queries that have judgements (BEIR evaluates only those); an error if none do."""
    judged = {qid: text for qid, text in queries.items() if any(qrels.get(qid, {}).values())}
    if not judged:
        raise EvalDataError("no query has a relevance judgement (check the ids in the qrels)")
    return EvalSet(judged, {qid: qrels[qid] for qid in judged}, passages or {})


async def index_passages(
    store: Store, collection: str, passages: dict[str, str], embedder: Embedder
) -> None:
    """One document of one chunk per passage (document source = passage id)."""
    await store.create_collection(collection, embedder.name, embedder.dimension)
    analyzer = default_analyzer()
    ids = list(passages)
    batch = 256
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        vectors = await embedder.embed_documents([passages[i] for i in part])
        for row, doc_id in enumerate(part):
            text = passages[doc_id]
            digest = hashlib.sha1(text.encode()).hexdigest()
            record = DocumentRecord(doc_id, collection, doc_id, digest)
            chunk = NewChunk(text, analyzer.keywords(text), 0, {"source": doc_id})
            await store.upsert_document(record, [chunk], vectors[row : row + 1])


def ranked_documents(hits: list[SearchHit]) -> list[str]:
    """Document keys (source name, else document id) in hit order, each once."""
    keys = (hit.chunk.metadata.get("source") or hit.chunk.document_id for hit in hits)
    return list(dict.fromkeys(str(key) for key in keys))


def ndcg_at(ranking: list[str], judged: dict[str, int], k: int = 10) -> float:
    gains = [judged.get(doc, 0) for doc in ranking[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def recall_at(ranking: list[str], judged: dict[str, int], k: int = 100) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    return len(relevant & set(ranking[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranking: list[str], judged: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


async def evaluate_mode(
    retriever: HybridRetriever,
    collection: str,
    data: EvalSet,
    mode: RetrievalMode,
    progress: Progress | None = None,
) -> ModeResult:
    """The mode's metrics over every judged query (two searches each: top 10 and top 100)."""
    ndcg, mrr, recall, latencies = [], [], [], []
    for qid, text in data.queries.items():
        started = time.perf_counter()
        top10 = ranked_documents(await retriever.search(collection, text, top_k=10, mode=mode))
        latencies.append((time.perf_counter() - started) * 1000)
        top100 = ranked_documents(await retriever.search(collection, text, top_k=100, mode=mode))
        ndcg.append(ndcg_at(top10, data.qrels[qid]))
        mrr.append(mrr_at(top10, data.qrels[qid]))
        recall.append(recall_at(top100, data.qrels[qid]))
        if progress is not None:
            progress(1)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    label = "reranked" if retriever.reranker is not None else mode
    return ModeResult(
        label,
        statistics.fmean(ndcg),
        statistics.fmean(recall),
        statistics.fmean(mrr),
        statistics.median(latencies),
        p95,
    )


async def run_evaluation(
    settings: Settings,
    data: EvalSet,
    collection: str | None,
    modes: list[RetrievalMode],
    progress: Callable[[str, int], Progress] | None = None,
) -> list[ModeResult]:
    """Every mode (and `reranked` when a reranker is configured) over `data`: on `collection`,
    or on `data.passages` indexed into a throw-away SQLite store."""
    from ragbridge.bridge import open as open_ragbridge

    with tempfile.TemporaryDirectory(prefix="ragbridge-eval-") as tmp:  # for a BEIR folder
        # No shared query-vector cache: latencies are this process's.
        local: dict[str, object] = {"redis_url": None}
        if collection is None:
            local |= {"data_dir": Path(tmp), "database_url": None}
        async with open_ragbridge(settings.model_copy(update=local)) as bridge:
            if collection is None:
                collection = "eval"
                await index_passages(bridge.store, collection, data.passages, bridge.embedder)
            elif await bridge.collection(collection) is None:
                raise EvalDataError(f"collection {collection!r} not found")
            reranking = bridge.retriever
            plain = HybridRetriever(bridge.store, bridge.embedder, config=reranking.config)
            runs: list[tuple[str, HybridRetriever, RetrievalMode]] = [
                (mode, plain, mode) for mode in modes
            ]
            if reranking.reranker is not None:
                runs.append(("reranked", reranking, "hybrid"))
            results = []
            for label, retriever, mode in runs:
                step = progress(label, len(data.queries)) if progress else None
                results.append(await evaluate_mode(retriever, collection, data, mode, step))
            return results
