"""Fusion grid for the default embedder: nDCG@10 of hybrid variants replayed offline.

    nice -n 10 python -m bench.fusion_study [--scifact PATH]

Each query's dense (cosine) and keyword (BM25) top-1000 come once from the real SqliteStore,
analyzer and USE (cached in `bench/.cache/study-*.pkl`); the variants (relative fusion with other
weights, an absolute cosine origin, min-max and z-score normalisation, RRF, candidate depth, a
floor gated on the best cosine) are then fused offline with the retriever's cross-script and
floor rules. Columns: SciFact-train even / odd query ids, Korean, ko->en, en->ko.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrieval_quality import (
    CACHE,
    KOREAN,
    SCIFACT,
    Dataset,
    indexed,
    load_crosslingual,
    load_korean,
    load_scifact,
)
from ragbridge.embeddings import create_embedder
from ragbridge.retrieval.analyzer import Analyzer
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.settings import Settings
from ragbridge.text.scripts import cross_script

MODEL = "universal-sentence-encoder-multilingual"
List = list[tuple[str, float]]


async def collect(
    tag: str, scifact: Path, model: str = MODEL
) -> dict[str, tuple[Dataset, dict[str, tuple[List, List]]]]:
    dpath = CACHE / f"study-dense-{model}.pkl"
    kpath = CACHE / f"study-kw-{tag}.pkl"
    dense_all = pickle.loads(dpath.read_bytes()) if dpath.exists() else None
    kw_all = pickle.loads(kpath.read_bytes()) if kpath.exists() else None
    embedder = create_embedder(Settings(embedding_model=model, database_url=None))
    korean = load_korean(KOREAN)
    ko_en, en_ko = load_crosslingual(korean)
    sets = [load_scifact(scifact), korean, ko_en, en_ko]
    new_dense, new_kw = {}, {}
    analyzer = Analyzer()
    for data in sets:
        if dense_all is not None and kw_all is not None:
            break
        async with indexed(data, embedder, analyzer) as (store, collection):
            retriever = HybridRetriever(store, embedder, analyzer=analyzer)
            d, k = {}, {}
            for qid, text in data.queries.items():
                if dense_all is None:
                    hits = await retriever._dense(collection, text, 1000, None)
                    d[qid] = [(h.chunk.document_id, h.score) for h in hits]
                if kw_all is None:
                    hits = await retriever._keyword(collection, text, 1000, None)
                    k[qid] = [(h.chunk.document_id, h.score) for h in hits]
            new_dense[data.name], new_kw[data.name] = d, k
        print("collected", data.name, flush=True)
    await embedder.close()
    if dense_all is None:
        dense_all = new_dense
        dpath.write_bytes(pickle.dumps(dense_all))
    if kw_all is None:
        kw_all = new_kw
        kpath.write_bytes(pickle.dumps(kw_all))
    return {
        data.name: (
            data,
            {q: (dense_all[data.name][q], kw_all[data.name][q]) for q in data.queries},
        )
        for data in sets
    }


def ndcg10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


Norm = Callable[[List, int], tuple[dict[str, float], float]]


def n_relative(hits: List, depth: int) -> tuple[dict[str, float], float]:
    best = max((s for _, s in hits), default=0.0)
    rel = {d: max(0.0, s) / max(best, 1e-9) for d, s in hits}
    return rel, (min(rel.values()) if hits and len(hits) >= depth else 0.0)


def n_minmax(hits: List, depth: int) -> tuple[dict[str, float], float]:
    if not hits:
        return {}, 0.0
    hi = hits[0][1]
    lo = hits[-1][1] if len(hits) >= depth else 0.0
    span = max(hi - lo, 1e-9)
    return {d: max(0.0, (s - lo) / span) for d, s in hits}, 0.0


def n_minmax_abs(hits: List, depth: int, lo: float = 0.0) -> tuple[dict[str, float], float]:
    """Dense: (cos - lo)/(max - lo) with a fixed lo."""
    if not hits:
        return {}, 0.0
    hi = hits[0][1]
    span = max(hi - lo, 1e-9)
    rel = {d: max(0.0, (s - lo) / span) for d, s in hits}
    return rel, (min(rel.values()) if len(hits) >= depth else 0.0)


def n_z(hits: List, depth: int) -> tuple[dict[str, float], float]:
    if not hits:
        return {}, 0.0
    v = np.array([s for _, s in hits])
    mu, sd = v.mean(), v.std() + 1e-9
    rel = {d: (s - mu) / sd for d, s in hits}
    return rel, (min(rel.values()) if len(hits) >= depth else float(min(rel.values())) - 1)


def fuse(
    query: str,
    dense: List,
    keyword: List,
    texts: dict[str, str],
    w: float,
    floor: float,
    ddepth: int,
    kdepth: int,
    dnorm: Norm,
    knorm: Norm,
    rrf: float = 0.0,
    gate: float = 0.0,
) -> list[str]:
    dense, keyword = dense[:ddepth], keyword[:kdepth]
    found = {d for d, _ in keyword}
    blind = {d for d, _ in dense if d not in found and cross_script(query, texts[d])}
    if gate and dense and dense[0][1] >= gate:
        low = {d for d, c in dense if c < floor} - found
    elif gate:
        low = {d for d, c in dense} - found
    else:
        low = {d for d, c in dense if c < floor} - found
    if rrf:
        dr = {d: i for i, (d, _) in enumerate(dense, 1)}
        kr = {d: i for i, (d, _) in enumerate(keyword, 1)}
        scores = {}
        for d in dict.fromkeys([*dr, *kr]):
            s = w / (rrf + dr[d]) if d in dr else 0.0
            if d not in blind:
                s += 1 / (rrf + kr[d]) if d in kr else 0.0
                s /= w / (rrf + 1) + 1 / (rrf + 1)
            else:
                s /= w / (rrf + 1)
            scores[d] = s
    else:
        drel, dfl = dnorm(dense, ddepth)
        krel, kfl = knorm(keyword, kdepth)
        scores = {}
        for d in dict.fromkeys([*drel, *krel]):
            ds = drel.get(d, dfl) if w > 0 else 0.0
            if d in blind:
                scores[d] = ds
            else:
                scores[d] = (w * ds + krel.get(d, kfl)) / (w + 1)
    ranked = sorted(scores, key=lambda d: scores[d], reverse=True)
    return [d for d in ranked if d not in low][:10]


def evaluate(
    data: Dataset, found: dict[str, tuple[List, List]], qids: list[str], **kw: Any
) -> float:
    return float(
        np.mean(
            [
                ndcg10(fuse(data.queries[q], *found[q], data.passages, **kw), data.qrels[q])
                for q in qids
            ]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    sets = asyncio.run(collect("base", parser.parse_args().scifact))
    sci, sfound = sets["scifact"]
    qids = sorted(sci.queries)
    halves = {"sA": qids[0::2], "sB": qids[1::2]}
    others = {n: sets[n] for n in ("korean", "ko->en", "en->ko")}

    def row(label: str, **kw: Any) -> None:
        cells = [evaluate(sci, sfound, halves[h], **kw) for h in ("sA", "sB")]
        cells += [evaluate(d, f, sorted(d.queries), **kw) for d, f in others.values()]
        print(f"{label:<40} " + " ".join(f"{c:.4f}" for c in cells), flush=True)

    print(f"{'config':<40} sciA   sciB   korean ko->en en->ko")
    base = dict(ddepth=50, kdepth=50, dnorm=n_relative, knorm=n_relative)
    minmax = dict(base, dnorm=n_minmax, knorm=n_minmax)
    row("dense only", **{**base, "kdepth": 0}, w=1.0, floor=0.0)
    row("current: relative, w 0.5, floor 0.15", **base, w=0.5, floor=0.15)
    row("relative, w 1.0, no floor", **base, w=1.0, floor=0.0)
    for w in (0.3, 1.0):
        row(f"rrf k=60, w {w}, floor 0.15", **base, w=w, floor=0.15, rrf=60)
    for w in (0.3, 0.5, 1.0):
        row(f"min-max, w {w}, floor 0.15", **minmax, w=w, floor=0.15)
    deep = {**minmax, "ddepth": 200, "kdepth": 200}
    row("min-max, w 0.5, floor 0.15, depth 200", **deep, w=0.5, floor=0.15)
    for lo, w in ((0.1, 0.5), (0.2, 0.5), (0.3, 0.3)):
        origin = partial(n_minmax_abs, lo=lo)
        row(f"cosine origin {lo}, w {w}, floor 0.15", **{**base, "dnorm": origin}, w=w, floor=0.15)
    for w in (0.3, 0.5):
        zscore = {**base, "dnorm": n_z, "knorm": n_z}
        row(f"z-score, w {w}, floor 0.15", **zscore, w=w, floor=0.15)
    for g, f in ((0.15, 0.10), (0.15, 0.05)):
        row(f"floor {f} if best cosine >= {g}, w 0.5", **base, w=0.5, floor=f, gate=g)


if __name__ == "__main__":
    main()
