"""Answers without an LLM: the best passages, quoted and cited, labelled as retrieved text.

Also answers Open WebUI's own `### Task:` requests (title, tags, follow-ups, queries) with the bare
JSON object it parses, so a ragbridge without an upstream never shows errors in the UI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from ragbridge.prompts import Language, detect_language, source_name
from ragbridge.retrieval.text import analyze
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

_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_JSON_FORMAT = re.compile(r'JSON format:\s*\{\s*"(\w+)"\s*:\s*(\[|")')
_FIRST_USER_LINE = re.compile(r"<chat_history>\s*USER:\s*(.+)")
_MAX_QUOTE_CHARS = 600


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def best_excerpt(text: str, query_terms: set[str], max_sentences: int = 3) -> str:
    """The passage's sentences that share most terms with the query, in their original order."""
    sentences = _sentences(text)
    if len(sentences) <= max_sentences:
        excerpt = " ".join(sentences)
    else:
        scored = sorted(
            range(len(sentences)),
            key=lambda i: -len(query_terms & set(analyze(sentences[i]))),
        )
        keep = sorted(scored[:max_sentences])
        excerpt = " … ".join(sentences[i] for i in keep)
    return excerpt if len(excerpt) <= _MAX_QUOTE_CHARS else excerpt[:_MAX_QUOTE_CHARS] + "…"


def extractive_answer(
    question: str, hits: Sequence[SearchHit], language: Language | None = None
) -> str:
    """A cited, quoted answer in the question's language (or `language`); `[n]` cites source n."""
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


def task_answer(prompt: str) -> str:
    """The bare JSON object an Open WebUI `### Task:` prompt asks for, without a model.

    A title comes from the first user message; lists (tags, follow-ups, queries) are empty.
    """
    match = _JSON_FORMAT.search(prompt)
    if not match:
        return "{}"
    key, kind = match.groups()
    if kind == "[":
        return json.dumps({key: []})
    value = ""
    if key == "title":
        first = _FIRST_USER_LINE.search(prompt)
        if first:
            words = _sentences(first.group(1))[0].split()
            value = " ".join(words[:6]).rstrip(".,!?;:。")
    return json.dumps({key: value}, ensure_ascii=False)
