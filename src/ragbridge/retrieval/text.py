"""Keyword analysis: text to index terms. PLACEHOLDER until the retrieval work lands
(Korean morphemes via kiwipiepy, English stems and stopwords, a fallback for other scripts)."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def analyze(text: str) -> list[str]:
    """Index terms for `text`, in order; used for both chunks and queries."""
    return [w.lower() for w in _WORD.findall(text)]
