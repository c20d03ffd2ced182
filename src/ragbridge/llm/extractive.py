"""Answers without an LLM: the best passages, quoted and cited, labelled as retrieved text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ragbridge.llm.sentences import sentences
from ragbridge.prompts import Language, detect_language, source_name
from ragbridge.retrieval.analyzer import analyze
from ragbridge.store.base import SearchHit

HEADERS: dict[Language, str] = {
    "en": "Retrieved from your documents (no language model is configured, so these are "
    "quoted passages, not a generated answer):",
    "ko": "문서에서 찾은 내용입니다 (언어 모델이 설정되지 않아 생성된 답변이 아니라 원문을 "
    "인용합니다):",
}
NOTHING_FOUND: dict[Language, str] = {
    "en": "I found nothing in the documents that answers this question.",
    "ko": "문서에서 이 질문에 답할 수 있는 내용을 찾지 못했습니다.",
}

# Fewer of the question's terms than this in the best passage: nothing relevant was found.
# Calibrated with bench/extractive_threshold.py on SciFact-train claims; see docs/benchmarks.md.
RELEVANCE_THRESHOLD = 0.28

_MAX_QUOTE_CHARS = 600


def term_coverage(question_terms: set[str], text: str) -> float:
    """The share of the question's terms that `text` contains (0 when the question has none)."""
    if not question_terms:
        return 0.0
    return len(question_terms & set(analyze(text))) / len(question_terms)


def relevant_hits(
    question: str, hits: Sequence[SearchHit], threshold: float = RELEVANCE_THRESHOLD
) -> list[SearchHit]:
    """The hits sharing at least `threshold` of the question's terms (none for an off-topic
    question); all of them for a question with no searchable terms (nothing to judge)."""
    terms = set(analyze(question))
    if not terms:
        return list(hits)
    return [hit for hit in hits if term_coverage(terms, hit.chunk.text) >= threshold]


def best_excerpt(text: str, query_terms: set[str], max_sentences: int = 3) -> str:
    """Up to `max_sentences` whole sentences of the passage that share most terms with the
    query, in order (`…` between ones not adjacent); one cut off at the chunk's edge only when
    nothing else is left, so the quote never ends mid-sentence."""
    found = sentences(text)
    whole = [s for s in found if s.complete] or found
    if not whole:
        return ""
    overlap = [len(query_terms & set(analyze(s.text))) for s in whole]
    ranked = sorted(range(len(whole)), key=lambda i: (-overlap[i], i))
    keep: list[int] = []
    length = 0
    for index in ranked[:max_sentences]:
        if keep and length + len(whole[index].text) > _MAX_QUOTE_CHARS:
            continue
        keep.append(index)
        length += len(whole[index].text)
    keep.sort()
    parts = [whole[keep[0]].text]
    for before, index in itertools.pairwise(keep):
        adjacent = found.index(whole[index]) == found.index(whole[before]) + 1
        parts.append((" " if adjacent else " … ") + whole[index].text)
    return "".join(parts)


def extractive_answer(
    question: str, hits: Sequence[SearchHit], language: Language | None = None
) -> str:
    """A cited, quoted answer in the question's language (or `language`); `[n]` cites source n.
    Pass `relevant_hits(...)`: with no hits the answer says plainly that nothing was found."""
    language = language or detect_language(question)
    if not hits:
        return NOTHING_FOUND[language]
    terms = set(analyze(question))
    lines = [HEADERS[language], ""]
    for number, hit in enumerate(hits, start=1):
        quote = best_excerpt(hit.chunk.text, terms)
        lines.append(f"> {quote} [{number}]")
        lines.append(f"> — {source_name(hit)}")
        lines.append("")
    return "\n".join(lines).rstrip()
