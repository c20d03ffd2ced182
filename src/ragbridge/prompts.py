"""Prompt templates (English and Korean), numbered context, and Open WebUI citation payloads;
passages are numbered `[1]..[n]` in source-event order, so `[n]` markers become citation chips."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ragbridge.store.base import ChunkRecord, SearchHit
from ragbridge.text.scripts import HANGUL

Language = Literal["en", "ko"]

_LETTER = re.compile(r"[^\W\d_]")

SYSTEM_TEMPLATES: dict[Language, str] = {
    "en": (
        "Answer the user's question using only the numbered passages below, which come from "
        "the user's own documents. Cite every claim with the passage number in square brackets, "
        "like [1] or [2][3]. If the passages do not contain the answer, say that the documents "
        "do not cover it instead of guessing. Answer in the language of the question.\n\n"
        "Passages:\n{context}"
    ),
    "ko": (
        "아래 번호가 매겨진 문서 발췌만을 근거로 사용자의 질문에 답하세요. 발췌는 사용자가 "
        "가진 문서에서 가져온 것입니다. 모든 주장 뒤에 [1] 또는 [2][3]처럼 발췌 번호를 대괄호로 "
        "표시하세요. 발췌에 답이 없으면 추측하지 말고 문서에 해당 내용이 없다고 답하세요. "
        "질문과 같은 언어로 답하세요.\n\n발췌:\n{context}"
    ),
}

NO_CONTEXT_TEMPLATES: dict[Language, str] = {
    "en": (
        "The user's documents contain nothing relevant to this question. Tell the user that the "
        "documents do not cover it; do not invent an answer."
    ),
    "ko": (
        "사용자의 문서에서 이 질문과 관련된 내용을 찾지 못했습니다. 문서에 해당 내용이 없다고 "
        "알려 주고, 답을 지어내지 마세요."
    ),
}


def detect_language(text: str) -> Language:
    """Korean when at least a fifth of the letters are Hangul, else English."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return "en"
    return "ko" if len(HANGUL.findall(text)) / letters >= 0.2 else "en"


def source_name(hit: SearchHit) -> str:
    """The name a citation shows: the document's file name or title."""
    meta = hit.chunk.metadata
    name = meta.get("name") or meta.get("source") or meta.get("title") or hit.chunk.document_id
    return f"{name}#{meta['record']}" if meta.get("record") else str(name)


def page_index(chunk: ChunkRecord) -> int | None:
    """A passage's 0-based page, when its document has pages."""
    page = chunk.metadata.get("page")
    return page if isinstance(page, int) and not isinstance(page, bool) else None


def source_label(hit: SearchHit) -> str:
    """A passage's source in the prompt and in annotations: its name, and page (1-based)."""
    page = page_index(hit.chunk)
    return source_name(hit) + (f", page {page + 1}" if page is not None else "")


def format_context(hits: Sequence[SearchHit]) -> str:
    """Passages numbered from 1, each with its source and page."""
    return "\n\n".join(
        f"[{number}] ({source_label(hit)})\n{hit.chunk.text.strip()}"
        for number, hit in enumerate(hits, start=1)
    )


def fit_to_budget(
    hits: Sequence[SearchHit], budget_tokens: int, count_tokens: Callable[[str], int]
) -> list[SearchHit]:
    """The best-first prefix of `hits` whose passages fit in `budget_tokens`."""
    kept: list[SearchHit] = []
    used = 0
    for hit in hits:
        cost = count_tokens(hit.chunk.text) + 16  # number, source line, separators
        if used + cost > budget_tokens:
            break
        kept.append(hit)
        used += cost
    return kept


def with_context(
    messages: Sequence[dict[str, Any]],
    hits: Sequence[SearchHit],
    language: Language,
    template: str | None = None,
) -> list[dict[str, Any]]:
    """The whole conversation after a system message with the RAG instructions: the configured
    or the language's template with the passages, or a note that none are relevant. An existing
    leading system message (e.g. the user's own persona) is kept after ours."""
    if hits:
        prompt = (template or SYSTEM_TEMPLATES[language]).replace("{context}", format_context(hits))
    else:
        prompt = NO_CONTEXT_TEMPLATES[language]
    return [{"role": "system", "content": prompt}, *messages]


def citation(hit: SearchHit, url: str = "") -> dict[str, Any]:
    """One Open WebUI source payload (a `source` event's `data`). With the passage's `url` its
    metadata `source` is that URL, the id Open WebUI gives the passage's `url_citation`, so the
    two merge into one chip (`external` keeps the file name as its label)."""
    page = page_index(hit.chunk)
    meta: dict[str, Any] = {"source": url or hit.chunk.id, "name": source_name(hit)}
    if url:
        meta["external"] = True
    if page is not None:
        meta["page"] = page
    url = url or str(hit.chunk.metadata.get("url") or "")
    return {
        "source": {"id": hit.chunk.id, "name": source_name(hit), "url": url},
        "document": [hit.chunk.text],
        "metadata": [meta],
        "distances": [round(float(hit.score), 4)],
    }


def source_event(hit: SearchHit, url: str = "") -> dict[str, Any]:
    """The SSE payload Open WebUI renders as a citation chip."""
    return {"event": {"type": "source", "data": citation(hit, url)}}
