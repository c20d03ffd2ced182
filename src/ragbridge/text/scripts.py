"""Which script text is in (Hangul, CJK, Latin), and the one Korean analyser the process shares."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Hangul syllables, jamo and compatibility jamo.
HANGUL_CHARS = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
# Ideographs (CJK unified + extension A + compatibility) and kana: no spaces between words.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u309f\u30a0-\u30ff"
HANGUL = re.compile(f"[{HANGUL_CHARS}]")

_LATIN = "A-Za-z\u00c0-\u024f\u1e00-\u1eff"
# Words as letter runs, split where the script changes: "Python에서" is "Python" + "에서".
_SCRIPT_WORD = re.compile(f"[{_LATIN}]+|[^\\W\\d_{_LATIN}]+")
_LATIN_WORD = re.compile(f"[{_LATIN}]+")


def latin_share(text: str) -> float:
    """Fraction of `text`'s words in Latin script; 1.0 when it has no letters at all (numbers
    and symbols: any model reads those)."""
    words = _SCRIPT_WORD.findall(text)
    if not words:
        return 1.0
    latin = sum(1 for word in words if _LATIN_WORD.fullmatch(word))
    return latin / len(words)


def dense_reads_query(multilingual: bool, query: str) -> bool:
    """Whether a model can rank `query`: multilingual models read anything, English-only ones
    only queries whose words are mostly Latin script."""
    return multilingual or latin_share(query) >= 0.5


def cross_script(query: str, passage: str) -> bool:
    """Whether one of `query` and `passage` is mostly Latin script and the other is not."""
    return (latin_share(query) >= 0.5) != (latin_share(passage) >= 0.5)


_kiwi: Kiwi | None = None
_kiwi_lock = threading.Lock()


def kiwi() -> Kiwi:
    """The process-wide Kiwi analyser, built on first use (a slow import and ~1 s to build).

    Kiwi's analysis of a built model is reentrant, so threads share the one instance. Without
    the multi-word and typo dictionaries it costs 1.4 s of CPU per process instead of 3.2 s
    (measured), and analyses every Korean line of docs/ko, tests/ and bench/data the same.
    """
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                _kiwi = Kiwi(load_typo_dict=False, load_multi_dict=False)
    return _kiwi
