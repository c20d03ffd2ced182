"""Token estimates without the upstream's tokenizer, and the text an OpenAI request asks to read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def estimate_tokens(text: str) -> int:
    """Rough token count without the upstream's tokenizer: ~4 UTF-8 bytes per token.

    That is about 4 characters of English per token and 1-1.5 Hangul syllables per token,
    close to what BPE tokenizers give for both; the real count from the upstream's `usage`
    corrects the estimate afterwards.
    """
    return math.ceil(len(text.encode("utf-8")) / 4) if text else 0


def prompt_text(payload: Mapping[str, Any]) -> str:
    """The text an OpenAI-style request asks a model to read: messages, input, query or prompt."""
    parts: list[str] = []
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, Mapping):
            parts.extend(_texts(message.get("content")))
    for name in ("input", "query", "prompt"):
        parts.extend(_texts(payload.get(name)))
    return "\n".join(parts)


def _texts(value: Any) -> list[str]:
    """A string, or the strings and `{"text": ...}` parts of a list."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    texts = (item.get("text") if isinstance(item, Mapping) else item for item in items)
    return [text for text in texts if isinstance(text, str)]
