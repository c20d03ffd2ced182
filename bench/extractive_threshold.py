"""Calibrate extractive answers' "nothing relevant found" threshold on SciFact-train.

    python -m bench.extractive_threshold [--scifact ../shared/eval/scifact] [--limit N]

Without an LLM, ragbridge quotes passages; when even the best passage holds too few of the
question's terms (`ragbridge.llm.extractive.term_coverage`), it says nothing relevant was found.
The measure is lexical (the question's analysed terms found in the passage), so it does not move
when the embedding model changes, and it reads Korean through the same analyser.

- on-topic: each SciFact-train claim against its judged-relevant abstract (best 180-word window,
  about one stored chunk): the passage that should be quoted.
- off-topic: the same claims asked of ragbridge's own docs/ (the `sample` collection a first run
  ingests), best window of all: a user asking the wrong collection.
- for scale, same-domain misses: each claim against the SciFact corpus without its relevant
  abstracts (best window of all) - the limit of a lexical test, reported, not optimised.

The threshold chosen is the one that best separates the two (most on-topic passages quoted plus
most off-topic questions turned away, Youden's J; the lower one on a tie, to quote rather than
stay silent), printed with both shares at several thresholds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

from ragbridge.llm.extractive import RELEVANCE_THRESHOLD, term_coverage
from ragbridge.retrieval.analyzer import analyze

BENCH = Path(__file__).resolve().parent
SCIFACT = BENCH.parent.parent / "shared" / "eval" / "scifact"
DOCS = BENCH.parent / "docs"
WINDOW_WORDS = 180


def windows(text: str, size: int = WINDOW_WORDS) -> list[str]:
    """Overlapping word windows, about the size of one stored chunk."""
    words = text.split()
    step = size // 2
    return [" ".join(words[i : i + size]) for i in range(0, max(1, len(words) - step), step)]


def load_scifact(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as corpus_file:
        corpus = {}
        for line in corpus_file:
            doc = json.loads(line)
            corpus[doc["_id"]] = f"{doc['title']}\n{doc['text']}"
    queries = {}
    for line in (folder / "queries.train.jsonl").read_text(encoding="utf-8").splitlines():
        query = json.loads(line)
        queries[query["_id"]] = query["text"]
    qrels: dict[str, set[str]] = defaultdict(set)
    for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0:
            qrels[query_id].add(doc_id)
    return corpus, queries, qrels


def best(terms: set[str], passages: list[tuple[str, set[str]]]) -> float:
    if not terms:
        return 0.0
    return max((len(terms & analysed) / len(terms) for _, analysed in passages), default=0.0)


def share_at_least(values: list[float], threshold: float) -> float:
    return sum(v >= threshold for v in values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--limit", type=int, default=0, help="first N queries only (0: all)")
    args = parser.parse_args()
    if not (args.scifact / "queries.train.jsonl").exists():
        sys.exit(f"SciFact not found at {args.scifact} (expected ../shared/eval/scifact): skipped")

    corpus, queries, qrels = load_scifact(args.scifact)
    judged = [q for q in queries if q in qrels and qrels[q] & corpus.keys()]
    if args.limit:
        judged = judged[: args.limit]
    texts = [path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md"))]
    docs = [(w, set(analyze(w))) for text in texts for w in windows(text)]
    corpus_windows = {
        doc_id: [(w, set(analyze(w))) for w in windows(text)] for doc_id, text in corpus.items()
    }
    on_topic, off_topic, same_domain = [], [], []
    for query_id in judged:
        terms = set(analyze(queries[query_id]))
        relevant = qrels[query_id]
        on_topic.append(best(terms, [w for d in relevant for w in corpus_windows.get(d, [])]))
        off_topic.append(best(terms, docs))
        others = [w for d, ws in corpus_windows.items() if d not in relevant for w in ws]
        same_domain.append(best(terms, others))
        assert abs(term_coverage(terms, queries[query_id]) - 1.0) < 1e-9 or not terms

    candidates = sorted(set(on_topic))
    chosen = max(
        candidates,
        key=lambda t: (share_at_least(on_topic, t) - share_at_least(off_topic, t), -t),
    )
    print(f"SciFact-train claims with a judged abstract: {len(judged)}; docs/ windows: {len(docs)}")
    print(
        "| threshold | on-topic quoted | off-topic (docs/) turned away "
        "| same-domain misses turned away |"
    )
    print("| ---: | ---: | ---: | ---: |")
    shown = {0.1, 0.15, 0.2, 0.25, 0.3, round(chosen, 3), RELEVANCE_THRESHOLD, 0.4}
    for threshold in sorted(shown):
        print(
            f"| {threshold:.2f} | {share_at_least(on_topic, threshold):.1%} "
            f"| {1 - share_at_least(off_topic, threshold):.1%} "
            f"| {1 - share_at_least(same_domain, threshold):.1%} |"
        )
    print(f"\nbest separating threshold (Youden's J): {chosen:.3f}")
    print(f"ragbridge.llm.extractive.RELEVANCE_THRESHOLD = {RELEVANCE_THRESHOLD}")


if __name__ == "__main__":
    main()
