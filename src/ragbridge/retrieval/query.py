"""The retrieval query for a chat turn: the last user message, made standalone when it refers back
("explain that more" alone retrieves nothing). A cheap heuristic, no LLM call: short or referring
follow-ups (English and Korean) are prefixed with the previous user question."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_REFERS_BACK = re.compile(
    r"\b(it|its|that|this|those|these|they|them|he|she|more|else|again|above|previous|same|"
    r"elaborate|explain)\b"
    r"|그것|그거|그게|이것|이거|저것|(?<!\S)[그이저]\s|그런|이런|자세히|좀\s*더|위의|앞의|방금",
    re.IGNORECASE,
)
_SHORT_WORDS = 4
DEFAULT_MAX_CHARS = 2000


def bounded_query(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """`text` cut to at most `max_chars`: its beginning and its end (where a question around a
    pasted document usually is), joined by a space. A search query needs no more, and analysing
    or matching megabytes would cost seconds of CPU."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = max_chars // 2
    tail = max_chars - head - 1
    return f"{text[:head]} {text[len(text) - tail :]}" if tail > 0 else text[:max_chars]


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message: its string content, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (
            str(part.get("text", "")).strip()
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
        return " ".join(text for text in texts if text)
    return ""


def refers_back(text: str) -> bool:
    """Whether a question leans on an earlier turn to make sense."""
    return len(text.split()) <= _SHORT_WORDS or bool(_REFERS_BACK.search(text))


def standalone_query(messages: Sequence[Mapping[str, Any]]) -> str:
    """The search query for the conversation's last user message."""
    user_texts = [message_text(m).strip() for m in messages if m.get("role") == "user"]
    user_texts = [t for t in user_texts if t]
    if not user_texts:
        return ""
    last = user_texts[-1]
    if len(user_texts) > 1 and refers_back(bounded_query(last)):  # a pasted document: bounded
        return f"{user_texts[-2]} {last}"
    return last
