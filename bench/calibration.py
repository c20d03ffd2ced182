"""An embedder's relevance floor, dense weight and cosine origin
(`ragbridge.embeddings.names.CALIBRATIONS`), measured: nDCG@10 of hybrid search before (equal
weights, no floor, origin 0) and with the calibration, on
SciFact-train (its even and odd halves apart), the Korean, cross-lingual and mixed sets, and the
best cosine off-topic questions get.

    nice -n 10 python -m bench.calibration                     # the default embedder
    nice -n 10 python -m bench.calibration --weights 0.5 0.75 --floors 0.12 0.15
    nice -n 10 python -m bench.calibration --model multilingual-e5-small --origins 0.75 0.78

Each query's dense (cosine) and keyword (BM25) top-100 come once from the real SqliteStore,
analyzer and embedder; the fusions are then replayed offline by `from_origin` and
`relative_score_fusion`, the same functions the retriever calls (the "before" column equals
`bench.retrieval_quality`'s hybrid row).
`mixed-a`/`mixed-b`: the Korean set's 50 topics with odd passages in Korean and even ones in
English (or the reverse), asked by its Korean and the cross-lingual set's English questions.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.retrieval_quality import (
    KOREAN,
    SCIFACT,
    Dataset,
    indexed,
    load_crosslingual,
    load_korean,
    load_scifact,
)
from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import USE_MULTILINGUAL, calibration
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.fusion import from_origin, relative_score_fusion
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import Settings
from ragbridge.text.scripts import cross_script

DEPTH = 50  # candidates per retriever, as the retriever asks for
Candidates = dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]]]]
"""Per query id: dense (passage id, cosine) and keyword (passage id, BM25), best first."""


async def candidates(embedder: Embedder, corpus: Dataset, queries: dict[str, str]) -> Candidates:
    """Each query's dense and keyword top-100 over `corpus`, through the real retriever."""
    out: Candidates = {}
    async with indexed(corpus, embedder, Analyzer()) as (store, collection):
        retriever = HybridRetriever(store, embedder)
        for qid, text in queries.items():
            dense = await retriever._dense(collection, text, 100, None)
            keyword = await retriever._keyword(collection, text, 100, None)
            out[qid] = (
                [(h.chunk.document_id, h.score) for h in dense],
                [(h.chunk.document_id, h.score) for h in keyword],
            )
    return out


def fused(
    query: str,
    dense: list[tuple[str, float]],
    keyword: list[tuple[str, float]],
    texts: dict[str, str],
    weight: float,
    floor: float,
    origin: float,
) -> list[str]:
    """The passage ids hybrid search returns, as `HybridRetriever` fuses and floors them."""
    dense, keyword = dense[:DEPTH], keyword[:DEPTH]
    found = {doc for doc, _ in keyword}
    blind = {doc for doc, _ in dense if doc not in found and cross_script(query, texts[doc])}
    shifted = from_origin(dense, origin)
    ranking = relative_score_fusion([(shifted, weight), (keyword, 1.0)], DEPTH, [set(), blind])
    low = {doc for doc, cos in dense if cos < floor} - found
    return [doc for doc, score in ranking if score > 0 and doc not in low]


def ndcg10(ranked: Sequence[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def score(data: Dataset, found: Candidates, weight: float, floor: float, origin: float) -> float:
    values = [
        ndcg10(
            fused(data.queries[q], *found[q], data.passages, weight, floor, origin), data.qrels[q]
        )
        for q in found
    ]
    return float(np.mean(values))


def mixed(korean: Dataset, english: Dataset, queries: Dataset, flip: bool) -> Dataset:
    """Each topic in one language only: odd passages Korean, even English (or the reverse)."""
    passages = {
        pid: (korean if (int(pid[1:]) % 2 == 1) != flip else english).passages[pid]
        for pid in korean.passages
    }
    return Dataset(
        "mixed-b" if flip else "mixed-a",
        passages,
        {**korean.queries, **queries.queries},
        {**korean.qrels, **queries.qrels},
    )


async def main(args: argparse.Namespace) -> None:
    embedder = create_embedder(Settings(embedding_model=args.model, database_url=None))
    measured = calibration(embedder.name)
    korean = load_korean(KOREAN)
    ko_en, en_ko = load_crosslingual(korean)
    sets = [
        korean,
        en_ko,
        ko_en,
        mixed(korean, ko_en, en_ko, False),
        mixed(korean, ko_en, en_ko, True),
    ]
    scifact = load_scifact(args.scifact) if (args.scifact / "qrels").is_dir() else None
    if scifact is None:
        print(f"SciFact absent at {args.scifact}: skipped")
    else:
        qids = sorted(scifact.queries)
        for half in (0, 1):  # named "scifact" so both halves share its cached embeddings
            chosen = {q: scifact.queries[q] for q in qids[half::2]}
            sets.append(Dataset("scifact", scifact.passages, chosen, scifact.qrels))
    weight, floor, origin = measured.dense_weight, measured.min_similarity, measured.cosine_origin
    grid = [(1.0, 0.0, 0.0), (weight, floor, origin)]
    grid += [(w, floor, origin) for w in args.weights]
    grid += [(weight, f, origin) for f in args.floors]
    grid += [(weight, floor, o) for o in args.origins]
    grid = list(dict.fromkeys(grid))
    print(
        f"nDCG@10, {embedder.name}; columns: dense weight / floor / cosine origin (first: before)"
    )
    print("| set | " + " | ".join(f"{w:g} / {f:g} / {o:g}" for w, f, o in grid) + " |")
    print("| --- |" + " ---: |" * len(grid))
    for data in sets:
        found = await candidates(embedder, data, data.queries)
        cells = " | ".join(f"{score(data, found, *cell):.3f}" for cell in grid)
        label = f"{data.name}, {len(data.queries)} queries"
        print(f"| {label} | {cells} |", flush=True)
    if scifact is not None:
        found = await candidates(embedder, scifact, {**korean.queries, **en_ko.queries})
        for name, questions in (("Korean", korean.queries), ("English", en_ko.queries)):
            best = np.asarray([found[q][0][0][1] for q in questions if found[q][0]])
            print(
                f"off-topic: the {name} set's questions over SciFact, best cosine "
                f"p50 {np.percentile(best, 50):.3f} p90 {np.percentile(best, 90):.3f}"
            )
    await embedder.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=USE_MULTILINGUAL)
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.75])
    parser.add_argument("--floors", type=float, nargs="*", default=[0.12, 0.2])
    parser.add_argument("--origins", type=float, nargs="*", default=[])
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
